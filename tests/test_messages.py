"""Rendering (pure) and the outbox (idempotent queue, retries, budget)."""
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from zoneinfo import ZoneInfo

import pytest

from databricks.teachinglab.adapters.mail import outbox as ob
from databricks.teachinglab.adapters.ledger.models import OutboxMessage
from databricks.teachinglab.adapters.mail.render import render
from databricks.teachinglab.core.messages import EVENTS, OutgoingMail, quota_figures, quota_resets_at
from databricks.teachinglab.core.quota import Limits
from databricks.teachinglab.core.units import UNITS
from databricks.teachinglab.core.settings import MailSettings
from databricks.teachinglab.adapters.mail.transports import (TRANSPORTS, FileTransport, PermanentSendError,
                                               TransientSendError, to_email)

TZ = ZoneInfo("Asia/Jerusalem")
NOW = datetime(2026, 3, 2, 13, 0, tzinfo=timezone.utc)


def ctx(limits=Limits.from_minutes(400, 480), used=405 * 60_000, used_ms=405 * 60_000, granted=0, **kw):
    base = {"group": "group_01", "cluster_name": "cluster_01", "cluster_id": "c-1", "course": "bigdata",
            **quota_figures(limits, used, used_ms, granted), "resets_at": quota_resets_at(NOW, TZ),
            "seen_at": "2026-03-02 15:00 IST", "tz_name": "Asia/Jerusalem", "contact": "admin@uni.edu"}
    return {**base, **kw}


DBU_LIMITS = Limits.of(UNITS["dbu"], 6, 8)


def test_a_dbu_quota_is_shown_in_dbu_with_minutes_beside_it():
    r = render("warning", ctx(DBU_LIMITS, used=6_259_999, used_ms=250 * 60_000 + 59_999, granted=1.5,
                              granted_at="2026-03-02 14:20 IST"))
    assert "6.25 of its 8.00 DBU (250 minutes of uptime)" in r.text   # rounded down, never up
    assert r.subject.endswith("6.25 of 8.00 DBU used today")
    assert "when it reaches 8.00 DBU" in r.text and "an extra 1.50 DBU granted" in r.text
    stopped = render("termination", ctx(DBU_LIMITS, used=8_000_000, used_ms=320 * 60_000))
    assert "8.00 of its 8.00 DBU (320 minutes of uptime)" in stopped.text
    assert "daily limit of 8.00 DBU reached" in stopped.subject


def test_a_usd_quota_is_shown_in_usd():
    r = render("warning", ctx(Limits.of(UNITS["usd"], 4, 5.5), used=4_100_000, used_ms=90 * 60_000))
    assert "4.10 of its 5.50 USD (90 minutes of uptime)" in r.text


def test_every_kind_has_an_event_header_and_renders():
    assert set(EVENTS.values()) == {"quota-warning", "quota-termination", "quota-retermination", "quota-block-undone", "failure",
                                    "daily-report", "test", "lab-cluster-tags-changed", "serverless-blocked"}
    for kind in ("warning", "termination", "retermination"):
        r = render(kind, ctx())
        assert r.subject and "480" in r.text and "480" in r.html


def test_warning_says_what_when_and_what_to_do():
    r = render("warning", ctx())
    assert "405 of its 480 minutes" in r.text
    assert "2026-03-03 00:00 IST" in r.text  # the reset, in local time
    assert "save your work" in r.text and "admin@uni.edu" in r.text


def test_names_are_escaped_in_html_only():
    r = render("warning", ctx(group="<script>alert(1)</script>", cluster_name="a&b"))
    assert "<script>" not in r.html and "&lt;script&gt;" in r.html and "a&amp;b" in r.html
    assert "<script>alert(1)</script>" in r.text


def test_hebrew_names_render_and_are_isolated_for_bidi():
    r = render("termination", ctx(group="קבוצה שלוש", cluster_name="אשכול_03"))
    assert "קבוצה שלוש" in r.text and "<bdi>קבוצה שלוש</bdi>" in r.html
    mail = to_email(_mail(r, "termination"))
    parsed = message_from_bytes(bytes(mail), policy=policy.default)
    assert "קבוצה שלוש" in parsed.get_body(("plain",)).get_content()
    assert parsed["X-Teachinglab-Event"] == "quota-termination"


def test_reset_time_follows_dst():
    # the night of the spring-forward switch still resets at local midnight
    assert quota_resets_at(datetime(2026, 3, 27, 12, tzinfo=timezone.utc), TZ) == "2026-03-28 00:00 IDT"
    assert quota_resets_at(datetime(2026, 10, 25, 12, tzinfo=timezone.utc), TZ) == "2026-10-26 00:00 IST"


def test_template_folder_overrides_file_by_file(tmp_path):
    (tmp_path / "warning.subject.j2").write_text("Heads up, {{ group }}")
    r = render("warning", ctx(), templates_dir=tmp_path)
    assert r.subject == "Heads up, group_01"
    assert "405 of its 480 minutes" in r.text  # the packaged body is still used


def _mail(rendered, kind):
    return OutgoingMail(dedupe_key=f"{kind}:x:2026-03-02", event=EVENTS[kind], sender="lab@uni.edu",
                        to_addrs="a@uni.edu", cc_addrs="admin@uni.edu", subject=rendered.subject,
                        text_body=rendered.text, html_body=rendered.html)


@pytest.fixture
def db(ledger_db):
    return ledger_db  # conftest: a real SQLite ledger in a temp folder


class Flaky:
    name = "flaky"

    def __init__(self, outcomes):
        self.outcomes = list(outcomes)
        self.sent = []

    def send(self, message, *, deadline=None):
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if outcome == "transient":
            raise TransientSendError("503 from the mail service")
        if outcome == "permanent":
            raise PermanentSendError("400 bad address")
        self.sent.append(message.dedupe_key)
        return f"ref-{len(self.sent)}"


def _queue(key, now=NOW):
    return ob.enqueue(kind="warning", key=key, to=["a@uni.edu"], cc=["admin@uni.edu"],
                      rendered=render("warning", ctx()), now=now)


def test_enqueue_is_idempotent(db):
    assert _queue("warning:c1:2026-03-02") is True
    assert _queue("warning:c1:2026-03-02") is False
    assert OutboxMessage.select().count() == 1


def test_transient_failure_is_retried_with_backoff_and_sent_once(db):
    _queue("k1")
    t = Flaky(["transient"])
    first = ob.deliver_pending(t, "lab@uni.edu", NOW, budget_seconds=5)
    assert (first.sent, first.retrying) == (0, 1)
    m = OutboxMessage.get()
    assert m.status == "pending" and m.attempts == 1 and m.next_attempt_at == NOW + timedelta(minutes=2)
    assert ob.deliver_pending(t, "lab@uni.edu", NOW + timedelta(minutes=1), budget_seconds=5).sent == 0
    assert ob.deliver_pending(t, "lab@uni.edu", NOW + timedelta(minutes=2), budget_seconds=5).sent == 1
    assert ob.deliver_pending(t, "lab@uni.edu", NOW + timedelta(minutes=30), budget_seconds=5).sent == 0
    assert t.sent == ["k1"] and OutboxMessage.get().status == "sent"


def test_permanent_failure_is_marked_failed_and_kept(db):
    _queue("k1")
    result = ob.deliver_pending(Flaky(["permanent"]), "lab@uni.edu", NOW, budget_seconds=5)
    assert result.failed == 1
    m = OutboxMessage.get()
    assert m.status == "failed" and "bad address" in m.last_error
    assert ob.retry(None, NOW) == 1 and OutboxMessage.get().status == "pending"


def test_budget_leaves_the_rest_for_the_next_run(db):
    for i in range(5):
        _queue(f"k{i}")
    ticks = iter([0, 0, 1, 2, 3, 10, 10, 10])
    result = ob.deliver_pending(Flaky([]), "lab@uni.edu", NOW, budget_seconds=2.5,
                                monotonic=lambda: next(ticks))
    assert (result.sent, result.left) == (3, 2)
    assert OutboxMessage.select().where(OutboxMessage.status == "pending").count() == 2


def test_file_transport_writes_an_eml_and_overwrites_on_resend(tmp_path, db):
    _queue("warning:c1:2026-03-02:24000000")
    m = ob.finished(OutboxMessage.get(), "lab@uni.edu")
    t = FileTransport(MailSettings(file_dir=tmp_path / "mail"))
    path = t.send(m)
    t.send(m)  # a resend after a crash does not make a second file
    files = list((tmp_path / "mail").iterdir())
    assert len(files) == 1 and str(files[0]) == path
    parsed = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert parsed["X-Teachinglab-Event"] == "quota-warning" and parsed["Cc"] == "admin@uni.edu"
    assert parsed.get_body(("html",)) is not None


def test_transports_are_chosen_from_a_registry(tmp_path):
    """make_transport builds what the registry holds under the given name, not a fixed class."""
    from databricks.teachinglab.adapters.mail.transports import ConsoleTransport, FileTransport, make_transport, register
    settings = MailSettings(file_dir=tmp_path)
    assert isinstance(make_transport("file", settings), FileTransport)
    assert isinstance(make_transport("console", settings), ConsoleTransport)

    @register("pigeon")
    class Pigeon:
        def __init__(self, settings):
            self.settings = settings
    try:
        built = make_transport("pigeon", settings)
        assert isinstance(built, Pigeon) and built.settings is settings
    finally:
        TRANSPORTS.pop("pigeon")
