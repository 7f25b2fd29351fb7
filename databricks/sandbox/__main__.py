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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m databricks.sandbox",
                                     description="Serve an emulated Databricks workspace on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default="sandbox-token", help="the token clients must send")
    parser.add_argument("--admin", default="admin@example.edu", help="the user the token belongs to")
    parser.add_argument("--scenario", help="a JSON scenario file to seed users, groups and clusters")
    args = parser.parse_args(argv)
    ws = Workspace(SandboxClock(datetime.now(timezone.utc), ticking=True), tokens={args.token: args.admin})
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
