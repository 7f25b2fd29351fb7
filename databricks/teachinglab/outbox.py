"""The outbox: every message is written to the ledger first and delivered afterwards.

Enqueueing is idempotent through a dedupe key (kind:subject:day), so deciding the same thing twice
queues one message. A message is marked sent only after its transport accepted it; a transient
failure is retried with backoff on later runs, a permanent one is marked failed and reported.
Each delivery is committed on its own, so a message once accepted never depends on the next run.
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
from .transports import PermanentSendError, TransientSendError, Transport

logger = logging.getLogger(__name__)
MAX_ATTEMPTS = 8


@dataclass(frozen=True)
class Delivery:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    left: int = 0  # not tried because the time budget ran out


def enqueue(*, kind: str, key: str, to: Iterable[str], cc: Iterable[str] = (), rendered: Rendered,
            now: datetime) -> bool:
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
    return True


def backoff(attempts: int) -> timedelta:
    return timedelta(minutes=min(240, 2 ** attempts))


def deliver_pending(db: pw.Database, transport: Transport, sender: str, now: datetime, *,
                    budget_seconds: float, monotonic: Callable[[], float] = time.monotonic) -> Delivery:
    deadline = monotonic() + budget_seconds
    due = list(OutboxMessage.select().where(
        (OutboxMessage.status == "pending") & (OutboxMessage.next_attempt_at <= now))
        .order_by(OutboxMessage.id))
    sent = retrying = failed = 0
    for index, message in enumerate(due):
        if monotonic() >= deadline:
            logger.warning("mail budget of %.0fs used up; %d message(s) wait for the next run",
                           budget_seconds, len(due) - index)
            return Delivery(sent, retrying, failed, len(due) - index)
        try:
            ref = transport.send(message, sender)
        except PermanentSendError as err:
            failed += 1
            _mark(db, message, status="failed", attempts=message.attempts + 1, last_error=str(err)[:2000])
            logger.error("mail %s to %s failed for good: %s", message.dedupe_key, message.to_addrs, err)
            continue
        except (TransientSendError, OSError) as err:
            attempts = message.attempts + 1
            status = "failed" if attempts >= MAX_ATTEMPTS else "pending"
            failed += status == "failed"
            retrying += status == "pending"
            _mark(db, message, status=status, attempts=attempts, last_error=str(err)[:2000],
                  next_attempt_at=now + backoff(attempts))
            logger.warning("mail %s not sent (attempt %d): %s", message.dedupe_key, attempts, err)
            continue
        sent += 1
        _mark(db, message, status="sent", attempts=message.attempts + 1, sent_at=now,
              transport=getattr(transport, "name", type(transport).__name__), provider_ref=ref,
              last_error="")
        logger.info("mail %s sent to %s (%s)", message.dedupe_key, message.to_addrs, message.event)
    return Delivery(sent, retrying, failed, 0)


def _mark(db: pw.Database, message: OutboxMessage, **fields) -> None:
    with db.atomic():
        OutboxMessage.update(**fields).where(OutboxMessage.id == message.id).execute()


def retry(ids: Iterable[int] | None, now: datetime) -> int:
    """Put failed messages (all, or the given ids) back in the queue."""
    query = OutboxMessage.update(status="pending", next_attempt_at=now, attempts=0)
    cond = OutboxMessage.status == "failed"
    if ids is not None:
        cond = cond & OutboxMessage.id.in_(list(ids))
    return query.where(cond).execute()
