"""`make bench`: what a cron run costs before and around its work. Wall time and CPU seconds (user
+ sys, from the children's rusage) of real processes: a bare `python -c pass`, a bare
`python -c "import databricks.sdk"` (the floor every run that talks to the workspace pays),
`--help`, and a quiet poll of a small emulated course; and a hung host's poll under the cron
wrapper (`scripts/periodic_poll.sh`): its exit code and how long it took."""
from __future__ import annotations

import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _timed(argv: list[str], env: dict, rounds: int) -> tuple[float, float, int]:
    """Median wall seconds, median CPU seconds, and the last exit code of `rounds` runs."""
    walls, cpus, code = [], [], 0
    for _ in range(rounds):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        code = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True).returncode
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
    return statistics.median(walls), statistics.median(cpus), code


def measure_startup(rounds: int = 5) -> dict:
    from databricks.sandbox import Delays, SandboxClock, SandboxServer, Workspace, sample_course
    from databricks.sandbox.scenario import load_scenario
    from datetime import datetime, timezone
    py = sys.executable
    base = {"PATH": os.environ.get("PATH", "")}
    out = {"python -c pass": _timed([py, "-c", "pass"], base, rounds),
           "python -c 'import databricks.sdk'": _timed([py, "-c", "import databricks.sdk"], base, rounds),
           "python -m databricks.main --help": _timed([py, "-m", "databricks.main", "--help"], base, rounds)}
    now = datetime.now(timezone.utc).replace(microsecond=0)
    ws = Workspace(SandboxClock(now - timedelta(hours=2), ticking=True), tokens={"bench": "admin@example.edu"},
                   delays=Delays(startup=0))
    load_scenario(ws, sample_course(10, 3))
    with SandboxServer(workspace=ws) as server, tempfile.TemporaryDirectory() as tmp:
        env = {**base, "HOME": tmp, "DATABRICKS_HOST": server.url, "DATABRICKS_TOKEN": "bench",
               "EMAIL_TRANSPORT": "file", "ADMIN_EMAIL": "admin@example.edu", "QUOTA_TIMEZONE": "UTC",
               "CLUSTER_UPTIMES_DB": str(Path(tmp) / "l.db")}
        subprocess.run([py, "-m", "databricks.poll_clusters"], cwd=ROOT, env=env, capture_output=True)  # first look
        out["a quiet poll (10 clusters)"] = _timed([py, "-m", "databricks.poll_clusters"], env, rounds)
    return out


def measure_hung_host() -> tuple[int, float]:
    """A workspace that accepts connections and never answers, under the cron wrapper with its
    defaults (POLL_DEADLINE_SECONDS 25, timeout 30): the exit code and the seconds it took."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held = []
    threading.Thread(target=lambda: [held.append(server.accept()) for _ in range(64)], daemon=True).start()
    with tempfile.TemporaryDirectory() as tmp:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": tmp, "DATABRICKS_TOKEN": "bench",
               "DATABRICKS_HOST": f"http://127.0.0.1:{server.getsockname()[1]}", "EMAIL_TRANSPORT": "file",
               "ADMIN_EMAIL": "admin@example.edu", "TEACHINGLAB_PYTHON": sys.executable}
        t0 = time.perf_counter()
        code = subprocess.run(["bash", str(ROOT / "scripts" / "periodic_poll.sh")], cwd=ROOT, env=env,
                              capture_output=True).returncode
        took = time.perf_counter() - t0
    server.close()
    return code, took
