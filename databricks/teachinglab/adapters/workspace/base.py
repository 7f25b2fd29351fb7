"""The gateway's foundation: the run's deadline on every request and retry, idempotent calls
retried, creates sent once, and what a failure means. Every module of this package (one per API
family) builds on it; nothing outside the package imports databricks.sdk."""
from __future__ import annotations

import json
import logging
import math
import threading
import time
from datetime import datetime, timezone
from typing import Callable, TypeVar

import requests
from databricks.sdk import WorkspaceClient
from databricks.sdk.clock import Clock
from databricks.sdk.core import Config
from databricks.sdk import errors as sdk_errors
from databricks.sdk.service import compute, iam

from databricks.teachinglab.adapters.deadline import UNBOUNDED, Deadline
from databricks.teachinglab.core.errors import DeadlineReached
from databricks.teachinglab.core.model import AclEntry, Person

logger = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT = (sdk_errors.InternalError, sdk_errors.TemporarilyUnavailable, sdk_errors.TooManyRequests,
             sdk_errors.DeadlineExceeded, sdk_errors.RequestLimitExceeded, sdk_errors.ResourceExhausted,
             requests.ConnectionError, requests.Timeout, TimeoutError)
ApiFailure = sdk_errors.DatabricksError
NotFound = (sdk_errors.NotFound, sdk_errors.ResourceDoesNotExist)
# The SDK retries 429/503 (honouring Retry-After) and connection errors by itself, for at most
# retry_timeout_seconds per call; our own loop (`_retry`) retries on top, within the run's
# deadline. Kept short: it also bounds the host-metadata probe the SDK makes while building its
# Config (databricks-sdk 0.156 Config._resolve_host_metadata), which otherwise waits minutes for
# an unreachable host and here would spend the poll's whole deadline before its first call.
SDK_RETRY_SECONDS = 2
HTTP_TIMEOUT_SECONDS = 15


def _dt(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc) if ms else None


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class _NoRetry(Exception):
    """Raised from the SDK's retry sleep for a call that must not be sent twice."""


_call = threading.local()


class _RunClock(Clock):
    """The clock the SDK's retry loop sleeps on. A sleep that would pass the run's deadline ends
    the call instead, and a call that must not be repeated (a create, an import) is not retried."""

    def __init__(self):
        self.gateway: GatewayBase | None = None

    def time(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if not getattr(_call, "retry", True):
            raise _NoRetry()
        deadline = self.gateway.deadline if self.gateway else UNBOUNDED
        if not deadline.allows_sleep(seconds):
            # The SDK retries a 429 and a failed connection alike: say which it was waiting on.
            last = self.gateway._last_failure if self.gateway else None
            why = ("the workspace is throttling requests (429)" if last is None or isinstance(last, Throttled) else
                   f"the workspace did not answer ({type(last).__name__})")
            raise DeadlineReached(f"{why}; waiting {seconds:.0f} s more to retry would pass the run's "
                                  f"{deadline.seconds:g} s deadline") from last
        (self.gateway._sleep if self.gateway else time.sleep)(seconds)


class Throttled(Exception):
    """The workspace answered 429: a request was refused for its rate, not lost."""


class _DeadlineAdapter(requests.adapters.HTTPAdapter):
    """Cuts every request's timeout to what is left of the run's deadline."""

    def __init__(self, gateway: "GatewayBase"):
        super().__init__(pool_connections=20, pool_maxsize=20)
        self._gateway = gateway

    def send(self, request, stream=False, timeout=None, **kwargs):
        left = self._gateway.deadline.remaining()
        if left <= 0:
            raise DeadlineReached(f"{request.method} {request.path_url.split('?')[0]}: the run's "
                                  f"{self._gateway.deadline.seconds:g} s deadline has passed") from self._gateway._last_failure
        if math.isfinite(left) and not isinstance(timeout, tuple):
            timeout = min(timeout or HTTP_TIMEOUT_SECONDS, max(left, 0.05))
        try:
            response = super().send(request, stream=stream, timeout=timeout, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as err:
            self._gateway._last_failure = err  # what a deadline reached later was waiting on
            raise
        if response.status_code == 429:
            self._gateway._last_failure = Throttled(f"{request.method} {request.path_url.split('?')[0]}: 429")
        return response


class GatewayBase:
    """The client, the deadline and the retry rules the API families share."""

    def __init__(self, client: WorkspaceClient, *, attempts: int = 4, backoff: float = 0.25,
                 sleep: Callable[[float], None] = time.sleep, deadline: Deadline = UNBOUNDED):
        self.client = client
        self.attempts = attempts
        self.backoff = backoff
        self._sleep = sleep
        self.deadline = deadline
        self._last_failure: BaseException | None = None  # the run's latest transient failure
        self._people: dict[str, Person] = {}
        self._bound_to_deadline()

    @classmethod
    def connect(cls, *, host: str | None, token: str | None, profile: str | None,
                retry_timeout_seconds: int = SDK_RETRY_SECONDS, deadline: Deadline = UNBOUNDED) -> "GatewayBase":
        clock = _RunClock()
        left = deadline.remaining()
        # Config() probes GET /.well-known/databricks-config (databricks-sdk 0.156
        # Config._resolve_host_metadata; best effort, no setting skips it) with the timeouts it is
        # given and outside our adapter: a short probe, so a host that never answers leaves the
        # run's budget to its real calls, whose failures say what happened.
        probe = max(1.0, min(HTTP_TIMEOUT_SECONDS, left / 5))
        began = time.monotonic()
        config = Config(host=host, token=token, profile=profile, clock=clock, retry_timeout_seconds=1,
                        http_timeout_seconds=probe)
        spent = time.monotonic() - began
        config.http_timeout_seconds = max(1, min(HTTP_TIMEOUT_SECONDS, left))
        config.retry_timeout_seconds = max(1, min(retry_timeout_seconds, math.ceil(min(left, 3600))))
        gateway = cls(WorkspaceClient(config=config), deadline=deadline)
        clock.gateway = gateway
        if spent >= probe:  # the probe waited out its timeout: the host accepts and does not answer
            gateway._last_failure = requests.ReadTimeout(
                f"GET /.well-known/databricks-config: no answer in {spent:.0f} s")
        return gateway

    def _bound_to_deadline(self) -> None:
        # The SDK (0.156) keeps one requests.Session per client; mounting an adapter on it is the
        # requests way to bound each request by what is left of the run's deadline.
        session = getattr(getattr(self.client.api_client, "_api_client", None), "_session", None)
        if session is None:
            logger.debug("databricks-sdk session not found: request timeouts are not cut to the deadline")
            return
        adapter = _DeadlineAdapter(self)
        session.mount("https://", adapter)
        session.mount("http://", adapter)

    @property
    def host(self) -> str:
        return self.client.config.host

    def _check_deadline(self, what: str) -> None:
        """Past the deadline: refuse, naming what the run was waiting on (for the advice line)."""
        try:
            self.deadline.check(what)
        except DeadlineReached as reached:
            raise reached from self._last_failure

    def _retry(self, what: str, call: Callable[[], T]) -> T:
        """An idempotent call: retried on transient errors while the deadline allows."""
        for attempt in range(1, self.attempts + 1):
            self._check_deadline(what)
            try:
                return call()
            except TRANSIENT as err:
                cause = err.__cause__ if isinstance(err, TimeoutError) and err.__cause__ else err
                self._last_failure = cause
                delay = self.backoff * 2 ** (attempt - 1)
                if attempt == self.attempts:
                    raise cause
                if not self.deadline.allows_sleep(delay):
                    raise DeadlineReached(f"{what}: {type(cause).__name__} and no time left to retry "
                                          f"within the run's {self.deadline.seconds:g} s deadline") from cause
                logger.debug("%s failed (%s); retry %d in %.2fs", what, type(cause).__name__, attempt, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")

    def _once(self, what: str, call: Callable[[], T]) -> T:
        """A call that must not be sent twice (a create, an import): one attempt, no retries by
        us or the SDK; a failure is reported and the next run (idempotent) tries again."""
        self._check_deadline(what)
        _call.retry = False
        try:
            return call()
        except _NoRetry as stop:
            raise stop.__context__ from None
        finally:
            _call.retry = True


def failure_kind(err: BaseException) -> str:
    """What kind of workspace failure `err` is, following __cause__: auth | network (refused,
    unreachable) | hung (connected, no answer) | deadline | throttled | api | other. The CLI turns
    it into one line of advice and an exit code."""
    seen, deadline = 0, False
    while err is not None and seen < 6:
        if isinstance(err, DeadlineReached):
            deadline = True  # what the retries were waiting on, further down, says more
        elif isinstance(err, (sdk_errors.Unauthenticated, sdk_errors.PermissionDenied)):
            return "auth"
        elif isinstance(err, requests.ReadTimeout) or (isinstance(err, TimeoutError)
                                                        and not isinstance(err, requests.ConnectionError)):
            return "hung"
        elif isinstance(err, (requests.ConnectionError, requests.Timeout, ConnectionError)):
            return "network"
        elif isinstance(err, (sdk_errors.TooManyRequests, sdk_errors.RequestLimitExceeded,
                            sdk_errors.ResourceExhausted, sdk_errors.TemporarilyUnavailable, Throttled)):
            return "throttled"
        elif isinstance(err, ApiFailure):
            return "api"
        err, seen = err.__cause__ or err.__context__, seen + 1
    return "deadline" if deadline else "other"


def failure_cause(err: BaseException) -> str:
    """failure_kind, told apart further for one call's failure: `permission` (a 403 on this
    object, not a refused token) and `not_found` (it was deleted meanwhile)."""
    seen, cause = 0, err
    while cause is not None and seen < 6:
        if isinstance(cause, sdk_errors.PermissionDenied):
            return "permission"
        if isinstance(cause, NotFound):
            return "not_found"
        cause, seen = cause.__cause__ or cause.__context__, seen + 1
    return failure_kind(err)


def scim_string(value: str) -> str:
    """A SCIM filter's string literal: JSON string rules (RFC 7644 3.4.2.2), so a quote or a
    backslash in a group name cannot end the literal or escape its closing quote."""
    return json.dumps(value, ensure_ascii=False)


def _direct_level(entries: list[AclEntry], group: str) -> str | None:
    return next((e.level for e in entries if e.principal_type == "group_name" and e.principal == group
                 and not e.inherited), None)


def _patch_members(retry, groups_api, what: str, group_id: str, add, remove) -> None:
    """One SCIM PATCH adding and removing members (workspace or account GroupsAPI alike)."""
    ops = []
    if add:
        ops.append(iam.Patch(op=iam.PatchOp.ADD, path="members", value=[{"value": i} for i in add]))
    ops += [iam.Patch(op=iam.PatchOp.REMOVE, path=f'members[value eq "{i}"]') for i in remove]
    if ops:
        retry(what, lambda: groups_api.patch(
            group_id, operations=ops, schemas=[iam.PatchSchema.URN_IETF_PARAMS_SCIM_API_MESSAGES_2_0_PATCH_OP]))


def _principal(entry: compute.ClusterAccessControlResponse) -> tuple[str, str]:
    for kind in ("user_name", "group_name", "service_principal_name"):
        value = getattr(entry, kind)
        if value:
            return kind, value
    return "unknown", ""
