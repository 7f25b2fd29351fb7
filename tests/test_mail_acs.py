"""The real azure-communication-email client against a local fake ACS that checks HMAC signatures."""
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from conftest import ROOT
from databricks.teachinglab.core.messages import quota_figures
from databricks.teachinglab.core.quota import Limits
from databricks.sandbox.fake_acs import FakeAcs
from databricks.teachinglab.cli.config import load_settings
from databricks.teachinglab.adapters.ledger.models import OutboxMessage
from databricks.teachinglab.cli.config import parse_connection_string
from databricks.teachinglab.adapters.mail.acs import AcsTransport
from databricks.teachinglab.adapters.mail.render import render
from databricks.teachinglab.adapters.mail.outbox import deliver_pending, enqueue

NOW = datetime(2026, 3, 2, 13, 0, tzinfo=timezone.utc)
SENDER = "DoNotReply@lab.azurecomm.net"


@pytest.fixture
def acs():
    with FakeAcs() as fake:
        yield fake


@pytest.fixture
def db(ledger_db):
    return ledger_db  # conftest: a real SQLite ledger in a temp folder


def settings_for(acs, tmp_path, **extra):
    return load_settings({"DATABRICKS_HOST": "http://127.0.0.1:1", "DATABRICKS_TOKEN": "t", "HOME": str(tmp_path),
                          "EMAIL_TRANSPORT": "acs", "AZURE_EMAIL_CONNECTION_STRING": acs.connection_string,
                          "EMAIL_SENDER": SENDER, "ADMIN_EMAIL": "admin@uni.edu", **extra})


def queue(n=1, kind="warning"):
    ctx = {"group": "קבוצה 1", "cluster_name": "cluster_01", "cluster_id": "c1", "course": "bigdata",
           **quota_figures(Limits.from_minutes(400, 480), 405 * 60_000, 405 * 60_000), "resets_at": "2026-03-03 00:00 IST", "seen_at": "",
           "tz_name": "Asia/Jerusalem", "contact": "admin@uni.edu"}
    for i in range(n):
        enqueue(kind=kind, key=f"{kind}:c{i}:2026-03-02", to=[f"s{i}@uni.edu"], cc=["admin@uni.edu"],
                rendered=render(kind, ctx), now=NOW)


def deliver(transport, db, now=NOW, budget=5.0):
    return deliver_pending(transport, SENDER, now, budget_seconds=budget)


def test_connection_string_keeps_an_http_endpoint():
    assert parse_connection_string("endpoint=http://127.0.0.1:9/;accesskey=abc=") == ("http://127.0.0.1:9", "abc=")


def test_send_succeeds_with_signature_and_event_header(acs, db, tmp_path):
    queue()
    result = deliver(AcsTransport(settings_for(acs, tmp_path).mail), db)
    assert result.sent == 1 and acs.state.bad_signatures == 0
    m = OutboxMessage.get()
    assert m.status == "sent" and m.transport == "acs" and m.provider_ref
    got = acs.state.delivered[0]
    assert got["headers"]["X-Teachinglab-Event"] == "quota-warning"
    assert got["recipients"]["cc"] == [{"address": "admin@uni.edu"}] and got["senderAddress"] == SENDER
    assert "קבוצה 1" in got["content"]["plainText"]


def test_endpoint_and_key_variables_work_too(acs, db, tmp_path):
    queue()
    s = load_settings({"DATABRICKS_HOST": "h", "DATABRICKS_TOKEN": "t", "HOME": str(tmp_path),
                       "EMAIL_TRANSPORT": "acs", "AZURE_EMAIL_ENDPOINT": acs.endpoint,
                       "AZURE_EMAIL_ACCESS_KEY": acs.state.access_key, "EMAIL_SENDER": SENDER})
    assert deliver(AcsTransport(s.mail), db).sent == 1


def test_a_wrong_key_is_refused_by_the_signature_check_and_marked_failed(acs, db, tmp_path):
    queue()
    import base64
    wrong = f"endpoint={acs.endpoint}/;accesskey={base64.b64encode(b'x' * 32).decode()}"
    result = deliver(AcsTransport(settings_for(acs, tmp_path, AZURE_EMAIL_CONNECTION_STRING=wrong).mail), db)
    assert result.failed == 1 and acs.state.bad_signatures >= 1 and acs.state.sends == 0
    assert OutboxMessage.get().status == "failed" and "401" in OutboxMessage.get().last_error


@pytest.mark.parametrize("outcome,status,retry_after", [("429", "pending", 2), ("500", "pending", None),
                                                        ("503", "pending", None), ("401", "failed", None),
                                                        ("400", "failed", None), ("fail", "failed", None)])
def test_outcomes_map_to_retry_or_failure(acs, db, tmp_path, outcome, status, retry_after):
    queue()
    acs.state.outcomes = [outcome]
    acs.state.retry_after = 600
    deliver(AcsTransport(settings_for(acs, tmp_path).mail), db)
    m = OutboxMessage.get()
    assert m.status == status
    if outcome == "429":
        assert m.next_attempt_at == NOW + timedelta(seconds=600)  # Retry-After beats the backoff
    if status == "pending":
        assert deliver(AcsTransport(settings_for(acs, tmp_path).mail), db, now=NOW + timedelta(hours=1)).sent == 1
        assert len(acs.state.delivered) == 1


def test_operation_still_running_at_budget_end_is_checked_next_run_not_resent(acs, db, tmp_path):
    queue()
    acs.state.default = "hold"
    transport = AcsTransport(settings_for(acs, tmp_path).mail)
    result = deliver(transport, db, budget=1.0)  # how long it takes is in make bench
    m = OutboxMessage.get()
    assert (result.sent, m.status) == (0, "accepted") and m.provider_ref
    acs.release()
    acs.state.settle_seconds = 0  # fifteen minutes on: long done
    assert deliver(transport, db, now=NOW + timedelta(minutes=15)).sent == 1
    assert acs.state.sends == 1 and len(acs.state.delivered) == 1


def test_forty_messages_with_a_stalled_service_stay_pending_and_go_out_next_run(acs, db, tmp_path):
    queue(40)
    acs.state.default = "stall"
    acs.state.stall_seconds = 30
    transport = AcsTransport(settings_for(acs, tmp_path).mail)
    result = deliver(transport, db, budget=3.0)  # the time it takes is measured by make bench
    assert result.sent == 0 and OutboxMessage.select().where(OutboxMessage.status == "pending").count() == 40
    acs.state.default = "succeed"
    acs.state.send_limits = None  # a raised limit: this is about the stall, not the pacing
    later = deliver(transport, db, now=NOW + timedelta(hours=1), budget=60)
    assert later.sent == 40 and len(acs.state.delivered) == 40


# hold: the kill lands after the 202, before or after the outbox noted it (1 or 2 attempts);
# slow: it lands while the send itself is in flight (the rerun is the 2nd attempt).
@pytest.mark.parametrize("mode,attempts", [("hold", (1, 2)), ("slow", (2,))])
def test_killed_in_the_middle_of_a_send_sends_once(acs, tmp_path, mode, attempts):
    """A real kill: the CLI is SIGKILLed while ACS holds the operation (hold), or before ACS has
    even answered the send (slow); the rerun finds the operation and does not send again."""
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "EMAIL_TRANSPORT": "acs",
           "AZURE_EMAIL_CONNECTION_STRING": acs.connection_string, "EMAIL_SENDER": SENDER,
           "ADMIN_EMAIL": "admin@uni.edu", "CLUSTER_UPTIMES_DB": str(tmp_path / "l.db"),
           "MAIL_BUDGET_SECONDS": "60", "QUOTA_TIMEZONE": "UTC"}
    acs.state.default = mode
    acs.state.stall_seconds = 20
    proc = subprocess.Popen([sys.executable, "-m", "databricks.main", "--test_email"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while acs.state.sends == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert acs.state.sends == 1
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    acs.release()
    acs.state.default = "succeed"
    acs.state.settle_seconds = 0  # the reruns come within a second; the service has finished by then
    for _ in range(2):
        r = subprocess.run([sys.executable, "-m", "databricks.main", "--retry", "all"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    assert acs.state.sends == 1 and len(acs.state.delivered) == 1
    r = subprocess.run([sys.executable, "-m", "databricks.main", "--outbox", "--json"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    import json
    row = json.loads(r.stdout)[0]
    assert row["status"] == "sent" and row["attempts"] in attempts


def test_a_private_ca_is_honoured_through_requests_ca_bundle(db, tmp_path):
    import ssl

    import trustme
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with FakeAcs(tls_context=server_ctx) as acs:
        assert acs.endpoint.startswith("https://")
        queue()
        untrusted = deliver(AcsTransport(settings_for(acs, tmp_path).mail), db)
        assert untrusted.sent == 0 and "SSL" in OutboxMessage.get().last_error.upper()
        trusted = AcsTransport(settings_for(acs, tmp_path, REQUESTS_CA_BUNDLE=str(bundle)).mail)
        assert deliver(trusted, db, now=NOW + timedelta(hours=1)).sent == 1
        assert acs.state.bad_signatures == 0 and len(acs.state.delivered) == 1


# -- the service's limits --------------------------------------------------------------------------
from databricks.teachinglab.adapters.mail.outbox import Pace  # noqa: E402


def test_sends_are_paced_within_the_services_limits_across_runs_stops_first(acs, db, tmp_path):
    """An Azure-managed domain allows 5 sends a minute and 10 an hour. Twelve warnings queued
    before two stop notices: the stops go first, no run exceeds the limits (the fake ACS would
    answer 429), and the rest go out when the hour allows."""
    acs.state.send_limits = (5, 10)
    clock = [1000.0]
    acs.state.clock = lambda: clock[0]
    acs.state.settle_seconds = 0
    queue(12)
    queue(2, kind="termination")
    transport = AcsTransport(settings_for(acs, tmp_path).mail)
    pace = Pace(5, 10)

    def run(minutes):
        clock[0] = 1000.0 + minutes * 60
        return deliver_pending(transport, SENDER, NOW + timedelta(minutes=minutes), budget_seconds=10, pace=pace)

    first = run(0)
    assert first.sent == 5 and first.left == 9
    sent = [m.kind for m in OutboxMessage.select().where(OutboxMessage.status == "sent").order_by(OutboxMessage.sent_at)]
    assert sent.count("termination") == 2                       # the stops did not wait behind warnings
    assert run(0.5).sent == 0                                    # the minute is spent
    assert run(1.1).sent == 5                                    # 10 in the hour now
    assert run(5).sent == 0                                      # the hour is spent
    assert run(61).sent == 4
    assert acs.state.throttled["send"] == 0                      # never refused: paced, not throttled
    assert OutboxMessage.select().where(OutboxMessage.status == "sent").count() == 14


def test_a_status_check_refused_with_429_is_neither_an_attempt_nor_a_failure(acs, db, tmp_path):
    """ACS allows 60 status checks a minute: one refused leaves the message accepted, its attempt
    count as it was, checked again after Retry-After; a message the service has is never failed
    because its status could not be read, however long that lasts."""
    queue()
    acs.state.status_limits = (0, 0)                # every status check refused
    transport = AcsTransport(settings_for(acs, tmp_path).mail)
    deliver(transport, db)
    m = OutboxMessage.get()
    assert (m.status, m.attempts) == ("accepted", 1) and "status not known yet" in m.last_error
    assert m.next_attempt_at > NOW
    for hour in range(1, 12):
        deliver(transport, db, now=NOW + timedelta(hours=hour))
    m = OutboxMessage.get()
    assert (m.status, m.attempts) == ("accepted", 1) and acs.state.sends == 1
    acs.state.status_limits = (60, 200)
    assert deliver(transport, db, now=NOW + timedelta(hours=13)).sent == 1


def test_each_message_is_asked_about_at_most_once_a_run(acs, db, tmp_path):
    queue(3)
    acs.state.default = "hold"
    transport = AcsTransport(settings_for(acs, tmp_path).mail)
    deliver(transport, db, budget=10)
    assert len(acs.state.requests["status"]) == 3                # one check each, not one every 0.25 s
    deliver(transport, db, now=NOW + timedelta(minutes=1), budget=10)
    assert len(acs.state.requests["status"]) == 6 and acs.state.sends == 3
