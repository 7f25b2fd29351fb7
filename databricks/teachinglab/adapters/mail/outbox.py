"""The outbox: every message is written to the ledger first and delivered afterwards.

Enqueueing is idempotent through a dedupe key (kind:subject:day), so deciding the same thing twice
queues one message. Statuses:

    pending    to be sent (again)
    accepted   the service took it but had not finished when this run's budget ended; the
               next run asks the service about it instead of sending it again
    sent       delivered;  failed: a permanent error, or too many attempts (see --outbox)

Each attempt is counted *before* the send (write-ahead), so after a kill in the middle of a
send the transport knows this message may already have gone out and checks before resending.
Each result is committed on its own: a message once delivered never depends on the next run.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Iterable

from databricks.teachinglab.adapters.deadline import Deadline
from databricks.teachinglab.adapters.ledger import repository as ledger
from databricks.teachinglab.adapters.ledger.models import OutboxAttachment, OutboxMessage
from databricks.teachinglab.adapters.mail.transports import (PermanentSendError, StatusUnknown, StillRunning,
                                                              TransientSendError, Transport)
from databricks.teachinglab.core.messages import EVENTS, Attachment, OutgoingMail, Rendered

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 8
__all__ = ["Attachment", "Delivery", "enqueue", "deliver_pending", "retry"]


@dataclass(frozen=True)
class Delivery:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    left: int = 0  # not tried because the time budget ran out
    failures: tuple = ()  # (outbox key, why) of each message that failed for good in this delivery


def enqueue(*, kind: str, key: str, to: Iterable[str], cc: Iterable[str] = (), rendered: Rendered,
            now: datetime, attachments: Iterable[Attachment] = ()) -> bool:
    """Queue a message unless one with the same key exists; True if it was new."""
    to_list = sorted({a for a in to if a})
    cc_list = sorted({a for a in cc if a and a not in to_list})
    if not to_list:
        to_list, cc_list = cc_list, []
    if not to_list:
        logger.warning("message %s has no recipient; set ADMIN_EMAIL", key)
        return False
    if ledger.message_exists(key):
        return False
    ledger.insert_message(key=key, kind=kind, event=EVENTS[kind], to=", ".join(to_list), cc=", ".join(cc_list),
                          subject=rendered.subject, text=rendered.text, html=rendered.html, now=now,
                          attachments=attachments,
                          note=f"made without its templates: {rendered.problem}" if rendered.problem else "")
    return True


def backoff(attempts: int) -> timedelta:
    return timedelta(minutes=min(240, 2 ** attempts))


# When the service's budget is short, what matters most goes first: a stop and the admin's alerts
# before warnings, warnings before reports.
PRIORITY = {"termination": 0, "retermination": 0, "block_undone": 0, "failure": 0, "tag_drift": 0,
            "warning": 1, "daily_report": 2, "test": 2}


@dataclass(frozen=True)
class Pace:
    """A mail service's request limits, counted across runs in the ledger: sends per minute and
    hour (ACS_SEND_PER_MINUTE/_HOUR), and status checks (ACS: 60 a minute, 200 an hour)."""
    send_per_minute: int
    send_per_hour: int
    status_per_minute: int = 60
    status_per_hour: int = 200

    def room(self, kind: str, now: datetime) -> bool:
        """Whether one more request of `kind` fits (those of this run are recorded as they are made)."""
        per_minute, per_hour = ((self.send_per_minute, self.send_per_hour) if kind == "send" else
                                (self.status_per_minute, self.status_per_hour))
        minute = ledger.mail_requests_since(kind, now - timedelta(minutes=1))
        hour = ledger.mail_requests_since(kind, now - timedelta(hours=1))
        return minute < per_minute and hour < per_hour


def deliver_pending(transport: Transport, sender: str, now: datetime, *, budget_seconds: float,
                    monotonic: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                    scope: str | None = None, pace: Pace | None = None, label: str = "") -> Delivery:
    """Send what is due within the budget, what matters most first (PRIORITY), and within the
    service's limits when it has them (`pace`). A message the service accepted is asked about at
    most once a run: those accepted earlier in their turn, those accepted now once at the end,
    after a pause (`transport.poll_interval`). `scope`: the course, when there are several.
    `label`: put before every subject ("[dev] " outside prod), so a test course's mail is never
    taken for the real one's."""
    deadline = Deadline(budget_seconds, monotonic=monotonic)
    due = sorted(OutboxMessage.select().where(
        OutboxMessage.status.in_(("pending", "accepted")) & (OutboxMessage.next_attempt_at <= now)),
        key=lambda m: (PRIORITY.get(m.kind, 1), m.id))
    tally = {"sent": 0, "retrying": 0, "failed": 0}
    failures: list[tuple[str, str]] = []
    waiting, left = [], 0

    def settle(message, outcome) -> None:
        if outcome == "accepted":
            waiting.append(message)
            return
        tally[outcome] += 1
        if outcome == "failed":
            failures.append((message.dedupe_key, message.last_error))

    for index, message in enumerate(due):
        if deadline.expired:
            left = len(due) - index
            logger.warning("mail budget of %.0fs used up; %d message(s) wait for the next run", budget_seconds, left)
            break
        if pace is not None and not _has_room(pace, message, now):
            left = len(due) - index
            logger.warning("the mail service's limit (%d a minute, %d an hour) is reached: %d message(s) wait for the "
                           "next run, the stops and alerts among them first", pace.send_per_minute,
                           pace.send_per_hour, left)
            break
        outcome = _attempt(transport, message, sender, now, deadline, scope, label)
        _record_requests(transport, now)
        if outcome == "accepted" and _checked_now(message):
            tally["retrying"] += 1  # asked once this run already: the next run asks again
            continue
        settle(message, outcome)
    fresh, waiting = waiting, []
    pause = getattr(transport, "poll_interval", 0.0)
    if fresh and deadline.allows_sleep(pause):
        sleep(pause)
        for message in fresh:
            if deadline.expired or (pace is not None and not _has_room(pace, message, now, status=True)):
                waiting.append(message)
                continue
            settle(message, _attempt(transport, message, sender, now, deadline, scope, label))
            _record_requests(transport, now)
    else:
        waiting = fresh
    return Delivery(tally["sent"], tally["retrying"] + len(waiting), tally["failed"], left, tuple(failures))


def _checked_now(message: OutboxMessage) -> bool:
    """An accepted message whose turn this run was its status check (not a new send)."""
    return getattr(message, "_was_accepted", False)


def _has_room(pace: Pace, message: OutboxMessage, now: datetime, *, status: bool = False) -> bool:
    """A pending message may need a status check (a retry) and a send; an accepted one a check."""
    if status or message.status == "accepted":
        return pace.room("status", now)
    return pace.room("send", now) and (message.attempts == 0 or pace.room("status", now))


def _record_requests(transport: Transport, now: datetime) -> None:
    made = getattr(transport, "made", None)
    if made:
        kinds, made[:] = list(made), []
        ledger.record_mail_requests(kinds, now)


def finished(message: OutboxMessage, sender: str, scope: str | None = None, label: str = "") -> OutgoingMail:
    """An outbox row and its attachments as the immutable message a transport receives. With a
    `scope` (a course of several) its key is `<course>/<key>`: the transports derive ids from
    the key (ACS's operation id, the Message-ID, a file name), and two courses' ledgers make the
    same keys ("report:2026-03-02"); without it, ACS would take the second course's report for
    the first's, already sent."""
    attachments = tuple(Attachment(a.filename, a.content_type, bytes(a.data), a.content_id) for a in
                        OutboxAttachment.select().where(OutboxAttachment.message == message.id)
                        .order_by(OutboxAttachment.id))
    return OutgoingMail(dedupe_key=f"{scope}/{message.dedupe_key}" if scope else message.dedupe_key,
                        event=message.event, sender=sender,
                        to_addrs=message.to_addrs, cc_addrs=message.cc_addrs or "", subject=label + message.subject,
                        text_body=message.text_body, html_body=message.html_body, attachments=attachments,
                        attempts=message.attempts, accepted=message.status == "accepted", outbox_id=message.id)


def _attempt(transport: Transport, message: OutboxMessage, sender: str, now: datetime,
             deadline: Deadline, scope: str | None = None, label: str = "") -> str:
    """One send (or status check); returns sent | accepted | retrying | failed. Whatever goes
    wrong with one message is that message's failure: the next one goes on."""
    name = getattr(transport, "name", type(transport).__name__)
    message._was_accepted = message.status == "accepted"
    if message.status == "pending":
        message.attempts += 1
        _mark(message, attempts=message.attempts, last_attempt_at=now)  # write-ahead
    outgoing = finished(message, sender, scope, label)  # the ledger's own errors are the run's, not the message's
    try:
        ref = transport.send(outgoing, deadline=deadline)
    except StatusUnknown as unknown:
        # Nothing was sent and nothing failed: the service could not be asked about the message
        # (429, down). Not an attempt; asked again after its Retry-After. An accepted message is
        # never failed for this: the service has it.
        wait = timedelta(seconds=unknown.retry_after or 60)
        if message.status == "pending":
            message.attempts -= 1
        _mark(message, attempts=message.attempts, next_attempt_at=now + wait,
              last_error=f"status not known yet: {unknown}"[:2000])
        logger.warning("mail %s: its status could not be read (%s); asked again in %d s", message.dedupe_key,
                       unknown, wait.total_seconds())
        return "accepted" if message.status == "accepted" else "retrying"
    except StillRunning as running:
        if message.status != "accepted":
            message.status = "accepted"
            _mark(message, status="accepted", provider_ref=running.ref, transport=name,
                  next_attempt_at=now, last_error="accepted; final status not known yet")
            logger.info("mail %s accepted as %s", message.dedupe_key, running.ref)
        return "accepted"
    except PermanentSendError as err:
        message.last_error = str(err)[:2000]
        _mark(message, status="failed", last_error=message.last_error, transport=name)
        logger.error("mail %s to %s failed for good: %s", message.dedupe_key, message.to_addrs, err)
        return "failed"
    except (TransientSendError, OSError) as err:
        return _retry_later(message, err, now, name)
    except Exception as err:  # noqa: BLE001 - a transport's own surprise: retried with backoff, like any
        return _retry_later(message, TransientSendError(f"{type(err).__name__}: {err}"), now, name)
    return _sent(message, ref, now, name)


def _retry_later(message: OutboxMessage, err: Exception, now: datetime, name: str) -> str:
    status = "failed" if message.attempts >= MAX_ATTEMPTS else "pending"
    wait = backoff(message.attempts)
    hint = getattr(err, "retry_after", None)
    if hint:
        wait = max(wait, timedelta(seconds=hint))
    message.last_error = str(err)[:2000]
    _mark(message, status=status, last_error=message.last_error, next_attempt_at=now + wait, transport=name)
    logger.warning("mail %s not sent (attempt %d): %s", message.dedupe_key, message.attempts, err)
    return "failed" if status == "failed" else "retrying"


def _sent(message: OutboxMessage, ref: str, now: datetime, name: str) -> str:
    _mark(message, status="sent", sent_at=now, transport=name, provider_ref=ref, last_error="")
    logger.info("mail %s sent to %s (%s)", message.dedupe_key, message.to_addrs, message.event)
    return "sent"


def _mark(message: OutboxMessage, **fields) -> None:
    """Each result commits on its own: a message once delivered never depends on the rest."""
    with ledger.transaction():
        OutboxMessage.update(**fields).where(OutboxMessage.id == message.id).execute()


def retry(ids: Iterable[int] | None, now: datetime) -> int:
    """Put failed messages (all, or the given ids) back in the queue."""
    return ledger.requeue_failed(ids, now)
