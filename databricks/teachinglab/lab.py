"""What a job needs, wired once: settings, the workspace gateway, the ledger and a transport."""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterable, TypeVar

import peewee as pw

from .config import Settings
from .deadline import UNBOUNDED, Deadline
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
    db: pw.Database
    transport: Transport
    deadline: Deadline = UNBOUNDED
    _gateway: WorkspaceGateway | None = None

    @classmethod
    def open(cls, settings: Settings, now: datetime, *, gateway: WorkspaceGateway | None = None,
             transport: Transport | None = None, deadline: Deadline = UNBOUNDED) -> "Lab":
        """The ledger opens now; the workspace client only when first used (see `gateway`), so a
        job can write to its ledger before anything that may hang on the network."""
        db = open_ledger(db_path=settings.db_path, database_url=settings.database_url, now=now,
                         guard=settings.ledger_guard())
        if gateway is not None and deadline is not UNBOUNDED:
            gateway.deadline = deadline
        return cls(settings, db, transport or make_transport(settings.email_transport, settings), deadline,
                   gateway)

    @property
    def gateway(self) -> WorkspaceGateway:
        if self._gateway is None:
            s = self.settings
            self._gateway = WorkspaceGateway.connect(host=s.host, token=s.token, profile=s.profile,
                                                     deadline=self.deadline)
        return self._gateway

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
        budget = self.settings.mail_budget_seconds if budget_seconds is None else budget_seconds
        return deliver_pending(self.db, self.transport, self.settings.sender, now,
                               budget_seconds=self.deadline.mail_budget(budget))


def _format(err: Exception) -> str:
    import traceback
    return "".join(traceback.format_exception(type(err), err, err.__traceback__))
