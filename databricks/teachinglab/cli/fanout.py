"""One job over many courses: each course's run in a process of its own, all at once, within one
deadline. A process per course (forked after the imports, so it starts in milliseconds) keeps
every course's ledger binding, workspace client and failures apart: one workspace that hangs,
refuses its token or crashes the run never stops the others."""
from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import time
from typing import Callable

from databricks.teachinglab.cli.courses import Course

logger = logging.getLogger(__name__)
# Which exit code a run over several courses ends with: the worst one, in this order. 75 (another
# run holds a lock) counts only when no course failed, so cron's mail shows real failures first.
SEVERITY = (4, 3, 2, 1, 75)


def combined_exit(codes: dict[str, int]) -> int:
    for code in SEVERITY:
        if code in codes.values():
            return code
    return max(codes.values(), default=0)


def _child(run_one: Callable[[Course], int], course: Course) -> None:
    try:
        code = run_one(course)
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else 1
    except BaseException as err:  # noqa: BLE001 - the parent reports it as this course's failure
        logger.error("course %s: %s: %s", course.name, type(err).__name__, err)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def fan_out(job: str, courses: list[Course], run_one: Callable[[Course], int], *,
            timeout_seconds: float | None) -> int:
    """Run `run_one(course)` for every course in parallel; wait at most `timeout_seconds` (the
    poll's deadline plus a grace), then stop what is still running. One log line per course."""
    context = multiprocessing.get_context("fork")
    started = {}
    for course in courses:
        process = context.Process(target=_child, args=(run_one, course), name=f"{job}:{course.name}", daemon=False)
        process.start()
        started[course.name] = process
    give_up = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    codes: dict[str, int] = {}
    for name, process in started.items():
        process.join(None if give_up is None else max(0.0, give_up - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()
            logger.error("%s: course %s was still running at the deadline and was stopped; the next run "
                         "goes on from its ledger", job, name)
            codes[name] = 1
            continue
        codes[name] = process.exitcode if process.exitcode is not None and process.exitcode >= 0 else 1
    summary = ", ".join(f"{name}={code}" for name, code in codes.items())
    code = combined_exit(codes)
    (logger.info if code == 0 else logger.warning)("%s: %d course(s) done, exit codes %s", job, len(codes), summary)
    return code
