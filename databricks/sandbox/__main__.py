"""Run the emulated workspace by hand: python -m databricks.sandbox [--port N] [--scenario FILE]."""
from __future__ import annotations

import argparse
import signal
import sys
from datetime import datetime, timezone

from .clock import SandboxClock
from .scenario import load_scenario
from .server import SandboxServer
from .workspace import Workspace


EPILOG = """\
A scenario (--scenario FILE) is JSON: users, groups, clusters, and student sessions on them:

  {"users":    [{"email": "a@uni.edu", "first_name": "A", "last_name": "B"}],
   "groups":   [{"name": "group_01", "members": ["a@uni.edu"]}],
   "clusters": [{"name": "cluster_01", "group": "group_01"}],
   "sessions": [{"cluster": "cluster_01", "start": "2026-03-02T08:00:00+02:00",
                 "end": "2026-03-02T10:30:00+02:00"}]}

A cluster gets the tag group=<group> and gives the group CAN_RESTART. A session starts the
cluster at "start" (RUNNING a minute later) and stops it at "end" (leave "end" out to keep it
running). The clock starts at --start (default: now) and runs at real speed; move it with

  curl -X POST -H 'Authorization: Bearer TOKEN' -d '{"seconds": 3600}' URL/_sandbox/advance

and run the jobs at the sandbox's time (--at works only against a workspace on loopback):

  python -m databricks.poll_clusters --at "$(curl -s -H 'Authorization: Bearer TOKEN' URL/_sandbox/now)"
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m databricks.sandbox",
                                     description="Serve an emulated Databricks workspace on 127.0.0.1.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default="sandbox-token", help="the token clients must send")
    parser.add_argument("--admin", default="admin@example.edu", help="the user the token belongs to")
    parser.add_argument("--scenario", help="a JSON scenario file to seed users, groups, clusters and sessions")
    parser.add_argument("--start", type=datetime.fromisoformat, default=None,
                        help="the sandbox's clock at start, ISO 8601 with offset (default: now)")
    args = parser.parse_args(argv)
    start = args.start or datetime.now(timezone.utc)
    ws = Workspace(SandboxClock(start, ticking=True), tokens={args.token: args.admin})
    if args.scenario:
        load_scenario(ws, args.scenario)
    server = SandboxServer(workspace=ws, port=args.port).start()
    print(f"DATABRICKS_HOST={server.url}", flush=True)
    print("DATABRICKS_TOKEN=<the --token value>; Ctrl-C stops", flush=True)
    print("Move its clock: curl -X POST -H 'Authorization: Bearer TOKEN' -d '{\"seconds\": 3600}' "
          f"{server.url}/_sandbox/advance", flush=True)
    signal.sigwait({signal.SIGINT, signal.SIGTERM})
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
