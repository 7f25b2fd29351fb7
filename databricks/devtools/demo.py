"""`make demo`: one simulated course day, played in seconds against the emulated workspace.

Part 1: ten groups of three students on a minutes quota. The real poll runs every simulated 15
minutes and the real nightly close runs at 00:07. The demo prints the timeline of decisions, the
messages sent and the day's report.

Part 2 (demo_dbu.py): three groups on a DBU quota, polled every minute; a group that autoscales is
stopped within seconds of its limit.

Part 3 (demo_policy.py): three days under a semester policy file (a weekly cap, a top-up), one
--simulate comparison, and a screenshot of a group's status page.

Then it checks that all went as described and exits 0 (1 if they did not).

    python -m databricks.devtools.demo [--out DIR] [--quiet]
"""
from __future__ import annotations

import argparse
import logging
import shutil
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from databricks.devtools import demo_dbu, demo_policy
from databricks.sandbox import Delays, SandboxClock, SandboxServer, Workspace, load_scenario, sample_course

from databricks.teachinglab.cli.config import REPO_ROOT, load_settings
from databricks.teachinglab.adapters.ledger import repository as ledger
from databricks.teachinglab.adapters.ledger.models import OutboxMessage
from databricks.teachinglab.adapters.report_files import write_files
from databricks.teachinglab.cli.wiring import connect_workspace, open_context
from databricks.teachinglab.services.audit import audit_workspace
from databricks.teachinglab.services.grants import cluster_usage
from databricks.teachinglab.services.nightly import run_end_of_day
from databricks.teachinglab.services.poll import run_poll
from databricks.teachinglab.services.reports import daily_report

TZ = ZoneInfo("Asia/Jerusalem")
DAY = (2026, 3, 2)  # a Monday
DAY_DATE = datetime(*DAY).date()


def at(hours: float, day_offset: int = 0) -> datetime:
    base = datetime(*DAY, tzinfo=TZ) + timedelta(days=day_offset)
    return (base + timedelta(hours=hours)).astimezone(timezone.utc)


def hm(h: int, m: int = 0, day_offset: int = 0) -> datetime:
    return at(h + m / 60, day_offset)


PERSONAL, PERSONAL_OWNER = "student041-personal", "student041@students.example.edu"

# Who works when. Start-up takes 3 minutes, so RUNNING (when usage starts) comes 3 minutes later.
STORY = {
    "cluster_01": [(hm(9), hm(10, 30))],                      # light
    "cluster_02": [(hm(10, 5), hm(10, 12)), (hm(13), hm(14, 20))],  # a 7-minute session between polls
    "cluster_03": [(hm(11), hm(12, 45))],                     # light
    "cluster_04": [(hm(14), hm(17, 40))],                     # light
    "cluster_05": [(hm(8, 30), hm(9, 10))],                   # light
    "cluster_06": [(hm(7, 55), hm(15, 5))],                   # warned, stops in time (427 min)
    "cluster_07": [(hm(7, 57), None)],                        # terminated at the hard quota
    "cluster_08": [(hm(7, 27), None)],                        # terminated, then restarted while blocked
    "cluster_09": [(hm(22, 27), hm(1, 15, day_offset=1))],   # runs across midnight
    # cluster_10 never runs
}


class SimTime(logging.Filter):
    def __init__(self, clock: SandboxClock):
        super().__init__()
        self.clock = clock

    def use(self, clock: SandboxClock) -> None:
        self.clock = clock

    def filter(self, record: logging.LogRecord) -> bool:
        record.sim = self.clock.now().astimezone(TZ).strftime("%a %H:%M")
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m databricks.devtools.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "demo-output")
    parser.add_argument("--quiet", action="store_true", help="print only the checks")
    args = parser.parse_args(argv)
    out = args.out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)

    clock = SandboxClock(hm(6))
    ws = Workspace(clock, tokens={"demo-token": "admin@course.example.edu"},
                   delays=Delays(startup=180, restart=60, resize=30, shutdown=30))
    server = SandboxServer(workspace=ws).start()
    say = (lambda *a: None) if args.quiet else print
    try:
        ids = load_scenario(ws, sample_course(10, 3))
        ws.add_user("ta@course.example.edu", admin=True)
        for name, sessions in STORY.items():
            for start, end in sessions:
                ws.session(ids[name], start, end, as_group=name.replace("cluster", "group"))
        # cluster_08's students try to start it again (refused: blocked); the TA then starts it.
        ws.user_action(hm(16, 20), "start", ids["cluster_08"], as_group="group_08")
        ws.user_action(hm(17, 10), "start", ids["cluster_08"], user="ta@course.example.edu")
        # A group_04 student makes a cluster of their own from the Personal Compute policy, which
        # a new workspace leaves open to `users`: it counts to group_04, and the audit finds it.
        ids[PERSONAL] = ws.add_cluster(PERSONAL, creator=PERSONAL_OWNER, spec={
            "policy_id": ws.policy_id("Personal Compute"), "num_workers": 0})
        ws.session(ids[PERSONAL], hm(18), hm(18, 45))

        settings = load_settings({
            "DATABRICKS_HOST": server.url, "DATABRICKS_TOKEN": "demo-token", "QUOTA_TIMEZONE": TZ.key,
            "ADMIN_EMAIL": "admin@course.example.edu", "REPORT_RECIPIENT_EMAIL": "head@course.example.edu",
            "CLUSTER_UPTIMES_DB": str(out / "ledger.db"), "EMAIL_TRANSPORT": "file",
            "EMAIL_FILE_DIR": str(out / "mail"), "HOME": str(out)})
        stamps = _timeline_logging(clock, out, args.quiet)
        lab = open_context(settings, clock.now(), gateway=connect_workspace(settings))

        say(f"Simulated course day {hm(0).astimezone(TZ):%A %Y-%m-%d} in {TZ.key}: 10 groups x 3 students")
        say(f"Emulated workspace at {server.url}; ledger and mail under {out}\n")
        say("Timeline of decisions (simulated local time)")
        say("-" * 100)
        t, end, closed, refused = hm(6), hm(2, 0, day_offset=1), False, 0
        while t <= end:
            clock.set(t)
            run_poll(lab, ws.now())
            for when, action, cid, why in ws.refused[refused:]:
                say(f"  {when.astimezone(TZ):%a %H:%M}  (workspace) {action} of "
                    f"{next(n for n, i in ids.items() if i == cid)} refused: {why}")
            refused = len(ws.refused)
            if not closed and t >= hm(0, 7, day_offset=1) - timedelta(minutes=15):
                clock.set(hm(0, 7, day_offset=1))
                run_end_of_day(lab, ws.now())
                closed = True
            t += timedelta(minutes=15)
        say(f"\nTuesday so far (as of the {ws.now().astimezone(TZ):%H:%M} poll): usage after midnight stays on Tuesday")
        say("-" * 100)
        for line in cluster_usage(settings, ws.now()):
            if line.used_seconds:
                say(f"  {line.cluster_name}: {line.used_seconds // 60} min of {line.max_minutes}")
        files = write_files(daily_report(DAY_DATE, settings), settings, ws.now(), out / "report")
        say("\nReport files (python -m databricks.main --report --date 2026-03-02 --out DIR): "
            + ", ".join(str(p) for p in files))
        findings = audit_workspace(lab, ws.now(), known_home=ledger.home_clusters())
        say("\nWorkspace audit (python -m databricks.main --audit_workspace)")
        say("-" * 100)
        for f in findings:
            say(f"  [{f.kind}] {f.principal} on {f.object}\n      fix: {f.fix}")
        _plan(say, settings, ws)
        from databricks.teachinglab.cli.provisioning_commands import tool_version
        from databricks.teachinglab.services.handoff import write_record
        from dataclasses import replace
        named = replace(lab, settings=replace(settings, cluster=replace(settings.cluster, course="bigdata")))
        if write_record(named, ws.now(), "demo", out / "handoff.json", version=tool_version()):
            say(f"\nHandoff record (python -m databricks.main --handoff): {out / 'handoff.json'}")
        checks = _summary(say, out, settings, findings)
    finally:
        server.stop()
    checks.update(demo_dbu.run(out / "dbu", say, use_clock=stamps.use))
    checks.update(demo_policy.run(out / "policy", say))
    say("\nChecks")
    say("-" * 100)
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    return 0 if all(checks.values()) else 1


def _plan(say, settings, ws) -> None:
    """What --plan_course says of this course before a semester of 14 weeks, against a budget."""
    from types import SimpleNamespace
    from databricks.teachinglab.cli.plan_commands import describe
    from databricks.teachinglab.services.plan import course_plan, node_type_options
    roster = SimpleNamespace(groups=[SimpleNamespace(name=g, members=sorted(ws.group_members(g)))
                                     for g in sorted(ws.group_names()) if g.startswith("group_")])
    plan = course_plan(settings, roster, weeks=14, budget_usd=3000)
    from databricks.teachinglab.cli.wiring import connect_workspace
    offered = node_type_options(settings, connect_workspace(settings).node_types())
    say("\nBefore the semester (python -m databricks.main --plan_course users.csv --weeks 14 --budget 3000)")
    say("-" * 100)
    for line in describe(plan, None, offered[:4], None).splitlines():
        say("  " + line)


def _timeline_logging(clock: SandboxClock, out: Path, quiet: bool) -> SimTime:
    stamps = SimTime(clock)
    fmt = logging.Formatter("  %(sim)s  %(message)s")
    handlers: list[logging.Handler] = [logging.FileHandler(out / "timeline.log", encoding="utf-8")]
    if not quiet:
        handlers.append(logging.StreamHandler(sys.stdout))
    root = logging.getLogger()
    root.handlers[:] = []
    root.setLevel(logging.WARNING)
    logging.getLogger("databricks.sdk").setLevel(logging.ERROR)
    for handler in handlers:
        handler.setFormatter(fmt)
        handler.addFilter(stamps)
        for name in ("databricks.teachinglab.services.poll", "databricks.teachinglab.services.nightly"):
            logging.getLogger(name).addHandler(handler)
            logging.getLogger(name).setLevel(logging.INFO)
            logging.getLogger(name).propagate = False
    return stamps


def _summary(say, out: Path, settings, findings) -> dict[str, bool]:
    tz = settings.quota.timezone
    messages = list(OutboxMessage.select().order_by(OutboxMessage.id))
    say("\nMessages (written as .eml files to " + str(out / "mail") + ")")
    say("-" * 100)
    for m in messages:
        say(f"  {m.created_at.astimezone(tz):%a %H:%M}  {m.event:<20} {m.status:<7} to {m.to_addrs[:60]}")
        say(f"  {'':<9} {m.subject}")
    report = next((m for m in messages if m.kind == "daily_report"), None)
    if report:
        say("\nThe day's report, as emailed to " + report.to_addrs)
        say("-" * 100)
        say(report.text_body)
    return _check(say, messages, findings)


def _check(say, messages: list[OutboxMessage], findings) -> dict[str, bool]:
    from databricks.teachinglab.adapters.ledger.models import UsageHistory
    hist = {h.cluster_name: h for h in UsageHistory.select()}
    kinds = [(m.kind, m.subject) for m in messages]
    checks = {
        "light groups stay under the soft quota": all(
            hist[f"cluster_0{i}"].used_ms < 400 * 60_000 and not hist[f"cluster_0{i}"].warned for i in range(1, 6)),
        "a 7-minute session between two polls is counted": hist["cluster_02"].used_ms == (4 + 77) * 60_000,
        "group_06 is warned once and never stopped": hist["cluster_06"].warned and not hist["cluster_06"].terminated,
        "group_07 is stopped at exactly 480 minutes": hist["cluster_07"].terminated
        and hist["cluster_07"].used_ms == 480 * 60_000,
        "group_08 restarted while blocked is stopped again, admin told once":
            sum(k == "retermination" for k, _ in kinds) == 1,
        "no warning after a termination": all(
            not (k == "warning" and any(k2 == "termination" and c in s2 for k2, s2 in kinds[:i]))
            for i, (k, s) in enumerate(kinds) for c in ("group_07", "group_08") if c in s),
        "the midnight session is split at 00:00": hist["cluster_09"].used_ms == 90 * 60_000,
        "cluster_10 never ran": hist["cluster_10"].used_ms == 0,
        "one daily report": sum(k == "daily_report" for k, _ in kinds) == 1,
        "every message delivered": all(m.status == "sent" for m in messages),
        "a student's own cluster counts to their group": hist[PERSONAL].group_name == "group_04"
        and hist[PERSONAL].used_ms == 42 * 60_000,  # 18:00-18:45 less the 3-minute start-up
        "the audit finds Personal Compute open to users and the student's cluster": {
            (f.kind, f.principal) for f in findings} >= {("policy", "users"),
                                                         ("student_cluster", PERSONAL_OWNER)},
    }
    return checks


if __name__ == "__main__":
    sys.exit(main())
