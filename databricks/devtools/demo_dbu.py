"""The demo's second part: a lab on a DBU quota (QUOTA_UNIT=dbu), polled every minute.

Three groups on Standard_DS3_v2 (0.75 DBU/h a node, from the packaged price table), quota 3 DBU
to warn, 4 DBU to stop:
- group_01 runs 1 worker for an hour: 1.5 DBU;
- group_02 runs 1 worker, then grows to 4 at 08:59: its DBUs come 2.5 times faster; it is warned
  with the forecast stop, and the 09:41 run, whose deadline covers the crossing (09:41:06), waits
  for it and stops the cluster then;
- group_03 runs a single node for 3.5 hours: more minutes than group_02, yet under its DBU quota.

The poll is the real one (services/poll.run_poll_to_the_second), each simulated minute, against
the emulated workspace; the run's deadline is measured on the simulated clock.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable
from zoneinfo import ZoneInfo

from databricks.sandbox import Delays, SandboxClock, SandboxServer, Workspace, load_scenario, sample_course

from databricks.teachinglab.adapters.deadline import Deadline
from databricks.teachinglab.adapters.ledger.models import ClusterDay, OutboxMessage
from databricks.teachinglab.cli.config import load_settings
from databricks.teachinglab.cli.wiring import connect_workspace, open_context
from databricks.teachinglab.services.grants import cluster_usage
from databricks.teachinglab.services.poll import run_poll_to_the_second

TZ = ZoneInfo("Asia/Jerusalem")
DAY = (2026, 3, 3)
WARN_DBU, MAX_DBU = 3, 4


def hm(h: int, m: int = 0) -> datetime:
    return datetime(*DAY, h, m, tzinfo=TZ).astimezone(timezone.utc)


def run(out: Path, say, use_clock: Callable[[SandboxClock], None] = lambda clock: None) -> dict[str, bool]:
    """Plays the morning, prints what happened, and returns the checks. `use_clock` gets the
    simulated clock (the demo's timeline stamps log lines with it)."""
    out.mkdir(parents=True, exist_ok=True)
    clock = SandboxClock(hm(7, 30))
    use_clock(clock)
    ws = Workspace(clock, tokens={"demo-token": "admin@course.example.edu"},
                   delays=Delays(startup=180, restart=60, resize=30, shutdown=30))
    server = SandboxServer(workspace=ws).start()
    try:
        scenario = sample_course(3, 3)
        for c in scenario["clusters"]:
            c["spec"] = {"num_workers": 0} if c["name"] == "cluster_03" else {}
        ids = load_scenario(ws, scenario)
        ws.session(ids["cluster_01"], hm(8), hm(9, 3), as_group="group_01")
        ws.session(ids["cluster_02"], hm(8), None, as_group="group_02")
        ws.user_action(hm(8, 59) + timedelta(seconds=20), "resize", ids["cluster_02"], num_workers=4)
        ws.session(ids["cluster_03"], hm(8), hm(11, 33), as_group="group_03")

        settings = load_settings({
            "DATABRICKS_HOST": server.url, "DATABRICKS_TOKEN": "demo-token", "QUOTA_TIMEZONE": TZ.key,
            "ADMIN_EMAIL": "admin@course.example.edu", "QUOTA_UNIT": "dbu",
            "DATABRICKS_WARN_DBU": str(WARN_DBU), "DATABRICKS_MAX_DBU": str(MAX_DBU),
            "CLUSTER_UPTIMES_DB": str(out / "ledger.db"), "EMAIL_TRANSPORT": "file",
            "EMAIL_FILE_DIR": str(out / "mail"), "HOME": str(out)})
        lab = open_context(settings, clock.now(), gateway=connect_workspace(settings))

        def wait(seconds: float) -> datetime:
            clock.set(clock.now() + timedelta(seconds=seconds))
            return ws.now()

        say(f"\nPart 2: {hm(0).astimezone(TZ):%A %Y-%m-%d}, QUOTA_UNIT=dbu (warn {WARN_DBU}, stop {MAX_DBU} DBU "
            "per group), a poll every minute")
        say("-" * 100)
        t = hm(7, 30)
        while t <= hm(12):
            clock.set(t)
            lab.deadline = Deadline(25, monotonic=lambda: ws.now().timestamp())
            run_poll_to_the_second(lab, ws.now(), wait=wait, interval_seconds=60)
            t += timedelta(minutes=1)
        return _checks(say, settings, ids)
    finally:
        server.stop()


def _checks(say, settings, ids: dict[str, str]) -> dict[str, bool]:
    unit, prices, tz = settings.quota.unit, settings.quota.prices, settings.quota.timezone
    lines = {u.cluster_name: u for u in cluster_usage(settings, hm(12))}
    for name, u in sorted(lines.items()):
        say(f"  {u.group}: {u.group_used:.2f} DBU of {u.max_limit:g} in {u.used_seconds / 60:.0f} minutes of uptime")
    stopped = ClusterDay.get(ClusterDay.cluster == ids["cluster_02"]).terminated_at
    # How far past 4 DBU the stop came, in seconds at the rate it ran then (5 nodes).
    per_second = unit.rate_per_ms(prices, _DS3, workers=4) * 1000
    over_seconds = (unit.of(lines["cluster_02"].group_used) - unit.of(MAX_DBU)) / per_second
    say(f"  group_02 stopped at {stopped.astimezone(tz):%H:%M:%S}, {over_seconds:.1f} s of node-time past its "
        f"{MAX_DBU} DBU")
    warning = next(m for m in OutboxMessage.select() if m.kind == "warning")
    forecast = next((line.strip() for line in warning.text_body.splitlines() if "At this rate" in line), "")
    say(f"  warning to group_02: {warning.subject}\n    {forecast}")
    return {
        "on a DBU quota, group_02 is stopped within a minute of 4 DBU": stopped is not None and 0 <= over_seconds <= 60,
        "its warning gives the forecast stop time": forecast.startswith("At this rate the cluster stops at"),
        "a single node for 3.5 hours stays under the DBU quota": lines["cluster_03"].used_seconds >= 3.5 * 3600
        and lines["cluster_03"].group_used < WARN_DBU and not lines["cluster_03"].warned,
    }


class _DS3:
    node_type_id = "Standard_DS3_v2"
    driver_node_type_id = None
