"""make bench: one cron poll (`python -m databricks.poll_clusters`, a real process) over many
courses at once, each its own emulated workspace with 200 clusters, 40 running, every API call
answered after 100 ms. The whole run, Python's start included, is what must stay inside cron's
30 s; the one-course run beside it shows what the parallel courses cost on top."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

from databricks.devtools.bench import START, build
from databricks.sandbox import SandboxServer

ROOT = Path(__file__).resolve().parents[2]


def measure_courses(n_courses: int = 10, n_clusters: int = 200, n_running: int = 40, latency: float = 0.1) -> dict:
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        lines, env = [], {"PATH": os.environ["PATH"], "HOME": tmp, "QUOTA_TIMEZONE": "Asia/Jerusalem",
                          "ADMIN_EMAIL": "admin@example.edu", "EMAIL_TRANSPORT": "file",
                          "EMAIL_FILE_DIR": str(Path(tmp) / "mail"), "CLUSTER_UPTIMES_DB": str(Path(tmp) / "lab.db"),
                          "API_PARALLELISM": "8"}
        for n in range(n_courses):
            ws = build(n_clusters, n_running)
            ws.latency = latency
            ws.clock.set(START + timedelta(hours=1))
            server = stack.enter_context(SandboxServer(workspace=ws))
            lines.append(f'[courses.c{n:02d}]\nhost = "{server.url}"\ntoken_env = "C{n:02d}_TOKEN"\n')
            env[f"C{n:02d}_TOKEN"] = "bench"
        courses = Path(tmp) / "courses.toml"
        courses.write_text("\n".join(lines))
        env["TEACHINGLAB_COURSES_FILE"] = str(courses)

        def poll(at, *extra) -> tuple[float, int]:
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-m", "databricks.poll_clusters", "--at", at.isoformat(), *extra],
                               cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                print(r.stderr[-2000:], file=sys.stderr)
            return time.perf_counter() - t0, r.returncode

        first = poll(START + timedelta(hours=1))
        steady = poll(START + timedelta(hours=1, minutes=15))
        one = poll(START + timedelta(hours=1, minutes=30), "--course", "c00")
        # What a poll imports before its first call: the jobs and the workspace adapter (the SDK).
        imported = "import databricks.teachinglab.cli.jobs, databricks.teachinglab.adapters.workspace"
        startup = subprocess.run([sys.executable, "-c", imported], cwd=ROOT, env=env, capture_output=True)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", imported], cwd=ROOT, env=env, capture_output=True)
        imports = time.perf_counter() - t0 if startup.returncode == 0 else float("nan")
    return {"first": first, "steady": steady, "one_course": one, "imports_s": imports}


if __name__ == "__main__":
    result = measure_courses()
    print(result)
