"""What a use case is given: the settings, the workspace, the mail transport and the run's
deadline, typed. The CLI builds it once per run (cli/wiring.py); the ledger is reached through
its repository, bound when the CLI opened it."""
from __future__ import annotations

import logging
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Callable, Iterable, TypeVar

from databricks.teachinglab.adapters.deadline import UNBOUNDED, Deadline
from databricks.teachinglab.adapters.mail.outbox import Delivery, Pace, deliver_pending
from databricks.teachinglab.adapters.mail.transports import Transport
from databricks.teachinglab.core.errors import AdminError, Failed, MessageProblem
from databricks.teachinglab.core.settings import Settings

if TYPE_CHECKING:  # the SDK is imported when a client is made (cli/wiring.py), not for --help
    from databricks.teachinglab.adapters.workspace import WorkspaceGateway

logger = logging.getLogger(__name__)
K = TypeVar("K")
V = TypeVar("V")


def no_workspace() -> WorkspaceGateway:
    """For the ledger-and-mail commands: they must not need workspace credentials."""
    raise AdminError("this command does not talk to the workspace")


@dataclass
class JobContext:
    settings: Settings
    transport: Transport
    connect: Callable[[], WorkspaceGateway] = no_workspace  # called once, at the first workspace call
    deadline: Deadline = UNBOUNDED
    _workspace: WorkspaceGateway | None = field(default=None, repr=False)

    @property
    def workspace(self) -> WorkspaceGateway:
        """Connected on first use, so a job writes its ledger before anything that may hang on
        the network."""
        if self._workspace is None:
            self._workspace = self.connect()
        return self._workspace

    def parallel(self, fn: Callable[[K], V], items: Iterable[K]) -> list[tuple[K, V | Failed]]:
        """Run fn over items with at most API_PARALLELISM calls in flight; an error comes back as
        a Failed (with its traceback), never raised, so one failing cluster never stops the others."""
        items = list(items)
        if not items:
            return []

        def guarded(item: K) -> V | Failed:
            try:
                return fn(item)
            except Exception as err:  # noqa: BLE001 - reported per item by the caller
                return Failed(err, traceback.format_exc())

        with ThreadPoolExecutor(max_workers=min(self.settings.workspace.api_parallelism, len(items))) as pool:
            return list(zip(items, pool.map(guarded, items)))

    def deliver(self, now: datetime, budget_seconds: float | None = None) -> Delivery:
        """Send what is due; a message that failed for good is reported in one alert a day."""
        mail = self.settings.mail
        budget = mail.budget_seconds if budget_seconds is None else budget_seconds
        pace = Pace(mail.acs_send_per_minute, mail.acs_send_per_hour) if getattr(self.transport, "name", "") == "acs" \
            else None
        result = deliver_pending(self.transport, mail.sender, now, budget_seconds=self.deadline.mail_budget(budget),
                                 scope=self.settings.course_id, pace=pace, label=self.settings.environment_tag)
        if result.failures:
            from databricks.teachinglab.adapters.ledger.repository import transaction
            from databricks.teachinglab.services.alerts import queue_failure_alert
            with transaction():
                queue_failure_alert(self, "mail delivery", [(f"(the message {key})", MessageProblem(
                    f"{why}; see --outbox, then --retry ID or --drop_message ID")) for key, why in result.failures],
                    now, once_a_day=True)
        return result
