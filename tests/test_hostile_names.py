"""Names come in any script, with spaces, quotes, backslashes and line breaks: one bad name or
message never stops enforcement, other mail or a backup. Group names from a Moodle export go
through the real poll against the emulated workspace, then through SMTP (aiosmtpd) and `file`."""
from email import message_from_bytes, policy

import pytest
from aiosmtpd.controller import Controller

from conftest import ADMIN, Inbox, free_port, local
from databricks.sandbox import Fault
from databricks.teachinglab.adapters.ledger.models import OutboxMessage
from databricks.teachinglab.adapters.mail.transports import message_id

DAY = (2026, 3, 2)
NAMES = ["צוות אלפא", "Team A", "Team B", 'Team "Q"', "Team \\ B", "Team\r\nBcc: evil@attacker.example"]


def at(h, m=0):
    return local(*DAY, h, m)


@pytest.fixture
def relay():
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def hostile_course(env) -> dict[str, str]:
    """One lab cluster per hostile group name, each group with two students; all run from 08:00."""
    ids = {}
    for n, name in enumerate(NAMES, start=1):
        members = [f"s{n}{k}@students.example.edu" for k in (1, 2)]
        env.workspace.add_group(name, members)
        ids[name] = env.workspace.add_cluster(f"bigdata-g{n}", tags={"group": name, "course": "bigdata"},
                                              acl=[{"group_name": name, "permission_level": "CAN_RESTART"}])
        env.workspace.session(ids[name], at(8), None)
    return ids


def delivered(transport, env, relay) -> list[bytes]:
    if transport == "smtp":
        return [raw for _, raw in relay[0].messages]
    return [p.read_bytes() for p in sorted((env.tmp / "mail").glob("*.eml"))]


@pytest.mark.parametrize("transport", ["smtp", "file"])
def test_groups_named_in_any_script_are_warned_stopped_and_mailed_through_every_transport(make_env, relay, transport):
    extra = {"EMAIL_TRANSPORT": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(relay[1]),
             "SMTP_STARTTLS": "0", "EMAIL_SENDER": "lab@uni.example"} if transport == "smtp" else \
        {"EMAIL_SENDER": "lab@uni.example"}
    env = make_env(at(7), **extra)
    ids = hostile_course(env)
    env.polls(at(8), at(16, 15))
    assert all(env.workspace.cluster(cid).state == "TERMINATED" for cid in ids.values())
    rows = list(OutboxMessage.select())
    assert rows and {m.status for m in rows} == {"sent"}, [(m.dedupe_key, m.last_error) for m in rows]
    stops = [m for m in rows if m.kind == "termination"]
    assert len(stops) == len(NAMES)                                # one per group, none lost to another's
    assert all("@students.example.edu" in m.to_addrs for m in stops)  # members read, backslash included
    mails = [message_from_bytes(raw, policy=policy.default) for raw in delivered(transport, env, relay)]
    assert len(mails) == len(rows)
    ids_seen = [m["Message-ID"] for m in mails]
    assert len(set(ids_seen)) == len(mails) and all(i.isascii() and i.endswith("@uni.example>") for i in ids_seen)
    assert set(ids_seen) == {message_id(m.dedupe_key, "lab@uni.example") for m in rows}  # stable per key
    for mail in mails:
        assert "Bcc" not in mail and "evil@attacker.example" not in (mail["To"] or "") + (mail["Cc"] or "")
        assert "\n" not in str(mail["Subject"]) and "\r" not in str(mail["Subject"])
    assert any("צוות אלפא" in str(m["Subject"]) for m in mails)


def test_one_message_that_cannot_be_encoded_is_failed_at_once_and_the_rest_go_out(make_env):
    env = make_env(at(7))
    env.seed({"users": [], "groups": [{"name": "g1", "members": ["a@students.example.edu"]}],
              "clusters": [{"name": "cluster_01", "group": "g1"}]})
    env.workspace.session(env.workspace.cluster_named("cluster_01").cluster_id, at(8), None)
    from databricks.teachinglab.adapters.ledger import repository as ledger
    from databricks.teachinglab.core.messages import EVENTS
    env.lab()
    with ledger.transaction():  # a message no encoder takes (an address the email package chokes on)
        ledger.insert_message(key="test:broken", kind="test", event=EVENTS["test"], to="a@[bad", cc="",
                              subject="broken", text="x", html="x", now=at(7))
    env.polls(at(8), at(16, 15))
    broken = OutboxMessage.get(OutboxMessage.dedupe_key == "test:broken")
    assert broken.status == "failed" and broken.attempts == 1 and "cannot be encoded" in broken.last_error
    kinds = {m.kind: m.status for m in OutboxMessage.select() if m.dedupe_key != "test:broken"}
    assert kinds["warning"] == kinds["termination"] == "sent"
    alerts = [m for m in OutboxMessage.select() if m.kind == "failure" and "mail delivery" in m.dedupe_key]
    assert len(alerts) == 1 and "test:broken" in alerts[0].text_body   # one alert a day


def test_a_group_whose_members_cannot_be_read_is_stopped_and_blocked_and_told_later(make_env):
    env = make_env(at(7))
    env.seed({"users": [], "groups": [{"name": "g1", "members": ["a@students.example.edu"]}],
              "clusters": [{"name": "cluster_01", "group": "g1"}]})
    cid = env.workspace.cluster_named("cluster_01").cluster_id
    env.workspace.session(cid, at(8), None)
    env.polls(at(8), at(15, 45))
    fault = env.workspace.inject(Fault(method="GET", path="/preview/scim/v2/Groups", status=500, times=None))
    env.polls(at(16), at(16, 30))                       # the hard quota at 16:00: members unreadable
    assert env.workspace.cluster(cid).state == "TERMINATED"
    assert env.workspace.group_level(cid, "g1") == "CAN_ATTACH_TO"
    stops = [m for m in OutboxMessage.select() if m.kind == "termination"]
    assert [(m.to_addrs, m.dedupe_key.endswith(":admin")) for m in stops] == [(ADMIN, True)]
    env.workspace.remove_fault(fault)
    env.poll(at(16, 45))
    stops = [m for m in OutboxMessage.select() if m.kind == "termination"]
    assert len(stops) == 2 and "a@students.example.edu" in stops[1].to_addrs
    env.poll(at(17))
    assert len([m for m in OutboxMessage.select() if m.kind == "termination"]) == 2  # told once


def test_a_broken_mail_template_is_that_messages_problem_not_the_polls(make_env, tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "warning.txt.j2").write_text("{{ no_such_value.attribute }}")
    env = make_env(at(7), MAIL_TEMPLATES_DIR=str(templates))
    env.seed({"users": [], "groups": [{"name": "g1", "members": ["a@students.example.edu"]}],
              "clusters": [{"name": "cluster_01", "group": "g1"}]})
    cid = env.workspace.cluster_named("cluster_01").cluster_id
    env.workspace.session(cid, at(8), None)
    env.polls(at(8), at(16, 15))
    assert env.workspace.cluster(cid).state == "TERMINATED"
    warning = next(m for m in OutboxMessage.select() if m.kind == "warning")
    assert warning.status == "sent" and "405 of its 480 minutes" in warning.text_body  # the packaged templates
    alerts = [m for m in OutboxMessage.select() if m.kind == "failure"]
    assert len(alerts) == 1 and "no_such_value" in alerts[0].text_body and "warning" in alerts[0].text_body
