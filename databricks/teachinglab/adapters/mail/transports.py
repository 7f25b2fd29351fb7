"""Mail transports, chosen by name (EMAIL_TRANSPORT) from a registry.

A transport takes one finished message (core.messages.OutgoingMail: addresses, bodies and
attachments, nothing to look up) and the run's Deadline, and either returns a provider
reference (delivered), or raises StillRunning (the service took it but has not finished: check
again next run, do not send again), TransientSendError (try again later) or PermanentSendError
(give up, report it).
"""
from __future__ import annotations

import hashlib
import logging
import re
import sys
from email.message import EmailMessage
from pathlib import Path
from typing import Callable, Protocol

from databricks.teachinglab.adapters.deadline import Deadline
from databricks.teachinglab.adapters.files import write_private
from databricks.teachinglab.core.messages import EVENT_HEADER, OutgoingMail
from databricks.teachinglab.core.settings import MailSettings

logger = logging.getLogger(__name__)


class TransientSendError(Exception):
    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentSendError(Exception):
    pass


class StatusUnknown(TransientSendError):
    """The service could not be asked about a message it may have (throttled, down): nothing was
    sent, nothing failed; ask again after `retry_after`."""


class StillRunning(Exception):
    def __init__(self, ref: str):
        super().__init__(f"operation {ref} still running")
        self.ref = ref


class Transport(Protocol):
    name: str

    def send(self, mail: OutgoingMail, *, deadline: Deadline) -> str: ...


TRANSPORTS: dict[str, Callable[..., Transport]] = {}


def register(name: str):
    def add(factory):
        TRANSPORTS[name] = factory
        factory.name = name
        return factory
    return add


def make_transport(name: str, mail: MailSettings) -> Transport:
    """The transport registered under `name` (EMAIL_TRANSPORT), built from the mail settings."""
    return TRANSPORTS[name](mail)


@register("acs")
def _acs(mail: MailSettings) -> Transport:
    from databricks.teachinglab.adapters.mail.acs import AcsTransport  # azure is imported only when it is used
    return AcsTransport(mail)


@register("smtp")
def _smtp(mail: MailSettings) -> Transport:
    from databricks.teachinglab.adapters.mail.smtp import SmtpTransport
    return SmtpTransport(mail)


def message_id(dedupe_key: str, sender: str) -> str:
    """ASCII, unique per message and the same for every attempt at it: a hash of its outbox key at
    the sender's domain. (The key carries group names in any script, with spaces and quotes: as
    an id they broke encoders and collided.)"""
    domain = sender.rpartition("@")[2].strip().rstrip(">")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        domain = ""
    if not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?", domain):
        domain = "teachinglab.invalid"
    return f"<{hashlib.sha256(dedupe_key.encode('utf-8', 'surrogatepass')).hexdigest()[:32]}@{domain}>"


def one_line(text: str) -> str:
    """A header value: no line break or other control character can reach it (RFC 5322 2.2)."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


def to_email(message: OutgoingMail) -> EmailMessage:
    """The RFC 5322 form of a message: plain text and HTML, plus the event header. A message that
    cannot be encoded at all (a broken address, text no encoder takes) is PermanentSendError:
    sending it again would fail the same way."""
    try:
        mail = _to_email(message)
        bytes(mail)  # encoders fail here, if anywhere: say so now, as this message's failure
        return mail
    except Exception as err:  # noqa: BLE001 - building a message is deterministic: it would fail every time
        raise PermanentSendError(f"the message cannot be encoded ({type(err).__name__}: {err})") from err


def _to_email(message: OutgoingMail) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = one_line(message.sender)
    mail["To"] = one_line(message.to_addrs)
    if message.cc_addrs:
        mail["Cc"] = one_line(message.cc_addrs)
    mail["Subject"] = one_line(message.subject)
    mail[EVENT_HEADER] = one_line(message.event)
    mail["Message-ID"] = message_id(message.dedupe_key, message.sender)
    mail.set_content(message.text_body)
    mail.add_alternative(message.html_body, subtype="html")
    for att in message.attachments:
        maintype, subtype = att.content_type.split("/", 1)
        if att.content_id:  # shown inside the HTML part: multipart/related
            html_part = mail.get_body(("html",))
            html_part.add_related(att.data, maintype=maintype, subtype=subtype,
                                  cid=f"<{att.content_id}>", filename=att.filename)
        else:
            mail.add_attachment(att.data, maintype=maintype, subtype=subtype, filename=att.filename)
    return mail


@register("console")
class ConsoleTransport:
    """Prints messages: for trying the tool out and for the demo."""

    def __init__(self, mail: MailSettings | None = None, stream=None):
        self.stream = stream or sys.stdout

    def send(self, message: OutgoingMail, *, deadline: Deadline | None = None) -> str:
        print(f"--- mail [{EVENT_HEADER}: {message.event}] to {message.to_addrs}"
              + (f" cc {message.cc_addrs}" if message.cc_addrs else ""), file=self.stream)
        print(f"Subject: {message.subject}", file=self.stream)
        print(message.text_body, file=self.stream)
        self.stream.flush()
        return f"console:{message.dedupe_key}"


@register("file")
class FileTransport:
    """Writes each message as an .eml file. The name comes from the message's dedupe key, so a
    message sent again after a crash overwrites itself instead of appearing twice."""

    def __init__(self, mail: MailSettings):
        self.folder = Path(mail.file_dir)

    def send(self, message: OutgoingMail, *, deadline: Deadline | None = None) -> str:
        data = bytes(to_email(message))
        try:
            # The key's own characters in the name (readable), capped, plus a hash (never two
            # messages in one file, whatever their names share).
            safe = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in message.dedupe_key)
            digest = hashlib.sha256(message.dedupe_key.encode("utf-8", "surrogatepass")).hexdigest()[:10]
            path = write_private(self.folder / f"{safe[:120]}-{digest}.eml", data)
        except OSError as err:
            raise TransientSendError(f"cannot write {self.folder}: {err}") from err
        return str(path)
