"""SMTP delivery against aiosmtpd on a free loopback port: STARTTLS with a test CA, and AUTH."""
from datetime import datetime, timezone
from email import message_from_bytes, policy

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from databricks.teachinglab.core.messages import quota_figures
from databricks.teachinglab.core.quota import Limits
from databricks.teachinglab.cli.config import load_settings
from databricks.teachinglab.adapters.ledger.models import OutboxMessage
from databricks.teachinglab.adapters.mail.smtp import SmtpTransport
from databricks.teachinglab.adapters.mail.render import render
from databricks.teachinglab.adapters.mail.outbox import deliver_pending, enqueue

NOW = datetime(2026, 3, 2, 13, 0, tzinfo=timezone.utc)


from conftest import Inbox, free_port as _free_port


@pytest.fixture
def ca():
    return trustme.CA()


@pytest.fixture
def smtpd(ca, tmp_path):
    cert = ca.issue_cert("127.0.0.1", "localhost")
    import ssl
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    inbox = Inbox()

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = auth_data.login == b"lab" and auth_data.password == b"s3cret-pw"
        return AuthResult(success=ok, handled=False)

    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, tls_context=server_ctx,
                            require_starttls=True, authenticator=authenticator, auth_require_tls=True)
    controller.start()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    yield inbox, port, ca_file
    controller.stop()


@pytest.fixture
def db(ledger_db):
    return ledger_db  # conftest: a real SQLite ledger in a temp folder


def settings(tmp_path, port, ca_file, **extra):
    return load_settings({"DATABRICKS_HOST": "h", "DATABRICKS_TOKEN": "t", "HOME": str(tmp_path),
                          "EMAIL_TRANSPORT": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port),
                          "SMTP_USERNAME": "lab", "SMTP_PASSWORD": "s3cret-pw", "SMTP_CA_FILE": str(ca_file),
                          "EMAIL_SENDER": "lab@uni.edu", **extra})


def queue(kind="termination"):
    ctx = {"group": "קבוצה <3>", "cluster_name": "cluster_01", "cluster_id": "c1", "course": "bigdata",
           **quota_figures(Limits.from_minutes(400, 480), 480 * 60_000, 480 * 60_000), "resets_at": "2026-03-03 00:00 IST", "seen_at": "",
           "tz_name": "Asia/Jerusalem", "contact": "admin@uni.edu"}
    enqueue(kind=kind, key=f"{kind}:c1:2026-03-02", to=["s1@uni.edu", "s2@uni.edu"], cc=["admin@uni.edu"],
            rendered=render(kind, ctx), now=NOW)


def test_starttls_auth_multipart_and_header(smtpd, db, tmp_path):
    inbox, port, ca_file = smtpd
    queue()
    result = deliver_pending(SmtpTransport(settings(tmp_path, port, ca_file).mail), "lab@uni.edu", NOW,
                             budget_seconds=10)
    assert result.sent == 1 and OutboxMessage.get().status == "sent"
    rcpts, raw = inbox.messages[0]
    assert sorted(rcpts) == ["admin@uni.edu", "s1@uni.edu", "s2@uni.edu"]
    mail = message_from_bytes(raw, policy=policy.default)
    assert mail["X-Teachinglab-Event"] == "quota-termination"
    assert mail.get_content_type() == "multipart/alternative"
    assert "קבוצה <3>" in mail.get_body(("plain",)).get_content()
    assert "קבוצה &lt;3&gt;" in mail.get_body(("html",)).get_content()


def test_wrong_password_is_a_permanent_failure(smtpd, db, tmp_path):
    inbox, port, ca_file = smtpd
    queue()
    deliver_pending(SmtpTransport(settings(tmp_path, port, ca_file, SMTP_PASSWORD="nope").mail), "lab@uni.edu",
                    NOW, budget_seconds=10)
    m = OutboxMessage.get()
    assert m.status == "failed" and "login refused" in m.last_error and inbox.messages == []
    assert "nope" not in m.last_error


def test_untrusted_certificate_is_retried_not_sent(smtpd, db, tmp_path):
    inbox, port, _ = smtpd
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    queue()
    deliver_pending(SmtpTransport(settings(tmp_path, port, other).mail), "lab@uni.edu", NOW, budget_seconds=10)
    assert OutboxMessage.get().status == "pending" and inbox.messages == []


def test_server_down_is_retried_later(db, tmp_path):
    port = _free_port()  # nothing listens here
    queue()
    deliver_pending(SmtpTransport(settings(tmp_path, port, tmp_path / "none.pem", SMTP_CA_FILE="").mail),
                    "lab@uni.edu", NOW, budget_seconds=2)
    assert OutboxMessage.get().status == "pending" and "unavailable" in OutboxMessage.get().last_error
