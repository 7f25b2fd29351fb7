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
from databricks.teachinglab.adapters.mail.transports import PermanentSendError, StillRunning, TransientSendError, Transport
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


def deliver_pending(transport: Transport, sender: str, now: datetime, *, budget_seconds: float,
                    monotonic: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep, scope: str | None = None) -> Delivery:
    """Send what is due within the budget. Messages a service accepted but has not finished are
    checked again, all together, while budget is left; the rest are checked next run. `scope`:
    the course, when there are several (see `finished`)."""
    deadline = Deadline(budget_seconds, monotonic=monotonic)
    due = list(OutboxMessage.select().where(
        OutboxMessage.status.in_(("pending", "accepted")) & (OutboxMessage.next_attempt_at <= now))
        .order_by(OutboxMessage.id))
    tally = {"sent": 0, "retrying": 0, "failed": 0}
    failures: list[tuple[str, str]] = []
    waiting = []
    for index, message in enumerate(due):
        if deadline.expired:
            logger.warning("mail budget of %.0fs used up; %d message(s) wait for the next run",
                           budget_seconds, len(due) - index)
            return Delivery(tally["sent"], tally["retrying"] + len(waiting), tally["failed"], len(due) - index,
                            tuple(failures))
        outcome = _attempt(transport, message, sender, now, deadline, scope)
        if outcome == "accepted":
            waiting.append(message)
        else:
            tally[outcome] += 1
            if outcome == "failed":
                failures.append((message.dedupe_key, message.last_error))
    pause = getattr(transport, "poll_interval", 0.25)
    while waiting and deadline.allows_sleep(pause):
        sleep(pause)
        still = []
        for message in waiting:
            outcome = _attempt(transport, message, sender, now, deadline, scope)
            if outcome == "accepted":
                still.append(message)
            else:
                tally[outcome] += 1
                if outcome == "failed":
                    failures.append((message.dedupe_key, message.last_error))
        waiting = still
    return Delivery(tally["sent"], tally["retrying"] + len(waiting), tally["failed"], 0, tuple(failures))


def finished(message: OutboxMessage, sender: str, scope: str | None = None) -> OutgoingMail:
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
                        to_addrs=message.to_addrs, cc_addrs=message.cc_addrs or "", subject=message.subject,
                        text_body=message.text_body, html_body=message.html_body, attachments=attachments,
                        attempts=message.attempts, accepted=message.status == "accepted", outbox_id=message.id)


def _attempt(transport: Transport, message: OutboxMessage, sender: str, now: datetime,
             deadline: Deadline, scope: str | None = None) -> str:
    """One send (or status check); returns sent | accepted | retrying | failed. Whatever goes
    wrong with one message is that message's failure: the next one goes on."""
    name = getattr(transport, "name", type(transport).__name__)
    if message.status == "pending":
        message.attempts += 1
        _mark(message, attempts=message.attempts, last_attempt_at=now)  # write-ahead
    outgoing = finished(message, sender, scope)  # the ledger's own errors are the run's, not the message's
    try:
        ref = transport.send(outgoing, deadline=deadline)
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
