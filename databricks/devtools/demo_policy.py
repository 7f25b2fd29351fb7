"""The demo's third part: a semester policy (QUOTA_POLICY_FILE) over three days, a --simulate
comparison, and a screenshot of a group's status page.

Policy: daily warn 120 / stop 180 minutes, a weekly cap of 300 (carry-over up to 60), a 60-minute
top-up for group_02 on Wednesday. group_01 and group_02 try to run 08:00-11:30 every day;
group_03 runs an hour a day. Polls every 15 minutes, nightly close at 00:07, the real services
against the emulated workspace.
"""
from __future__ import annotations

import logging
import shutil
import threading
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from wsgiref.simple_server import make_server
from zoneinfo import ZoneInfo

from databricks.sandbox import Delays, SandboxClock, SandboxServer, Workspace, load_scenario, sample_course

from databricks.teachinglab.adapters.ledger.models import ClusterDay
from databricks.teachinglab.adapters.policy_file import load_policy
from databricks.teachinglab.cli.config import load_settings
from databricks.teachinglab.cli.semester_commands import summary
from databricks.teachinglab.cli.status_page import QuietHandler, make_app
from databricks.teachinglab.cli.wiring import connect_workspace, open_context
from databricks.teachinglab.services.nightly import run_end_of_day
from databricks.teachinglab.services.poll import run_poll
from databricks.teachinglab.services.serverless import provision_access
from databricks.teachinglab.services.simulate import simulate
from databricks.teachinglab.services.status import group_status, status_link

TZ = ZoneInfo("Asia/Jerusalem")
DAYS = [date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)]
POLICY = """\
[daily]
warn_minutes = 120
max_minutes = 180

[weekly]
max_minutes = 300
carry_over_max_minutes = 60

[semester]
start = 2026-03-02
end = 2026-07-10
max_minutes = 2000

[[topup]]
groups = ["group_02"]
minutes = 60
from = 2026-03-04
until = 2026-03-04
reason = "project deadline"

[serverless]
weekly_max_dbu = 4
"""
CANDIDATE = POLICY.replace("max_minutes = 180", "max_minutes = 240").replace("max_minutes = 300", "max_minutes = 420")


def at(day: date, h: int, m: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, h, m, tzinfo=TZ).astimezone(timezone.utc)


def run(out: Path, say) -> dict[str, bool]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "policy.toml").write_text(POLICY)
    (out / "candidate.toml").write_text(CANDIDATE)
    clock = SandboxClock(at(DAYS[0], 7))
    ws = Workspace(clock, tokens={"demo-token": "admin@course.example.edu"},
                   delays=Delays(startup=0, restart=60, resize=30, shutdown=30))
    server = SandboxServer(workspace=ws).start()
    logging.disable(logging.WARNING)  # parts 1 and 2 print the timeline; this part prints its outcome
    try:
        ids = load_scenario(ws, sample_course(3, 2))
        settings = load_settings({
            "DATABRICKS_HOST": server.url, "DATABRICKS_TOKEN": "demo-token", "QUOTA_TIMEZONE": TZ.key,
            "ADMIN_EMAIL": "admin@course.example.edu", "QUOTA_POLICY_FILE": str(out / "policy.toml"),
            "CLUSTER_UPTIMES_DB": str(out / "ledger.db"), "EMAIL_TRANSPORT": "file",
            "EMAIL_FILE_DIR": str(out / "mail"), "HOME": str(out), "STATUS_PAGE_URL": "http://127.0.0.1/status",
            "DATABRICKS_WAREHOUSE_ID": "wh-demo", "WAREHOUSE_WAIT_SECONDS": "1",
            "SERVERLESS_INTERACTIVE_COMPUTE_ID": ws.serverless_ids()["interactive"],
            "SERVERLESS_AUTOMATED_COMPUTE_ID": ws.serverless_ids()["automated"]})
        ws.warehouses.add("wh-demo")
        ws.set_serverless_lag(2)
        lab = open_context(settings, clock.now(), gateway=connect_workspace(settings))
        say("\nPart 3: a semester policy (QUOTA_POLICY_FILE): daily 180 min, weekly 300 min, a 60-minute top-up "
            "for group_02 on Wednesday; polls every 15 minutes")
        say("-" * 100)
        stops: dict[tuple[str, date], tuple[str, str]] = {}
        refused: dict[date, bool] = {}
        for day in DAYS:
            for name, end in (("cluster_01", (11, 30)), ("cluster_02", (11, 30)), ("cluster_03", (9, 0))):
                ws.session(ids[name], at(day, 8), at(day, *end))
            if day == DAYS[0]:
                provision_access(lab, ["group_01", "group_02", "group_03"], blocked=set(), dry_run=False)
            # group_03 also works in a serverless notebook, 13:00-16:00 at 1.5 DBU an hour (refused once blocked)
            served = ws.use_serverless("student031@students.example.edu", at(day, 13), at(day, 16), 1.5)
            t = at(day, 7, 45)
            while t <= at(day, 11, 45) if day != DAYS[-1] else t <= at(day, 10):
                clock.set(t)
                run_poll(lab, ws.now())
                t += timedelta(minutes=15)
            for name in ("cluster_01", "cluster_02", "cluster_03"):
                row = ClusterDay.get_or_none((ClusterDay.cluster == ids[name]) & (ClusterDay.day == day))
                if row and row.terminated_at:
                    stops[name, day] = (row.terminated_at.astimezone(TZ).strftime("%H:%M"), row.quota_cap)
            say(f"  {day:%a %Y-%m-%d}: " + "; ".join(
                f"{n.replace('cluster', 'group')} " + (f"stopped {stops[n, day][0]} by the {stops[n, day][1]} cap"
                                                         if (n, day) in stops else "not stopped")
                for n in ("cluster_01", "cluster_02", "cluster_03"))
                + ("; group_03's serverless notebook ran 13:00-16:00" if served else
                   "; group_03's serverless notebook was refused (serverless off)"))
            refused[day] = served is None
            if day != DAYS[-1]:
                clock.set(at(day + timedelta(days=1), 0, 7))
                run_end_of_day(lab, ws.now())

        result = simulate(settings, load_policy(out / "candidate.toml", settings.quota.unit, defaults=None),
                          today=DAYS[-1] + timedelta(days=1), date_from=DAYS[0], date_to=DAYS[-1])
        say("\nWhat a looser policy (daily 240, weekly 420) would have done: python -m databricks.main "
            f"--simulate {out / 'candidate.toml'}")
        for line in summary(result, result.as_json()).splitlines():
            say("  " + line)
        shot = _screenshot(settings, ws.now(), out, say)
        rows = {r["group"]: r for r in result.as_json()}
        page = group_status(settings, "group_03", ws.now())
        off = page.serverless.off if page.serverless else None
        say(f"\nServerless ([serverless] weekly_max_dbu = 4, billed 2 h late, read at each nightly close): group_03's "
            f"page says: {off or 'nothing'}")
        return {**_agreeing_numbers(settings, ws.now(), say), 
            "the weekly cap stops group_01 on Tuesday": stops.get(("cluster_01", DAYS[1]), ("", ""))[1] == "weekly",
            "group_02's top-up lets it run on Wednesday": ("cluster_02", DAYS[2]) in stops
            and stops["cluster_02", DAYS[2]][0] > stops.get(("cluster_01", DAYS[2]), ("99",))[0],
            "--simulate shows fewer stops under the looser policy":
                rows["group_01"]["stops"] < rows["group_01"]["current"]["stops"],
            "a group's status page was rendered (screenshot if Chromium is here)": shot,
            "group_03 loses serverless access once its weekly 4 DBU are billed, and is refused on Wednesday":
                ("group_name", "group_03") not in ws.serverless_acl("interactive") and refused.get(DAYS[2], False)
                and not refused.get(DAYS[0], True),
            "group_03's page says why serverless is off and when it returns": bool(off and "Monday" in off),
        }
    finally:
        logging.disable(logging.NOTSET)
        server.stop()


def _agreeing_numbers(settings, now: datetime, say) -> dict[str, bool]:
    """Issue 21's numbers that must agree: one weekly stop notice per group and week, the page's
    week without the top-up, the limits every view shows are the poll's, one chart bar per group."""
    from databricks.teachinglab.adapters.ledger.models import OutboxMessage
    from databricks.teachinglab.core.report import chart_bars
    from databricks.teachinglab.services.grants import cluster_usage
    from databricks.teachinglab.services.reports import daily_report
    from databricks.teachinglab.services.status import group_status
    weekly = [m.subject for m in OutboxMessage.select() if m.kind == "termination" and "weekly limit" in m.subject]
    week = {g: next(p for p in group_status(settings, g, now).periods if p.name == "this week")
            for g in ("group_01", "group_02")}
    say("  the students' page, this week: " + "; ".join(f"{g} {p.used} of {p.limit}" for g, p in week.items()))
    today = {r.cluster_id: r for r in ClusterDay.select().where(ClusterDay.day == DAYS[-1])}
    usage = [u for u in cluster_usage(settings, now) if u.cluster_id in today]
    bars = chart_bars(daily_report(DAYS[1], settings).rows)
    return {
        # group_02's top-up ending on Wednesday is news of its own; a used-up week on a later day is not
        "one weekly stop notice per group and week (and one when a top-up runs out)":
            sum("group_01" in subject for subject in weekly) == 1 and sum("group_02" in subject for subject in weekly) == 2,
        "the page's week counts what the policy counts (the top-up is extra)": all(
            float(p.used.split()[0]) <= float(p.limit.split()[0]) for p in week.values()),
        "--cluster_usage shows the limits the poll applied": bool(usage) and all(
            u.max_minutes == today[u.cluster_id].limit_amount // 60_000 and 0 <= u.warn_minutes <= u.max_minutes
            for u in usage),
        "the report's chart has one bar per group": sorted(b.label for b in bars) == ["group_01", "group_02",
                                                                                      "group_03"],
    }


def _screenshot(settings, now: datetime, out: Path, say) -> bool:
    """group_02's page, served by the real WSGI app on a free port; a PNG when Chromium is here."""
    with make_server("127.0.0.1", 0, make_app(settings, lambda: now), handler_class=QuietHandler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        link = status_link(settings, "group_02", now)
        url = f"http://127.0.0.1:{server.server_port}/g/{link.rsplit('/', 1)[1]}"
        import urllib.request
        html = urllib.request.urlopen(url, timeout=10).read()
        (out / "status-group_02.html").write_bytes(html)
        target = out.parent / "status-page-group_02.png"
        chromium, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
        if chromium and driver:
            from selenium import webdriver
            from selenium.webdriver.chrome.service import Service
            opts = webdriver.ChromeOptions()
            opts.binary_location = chromium
            for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=420,900"):
                opts.add_argument(arg)
            drv = webdriver.Chrome(service=Service(driver), options=opts)
            try:
                drv.get(url)
                drv.save_screenshot(str(target))
            finally:
                drv.quit()
            say(f"\nStatus page of group_02 (python -m databricks.main --status_page): screenshot {target}")
        else:
            say(f"\nStatus page of group_02 written to {out / 'status-group_02.html'}; no Chromium here for the "
                "screenshot (apt-get install chromium chromium-driver)")
        server.shutdown()
        return b"this week" in html
