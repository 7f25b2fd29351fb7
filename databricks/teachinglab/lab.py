"""What a job needs, wired once: settings, the workspace gateway, the ledger and a transport."""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterable, TypeVar

import peewee as pw

from .config import Settings
from .ledger import open_ledger
from .outbox import Delivery, deliver_pending
from .transports import Transport, make_transport
from .workspace_gateway import WorkspaceGateway

logger = logging.getLogger(__name__)
K = TypeVar("K")
V = TypeVar("V")


@dataclass
class Lab:
    settings: Settings
    gateway: WorkspaceGateway
    db: pw.Database
    transport: Transport

    @classmethod
    def open(cls, settings: Settings, now: datetime, *, gateway: WorkspaceGateway | None = None,
             transport: Transport | None = None) -> "Lab":
        gateway = gateway or WorkspaceGateway.connect(host=settings.host, token=settings.token,
                                                      profile=settings.profile)
        db = open_ledger(db_path=settings.db_path, database_url=settings.database_url, now=now)
        return cls(settings, gateway, db, transport or make_transport(settings.email_transport, settings))

    def parallel(self, fn: Callable[[K], V], items: Iterable[K]) -> list[tuple[K, V | Exception]]:
        """Run fn over items with at most API_PARALLELISM calls in flight; errors are returned,
        not raised, so one failing cluster never stops the others."""
        items = list(items)
        if not items:
            return []

        def guarded(item: K) -> V | Exception:
            try:
                return fn(item)
            except Exception as err:  # noqa: BLE001 - reported per cluster by the caller
                err.__traceback_text__ = _format(err)
                return err

        with ThreadPoolExecutor(max_workers=min(self.settings.api_parallelism, len(items))) as pool:
            return list(zip(items, pool.map(guarded, items)))

    def deliver(self, now: datetime, budget_seconds: float | None = None) -> Delivery:
        return deliver_pending(self.db, self.transport, self.settings.sender, now,
                               budget_seconds=self.settings.mail_budget_seconds
                               if budget_seconds is None else budget_seconds)


def _format(err: Exception) -> str:
    import traceback
    return "".join(traceback.format_exception(type(err), err, err.__traceback__))
