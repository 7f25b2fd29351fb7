"""`make bench`: how long one poll of 200 clusters with 40 running takes against the emulated
workspace, with no network latency and with a modelled 100 ms per API call.

Cron kills the poll at 30 s; this shows how far inside that a poll stays. It measures, it
does not assert: timings belong in notes, not in pass/fail tests.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from databricks.sandbox import Delays, SandboxClock, SandboxServer, Workspace

from databricks.teachinglab.core.messages import quota_figures
from databricks.teachinglab.core.quota import Limits
from databricks.teachinglab.cli.config import load_settings
from databricks.teachinglab.services.poll import run_poll
from databricks.teachinglab.cli.wiring import close_ledger, connect_workspace, open_context

START = datetime(2026, 3, 2, 5, 0, tzinfo=timezone.utc)


def build(n_clusters: int, n_running: int) -> Workspace:
    ws = Workspace(SandboxClock(START), tokens={"bench": "admin@example.edu"},
                   delays=Delays(startup=120, restart=60, resize=30, shutdown=30))
    for i in range(1, n_clusters + 1):
        group = f"group_{i:03d}"
        ws.add_group(group, [f"s{i:03d}{k}@uni.example.edu" for k in range(3)])
        cid = ws.add_cluster(f"cluster_{i:03d}", tags={"group": group, "course": "bench"},
                             acl=[{"group_name": group, "permission_level": "CAN_RESTART"}])
        if i <= n_running:
            ws.session(cid, START + timedelta(minutes=5 + i, seconds=(7 * i) % 60), None)
    return ws


def measure(latency: float, n_clusters: int, n_running: int, rounds: int) -> dict:
    ws = build(n_clusters, n_running)
    ws.latency = latency
    with SandboxServer(workspace=ws) as server, tempfile.TemporaryDirectory() as tmp:
        settings = load_settings({"DATABRICKS_HOST": server.url, "DATABRICKS_TOKEN": "bench",
                                  "QUOTA_TIMEZONE": "Asia/Jerusalem", "ADMIN_EMAIL": "admin@example.edu",
                                  "CLUSTER_UPTIMES_DB": str(Path(tmp) / "l.db"), "EMAIL_TRANSPORT": "file",
                                  "EMAIL_FILE_DIR": str(Path(tmp) / "mail"), "HOME": tmp})
        lab = open_context(settings, ws.now(), gateway=connect_workspace(settings))
        ws.clock.set(START + timedelta(hours=1))
        t0 = time.perf_counter()
        run_poll(lab, ws.now())  # first look: every cluster is asked for events once
        first = time.perf_counter() - t0
        steady, calls = [], []
        for r in range(rounds):
            ws.clock.set(START + timedelta(hours=1, minutes=15 * (r + 1)))
            before = len(ws.requests)
            t0 = time.perf_counter()
            report = run_poll(lab, ws.now())
            steady.append(time.perf_counter() - t0)
            calls.append(len(ws.requests) - before)
            assert not report.failures
        close_ledger()
    return {"latency_ms": latency * 1000, "first_poll_s": first, "steady_median_s": statistics.median(steady),
            "steady_max_s": max(steady), "api_calls_per_poll": statistics.median(calls)}


def measure_minute_cadence(n_clusters: int, n_running: int) -> dict:
    """The default cadence (a poll every minute): API calls per run over a quiet hour, and around
    the hard quota, how far past it each running cluster got before it was stopped."""
    from databricks.teachinglab.adapters.deadline import Deadline
    from databricks.teachinglab.adapters.ledger.models import ClusterDay
    from databricks.teachinglab.services.poll import run_poll_to_the_second
    ws = build(n_clusters, n_running)
    with SandboxServer(workspace=ws) as server, tempfile.TemporaryDirectory() as tmp:
        settings = load_settings({"DATABRICKS_HOST": server.url, "DATABRICKS_TOKEN": "bench",
                                  "QUOTA_TIMEZONE": "Asia/Jerusalem", "ADMIN_EMAIL": "admin@example.edu",
                                  "CLUSTER_UPTIMES_DB": str(Path(tmp) / "l.db"), "EMAIL_TRANSPORT": "file",
                                  "EMAIL_FILE_DIR": str(Path(tmp) / "mail"), "HOME": tmp,
                                  "POLL_INTERVAL_MINUTES": "1"})
        lab = open_context(settings, ws.now(), gateway=connect_workspace(settings))

        def wait(seconds: float) -> datetime:  # the run sleeps in simulated time
            ws.clock.set(ws.now() + timedelta(seconds=seconds))
            return ws.now()

        def runs(first: int, last: int) -> list[int]:
            calls = []
            for minute in range(first, last + 1):
                ws.clock.set(START + timedelta(minutes=minute))
                lab.deadline = Deadline(25, monotonic=lambda: ws.now().timestamp())  # cron's timeout 30
                before = len(ws.requests)
                run_poll_to_the_second(lab, ws.now(), wait=wait, interval_seconds=60)
                calls.append(len(ws.requests) - before)
            return calls

        # databricks-sdk 0.156 resolves host metadata in every Config() (Config._resolve_host_metadata,
        # GET /.well-known/databricks-config), with no setting to skip it: each cron run is a new
        # process and makes this one request more than the runs below, which share one client.
        before = len(ws.requests)
        connect_workspace(settings)
        probe = len(ws.requests) - before
        runs(60, 60)                       # the first look
        quiet = runs(61, 120)              # an hour with nothing near a quota (one hourly read of each)
        crossing = runs(470, 540)          # every running cluster passes 480 minutes in here
        over = [(row.used_ms - 480 * 60_000) / 1000 for row in ClusterDay.select() if row.terminated_at]
        close_ledger()
    return {"quiet_calls": statistics.mean(quiet), "quiet_max": max(quiet), "probe_calls": probe,
            "crossing_calls": statistics.mean(crossing), "stopped": len(over),
            "over_median_s": statistics.median(over) if over else None, "over_max_s": max(over) if over else None}


def measure_storm(n_clusters: int, n_running: int, deadline_s: float = 25.0, retry_after: int = 1) -> dict:
    """A poll while the workspace answers every call with 429 (Retry-After: 1): how long until the
    run's deadline ends it, and what it left recorded."""
    from databricks.sandbox import Fault

    from databricks.teachinglab.adapters.deadline import Deadline
    from databricks.teachinglab.adapters.ledger.models import OutboxMessage
    ws = build(n_clusters, n_running)
    with SandboxServer(workspace=ws) as server, tempfile.TemporaryDirectory() as tmp:
        settings = load_settings({"DATABRICKS_HOST": server.url, "DATABRICKS_TOKEN": "bench",
                                  "QUOTA_TIMEZONE": "Asia/Jerusalem", "ADMIN_EMAIL": "admin@example.edu",
                                  "CLUSTER_UPTIMES_DB": str(Path(tmp) / "l.db"), "EMAIL_TRANSPORT": "file",
                                  "EMAIL_FILE_DIR": str(Path(tmp) / "mail"), "HOME": tmp})
        ws.clock.set(START + timedelta(hours=1))
        results = {}
        for what, path in (("events only", "/clusters/events"), ("every call", ".")):
            fault = ws.inject(Fault(method="*", path=path, status=429, error_code="REQUEST_LIMIT_EXCEEDED",
                                    retry_after=retry_after, times=None))
            t0 = time.perf_counter()
            deadline = Deadline(deadline_s)
            lab = open_context(settings, ws.now(), deadline=deadline)
            try:
                report = run_poll(lab, ws.now())
                failed = len(report.failures)
            except Exception as err:  # noqa: BLE001 - the cluster list itself was refused
                failed = f"all ({type(err).__name__})"
            results[what] = {"seconds": time.perf_counter() - t0, "failed": failed,
                             "alerts": OutboxMessage.select().where(OutboxMessage.kind == "failure").count()}
            ws.faults.remove(fault)
            close_ledger()
    return results


def main(argv: list[str] | None = None) -> int:
    from databricks.devtools.bench_courses import measure_courses
    from databricks.devtools.bench_simulate import measure_simulator
    parser = argparse.ArgumentParser(prog="python -m databricks.devtools.bench", description=__doc__)
    parser.add_argument("--clusters", type=int, default=200)
    parser.add_argument("--running", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--mail", type=int, default=40, help="messages for the mail timing (0: skip)")
    args = parser.parse_args(argv)
    import logging
    logging.basicConfig(level=logging.ERROR)
    from databricks.devtools.bench_startup import measure_hung_host, measure_startup
    print("start-up, real processes (median of 5; CPU is user + sys)")
    for what, (wall, cpu, code) in measure_startup().items():
        print(f"  {what:<36} {wall:5.2f} s wall, {cpu:5.2f} s CPU (exit {code})")
    code, took = measure_hung_host()
    print(f"a workspace that accepts connections and never answers, under scripts/periodic_poll.sh: exit {code} "
          f"after {took:.1f} s (the wrapper kills at 30 s: exit 124)")
    print(f"poll of {args.clusters} clusters, {args.running} running, API_PARALLELISM=8")
    for latency in (0.0, 0.1):
        r = measure(latency, args.clusters, args.running, args.rounds)
        print(f"  latency {r['latency_ms']:>4.0f} ms/call: first poll {r['first_poll_s']:.2f} s, "
              f"steady poll median {r['steady_median_s']:.2f} s (max {r['steady_max_s']:.2f} s), "
              f"{r['api_calls_per_poll']:.0f} API calls per steady poll")
    r = measure_minute_cadence(args.clusters, args.running)
    print(f"one-minute cadence, {args.clusters} clusters, {args.running} running, crossings spread over the "
          "minute, a run waits for a quota falling in its first 20 s")
    print(f"  a quiet hour: {r['quiet_calls']:.2f} API calls per run on average (max {r['quiet_max']}), plus "
          f"{r['probe_calls']} host-metadata request per process (the SDK's /.well-known/databricks-config): "
          f"{r['quiet_calls'] + r['probe_calls']:.2f} per cron run")
    print(f"  around the hard quota: {r['crossing_calls']:.2f} calls per run; {r['stopped']} clusters stopped, "
          f"{r['over_median_s']:.0f} s past the quota at the median, {r['over_max_s']:.0f} s at most")
    print(f"429 storm (Retry-After: 1), POLL_DEADLINE_SECONDS=25, {args.clusters} clusters")
    for what, r in measure_storm(args.clusters, args.running).items():
        print(f"  429 on {what:<12}: poll returned after {r['seconds']:.1f} s; clusters not handled: {r['failed']}; "
              f"failure alerts queued: {r['alerts']}")
    r = measure_courses(10, args.clusters, args.running, 0.1)
    print(f"one cron poll over 10 courses (10 emulated workspaces x {args.clusters} clusters, {args.running} running, "
          "100 ms per API call), a real `python -m databricks.poll_clusters` process, start-up included")
    print(f"  first poll (every cluster read once) {r['first'][0]:.2f} s, steady poll {r['steady'][0]:.2f} s; "
          f"one course alone (--course) {r['one_course'][0]:.2f} s; Python start-up and imports "
          f"{r['imports_s']:.2f} s; exit codes {r['first'][1]}, {r['steady'][1]}, {r['one_course'][1]}")
    r = measure_simulator(300, 120)
    print(f"--simulate over a semester: 300 clusters x 120 days, {r['sessions']} sessions: {r['seconds']:.2f} s "
          f"(two policies replayed, {r['stops']} stops under the candidate)")
    if args.mail:
        print(f"delivering {args.mail} messages (outbox -> transport -> loopback service)")
        for name, (seconds, sent) in measure_mail(args.mail).items():
            print(f"  {name:<5} {seconds:.2f} s for {sent} sent" + (
                f" ({1000 * seconds / sent:.0f} ms per message)" if sent else ", the rest left pending"))
        r = measure_pacing()
        print("pacing on an Azure-managed domain (5 sends a minute, 10 an hour), a poll every minute: 10 groups warned "
              "at minute 0, then 10 stopped at minute 20")
        print(f"  confirmed delivered (sent, then its status checked by the next run): warnings at minutes "
              f"{r['warnings']}, stop notices at minutes {r['stops']}; 429s from the service: {r['throttled']}; "
              f"status checks: {r['status']}")
    return 0


def measure_pacing() -> dict:
    """When mail leaves under a managed domain's limits (fake ACS enforcing them, a simulated
    clock): ten warnings, then ten stop notices twenty minutes later, delivered by a run a minute."""
    from databricks.sandbox.fake_acs import FakeAcs

    from databricks.teachinglab.adapters.ledger.models import OutboxMessage, open_ledger
    from databricks.teachinglab.adapters.mail.acs import AcsTransport
    from databricks.teachinglab.adapters.mail.outbox import Pace, deliver_pending, enqueue
    from databricks.teachinglab.adapters.mail.render import render
    ctx = {"group": "group_01", "cluster_name": "cluster_01", "cluster_id": "c", "course": "bench",
           **quota_figures(Limits.from_minutes(400, 480), 405 * 60_000, 405 * 60_000), "resets_at": "00:00",
           "seen_at": "", "tz_name": "UTC", "contact": "admin@example.edu"}
    import logging
    logging.disable(logging.WARNING)  # "the limit is reached" at every run: the figures below say it
    with tempfile.TemporaryDirectory() as tmp, FakeAcs() as acs:
        acs.state.send_limits = (5, 10)
        clock = [1000.0]
        acs.state.clock = lambda: clock[0]
        s = load_settings({"DATABRICKS_HOST": "h", "DATABRICKS_TOKEN": "t", "HOME": tmp, "EMAIL_TRANSPORT": "acs",
                           "AZURE_EMAIL_CONNECTION_STRING": acs.connection_string, "EMAIL_SENDER": "lab@x.azurecomm.net"})
        db = open_ledger(db_path=Path(tmp) / "pace.db", database_url=None, now=START)
        transport = AcsTransport(s.mail)
        transport.poll_interval = 0  # the simulated minute passes without waiting
        sent_at: dict[str, int] = {}
        for minute in range(0, 121):
            now = START + timedelta(minutes=minute)
            clock[0] = 1000.0 + minute * 60
            for kind, at in (("warning", 0), ("termination", 20)):
                if minute == at:
                    for i in range(10):
                        enqueue(kind=kind, key=f"{kind}:g{i}", to=[f"s{i}@example.edu"], rendered=render(kind, ctx),
                                now=now)
            deliver_pending(transport, "lab@x.azurecomm.net", now, budget_seconds=10,
                            pace=Pace(s.mail.acs_send_per_minute, s.mail.acs_send_per_hour))
            for m in OutboxMessage.select().where(OutboxMessage.status == "sent"):
                sent_at.setdefault(m.dedupe_key, minute)
        db.close()
    logging.disable(logging.NOTSET)

    def span(kind: str) -> str:
        minutes = sorted(v for k, v in sent_at.items() if k.startswith(kind))
        return f"{minutes[0]}-{minutes[-1]} ({len(minutes)} of 10)" if minutes else "none"
    return {"warnings": span("warning"), "stops": span("termination"), "throttled": acs.state.throttled["send"],
            "status": len(acs.state.requests["status"])}


def measure_mail(n: int = 40) -> dict:
    """Seconds to deliver n messages through the real ACS client (fake ACS on loopback) and
    through SMTP with STARTTLS and AUTH (aiosmtpd on loopback)."""
    import socket
    import ssl

    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult
    import trustme

    from databricks.sandbox.fake_acs import FakeAcs

    from databricks.teachinglab.adapters.ledger.models import open_ledger
    from databricks.teachinglab.adapters.mail.acs import AcsTransport
    from databricks.teachinglab.adapters.mail.smtp import SmtpTransport
    from databricks.teachinglab.adapters.mail.render import render
    from databricks.teachinglab.adapters.mail.outbox import deliver_pending, enqueue

    ctx = {"group": "group_01", "cluster_name": "cluster_01", "cluster_id": "c", "course": "bench",
           **quota_figures(Limits.from_minutes(400, 480), 405 * 60_000, 405 * 60_000), "resets_at": "00:00", "seen_at": "", "tz_name": "UTC",
           "contact": "admin@example.edu"}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        base = {"DATABRICKS_HOST": "h", "DATABRICKS_TOKEN": "t", "HOME": tmp, "EMAIL_SENDER": "lab@example.edu"}

        def run(name: str, transport, db_name: str) -> None:
            db = open_ledger(db_path=Path(tmp) / db_name, database_url=None, now=START)
            for i in range(n):
                enqueue(kind="warning", key=f"w:{i}", to=[f"s{i}@example.edu"], rendered=render("warning", ctx),
                        now=START)
            t0 = time.perf_counter()
            result = deliver_pending(transport, "lab@example.edu", START, budget_seconds=60)
            results[name] = (time.perf_counter() - t0, result.sent)
            db.close()

        with FakeAcs() as acs:
            acs.state.send_limits = None  # raised limits: this measures delivery, not the pacing
            s = load_settings({**base, "EMAIL_TRANSPORT": "acs", "AZURE_EMAIL_CONNECTION_STRING": acs.connection_string})
            run("acs", AcsTransport(s.mail), "acs.db")
            # A service that never answers: delivery must end near MAIL_BUDGET_SECONDS (3 s here),
            # leaving every message pending for the next run.
            acs.state.default, acs.state.stall_seconds = "stall", 30
            db = open_ledger(db_path=Path(tmp) / "stall.db", database_url=None, now=START)
            for i in range(n):
                enqueue(kind="warning", key=f"s:{i}", to=[f"s{i}@example.edu"], rendered=render("warning", ctx),
                        now=START)
            t0 = time.perf_counter()
            stalled = deliver_pending(AcsTransport(s.mail), "lab@example.edu", START, budget_seconds=3)
            results["acs stalled, 3 s budget"] = (time.perf_counter() - t0, stalled.sent)
            db.close()

        ca = trustme.CA()
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(server_ctx)

        class Sink:
            async def handle_DATA(self, server, session, envelope):
                return "250 OK"

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        controller = Controller(Sink(), hostname="127.0.0.1", port=port, tls_context=server_ctx,
                                require_starttls=True, auth_require_tls=True,
                                authenticator=lambda *a: AuthResult(success=True))
        controller.start()
        ca_file = Path(tmp) / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        try:
            s = load_settings({**base, "EMAIL_TRANSPORT": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port),
                               "SMTP_USERNAME": "u", "SMTP_PASSWORD": "p", "SMTP_CA_FILE": str(ca_file)})
            run("smtp", SmtpTransport(s.mail), "smtp.db")
        finally:
            controller.stop()
    return results


if __name__ == "__main__":
    raise SystemExit(main())
