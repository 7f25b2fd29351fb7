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

import peewee as pw

from .ledger import OutboxMessage
from .messages import EVENTS, Rendered
from .ledger import OutboxAttachment
from .transports import PermanentSendError, StillRunning, TransientSendError, Transport

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class Delivery:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    left: int = 0  # not tried because the time budget ran out


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None


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
    if OutboxMessage.select().where(OutboxMessage.dedupe_key == key).exists():
        return False
    # on_conflict_ignore backs the check up should another writer slip in between
    OutboxMessage.insert(
        dedupe_key=key, kind=kind, event=EVENTS[kind], to_addrs=", ".join(to_list),
        cc_addrs=", ".join(cc_list), subject=rendered.subject, text_body=rendered.text,
        html_body=rendered.html, created_at=now, next_attempt_at=now).on_conflict_ignore().execute()
    message = OutboxMessage.get(OutboxMessage.dedupe_key == key)
    for att in attachments:
        OutboxAttachment.create(message=message, filename=att.filename, content_type=att.content_type,
                                content_id=att.content_id, data=att.data)
    return True


def backoff(attempts: int) -> timedelta:
    return timedelta(minutes=min(240, 2 ** attempts))


def deliver_pending(db: pw.Database, transport: Transport, sender: str, now: datetime, *,
                    budget_seconds: float, monotonic: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], None] = time.sleep) -> Delivery:
    """Send what is due within the budget. Messages a service accepted but has not finished are
    checked again, all together, while budget is left; the rest are checked next run."""
    deadline = monotonic() + budget_seconds
    due = list(OutboxMessage.select().where(
        OutboxMessage.status.in_(("pending", "accepted")) & (OutboxMessage.next_attempt_at <= now))
        .order_by(OutboxMessage.id))
    tally = {"sent": 0, "retrying": 0, "failed": 0}
    waiting = []
    for index, message in enumerate(due):
        if monotonic() >= deadline:
            logger.warning("mail budget of %.0fs used up; %d message(s) wait for the next run",
                           budget_seconds, len(due) - index)
            return Delivery(tally["sent"], tally["retrying"] + len(waiting), tally["failed"], len(due) - index)
        outcome = _attempt(db, transport, message, sender, now, deadline)
        if outcome == "accepted":
            waiting.append(message)
        else:
            tally[outcome] += 1
    pause = getattr(transport, "poll_interval", 0.25)
    while waiting and monotonic() + pause < deadline:
        sleep(pause)
        still = []
        for message in waiting:
            outcome = _attempt(db, transport, message, sender, now, deadline)
            if outcome == "accepted":
                still.append(message)
            else:
                tally[outcome] += 1
        waiting = still
    return Delivery(tally["sent"], tally["retrying"] + len(waiting), tally["failed"], 0)


def _attempt(db: pw.Database, transport: Transport, message: OutboxMessage, sender: str, now: datetime,
             deadline: float) -> str:
    """One send (or status check); returns sent | accepted | retrying | failed."""
    name = getattr(transport, "name", type(transport).__name__)
    if message.status == "pending":
        message.attempts += 1
        _mark(db, message, attempts=message.attempts, last_attempt_at=now)  # write-ahead
    try:
        ref = transport.send(message, sender, deadline=deadline)
    except StillRunning as running:
        if message.status != "accepted":
            message.status = "accepted"
            _mark(db, message, status="accepted", provider_ref=running.ref, transport=name,
                  next_attempt_at=now, last_error="accepted; final status not known yet")
            logger.info("mail %s accepted as %s", message.dedupe_key, running.ref)
        return "accepted"
    except PermanentSendError as err:
        _mark(db, message, status="failed", last_error=str(err)[:2000], transport=name)
        logger.error("mail %s to %s failed for good: %s", message.dedupe_key, message.to_addrs, err)
        return "failed"
    except (TransientSendError, OSError) as err:
        status = "failed" if message.attempts >= MAX_ATTEMPTS else "pending"
        wait = backoff(message.attempts)
        hint = getattr(err, "retry_after", None)
        if hint:
            wait = max(wait, timedelta(seconds=hint))
        _mark(db, message, status=status, last_error=str(err)[:2000], next_attempt_at=now + wait,
              transport=name)
        logger.warning("mail %s not sent (attempt %d): %s", message.dedupe_key, message.attempts, err)
        return "failed" if status == "failed" else "retrying"
    _mark(db, message, status="sent", sent_at=now, transport=name, provider_ref=ref, last_error="")
    logger.info("mail %s sent to %s (%s)", message.dedupe_key, message.to_addrs, message.event)
    return "sent"


def _mark(db: pw.Database, message: OutboxMessage, **fields) -> None:
    with db.atomic():
        OutboxMessage.update(**fields).where(OutboxMessage.id == message.id).execute()


def retry(ids: Iterable[int] | None, now: datetime) -> int:
    """Put failed messages (all, or the given ids) back in the queue."""
    query = OutboxMessage.update(status="pending", next_attempt_at=now)
    cond = OutboxMessage.status == "failed"
    if ids is not None:
        cond = cond & OutboxMessage.id.in_(list(ids))
    return query.where(cond).execute()
