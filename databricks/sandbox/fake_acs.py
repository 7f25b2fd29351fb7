"""A local stand-in for Azure Communication Services Email, for the real azure-communication-email
client. It checks the HMAC-SHA256 signature the way ACS does (over the verb, path and query,
x-ms-date, host and x-ms-content-sha256) and plays scripted outcomes:

    succeed   202, then Running for `settle_seconds` (1 s), then Succeeded
    fail      202, then Failed
    hold      202, then Running until release() (an operation still running when a budget ends)
    slow      the operation is created, but the 202 comes only after `stall_seconds`
              (a client killed while waiting has sent a message it does not know about)
    401 / 400 / 429 / 500 / 503   the send is refused with that status (429 carries Retry-After)
    stall     the send gets no answer for `stall_seconds` (a hung service)

A repeated Operation-Id is not sent twice: the existing operation is answered, as a
repeatable request should be.

The service's limits are enforced as it enforces them, with 429 and Retry-After (the seconds
until the oldest request in the window leaves it): sends per minute and hour (a custom domain's
30 and 100 by default; an Azure-managed domain's are 5 and 10, "Email client library overview:
API throttling") and status checks (60 and 200). Every request counts, a refused one included
("all requests executed are counted against your usage limits", ACS service limits).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit


@dataclass
class Operation:
    id: str
    message: dict
    status: str = "Running"
    polls: int = 0
    created: float = 0.0


@dataclass
class FakeAcsState:
    access_key: str
    outcomes: list[str] = field(default_factory=list)  # consumed one per send; then `default`
    default: str = "succeed"
    stall_seconds: float = 30.0
    settle_seconds: float = 1.0   # how long an accepted message takes to be delivered
    retry_after: int = 2
    operations: dict[str, Operation] = field(default_factory=dict)
    delivered: list[dict] = field(default_factory=list)  # messages that reached Succeeded
    sends: int = 0
    bad_signatures: int = 0
    held: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    send_limits: tuple[int, int] | None = (30, 100)     # per minute, per hour; None: unlimited
    status_limits: tuple[int, int] | None = (60, 200)
    clock: object = time.monotonic                      # seconds; a test may move it
    requests: dict = field(default_factory=lambda: {"send": [], "status": []})
    throttled: dict = field(default_factory=lambda: {"send": 0, "status": 0})

    def admit(self, kind: str) -> int | None:
        """Count a request; None when within the limits, else the Retry-After seconds of a 429."""
        limits = self.send_limits if kind == "send" else self.status_limits
        with self.lock:
            now = self.clock()
            seen = self.requests[kind] = [t for t in self.requests[kind] if now - t < 3600]
            seen.append(now)
            if limits is None:
                return None
            per_minute, per_hour = limits
            last_minute = [t for t in seen[:-1] if now - t < 60]
            if len(last_minute) >= per_minute:
                self.throttled[kind] += 1
                return max(1, int(60 - (now - last_minute[-per_minute])) + 1)
            if len(seen) - 1 >= per_hour:
                self.throttled[kind] += 1
                return max(1, int(3600 - (now - seen[-1 - per_hour])) + 1)
            return None

    def next_outcome(self) -> str:
        with self.lock:
            return self.outcomes.pop(0) if self.outcomes else self.default


def _sign(key_b64: str, verb: str, path_and_query: str, date: str, host: str, content_hash: str) -> str:
    to_sign = f"{verb}\n{path_and_query}\n{date};{host};{content_hash}"
    digest = hmac.new(base64.b64decode(key_b64), to_sign.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    @property
    def state(self) -> FakeAcsState:
        return self.server.state  # type: ignore[attr-defined]

    def _reply(self, status: int, body: dict | None = None, headers: dict | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _verified(self, raw: bytes) -> bool:
        content_hash = base64.b64encode(hashlib.sha256(raw).digest()).decode()
        auth = self.headers.get("Authorization", "")
        if self.headers.get("x-ms-content-sha256") != content_hash or "Signature=" not in auth:
            return False
        want = _sign(self.state.access_key, self.command, self.path, self.headers.get("x-ms-date", ""),
                     self.headers.get("Host", ""), content_hash)
        return hmac.compare_digest(auth.split("Signature=", 1)[1], want)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def do_POST(self):
        raw = self._body()
        if not self._verified(raw):
            self.state.bad_signatures += 1
            return self._reply(401, {"error": {"code": "Denied", "message": "Invalid signature"}})
        if not urlsplit(self.path).path.endswith("/emails:send"):
            return self._reply(404, {"error": {"code": "NotFound", "message": self.path}})
        wait = self.state.admit("send")
        if wait is not None:
            return self._reply(429, {"error": {"code": "TooManyRequests", "message": "send limit"}},
                               {"Retry-After": str(wait)})
        op_id = self.headers.get("Operation-Id") or str(uuid.uuid4())
        with self.state.lock:
            existing = self.state.operations.get(op_id)
        if existing is None:
            outcome = self.state.next_outcome()
            if outcome == "stall":
                time.sleep(self.state.stall_seconds)
                return self._reply(503, {"error": {"code": "Timeout", "message": "stalled"}})
            if outcome.isdigit():
                status = int(outcome)
                headers = {"Retry-After": str(self.state.retry_after)} if status == 429 else {}
                return self._reply(status, {"error": {"code": f"E{status}", "message": f"scripted {status}"}},
                                   headers)
            with self.state.lock:
                self.state.sends += 1
                op = Operation(op_id, json.loads(raw), created=self.state.clock())
                if outcome == "fail":
                    op.status = "Failed"
                if outcome == "hold":
                    self.state.held.add(op_id)
                self.state.operations[op_id] = op
            if outcome == "slow":
                time.sleep(self.state.stall_seconds)
        host = self.headers.get("Host")
        scheme = "https" if hasattr(self.connection, "getpeercert") else "http"
        location = f"{scheme}://{host}/emails/operations/{op_id}?api-version=2025-09-01"
        self._reply(202, {"id": op_id, "status": "Running"},
                    {"Operation-Location": location, "Retry-After": "0"})

    def do_GET(self):
        raw = self._body()
        if not self._verified(raw):
            self.state.bad_signatures += 1
            return self._reply(401, {"error": {"code": "Denied", "message": "Invalid signature"}})
        path = urlsplit(self.path).path
        op_id = path.rsplit("/", 1)[-1]
        wait = self.state.admit("status")
        if wait is not None:
            return self._reply(429, {"error": {"code": "TooManyRequests", "message": "status limit"}},
                               {"Retry-After": str(wait)})
        with self.state.lock:
            op = self.state.operations.get(op_id)
            if op is None:
                return self._reply(404, {"error": {"code": "NotFound", "message": op_id}})
            op.polls += 1
            if op.status == "Running" and op_id not in self.state.held and \
                    self.state.clock() - op.created >= self.state.settle_seconds:
                op.status = "Succeeded"
                self.state.delivered.append(op.message)
        body = {"id": op_id, "status": op.status}
        if op.status == "Failed":
            body["error"] = {"code": "InvalidRecipient", "message": "The recipient address was rejected"}
        self._reply(200, body, {"Retry-After": "0"})


class FakeAcs:
    """with FakeAcs() as acs: ... acs.connection_string ... acs.state.delivered"""

    def __init__(self, access_key: str | None = None, *, tls_context=None):
        key = access_key or base64.b64encode(b"fake-acs-secret-key-0123456789ab").decode()
        self.state = FakeAcsState(access_key=key)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.state = self.state  # type: ignore[attr-defined]
        self._scheme = "http"
        if tls_context is not None:  # a service behind a private CA
            self._httpd.socket = tls_context.wrap_socket(self._httpd.socket, server_side=True)
            self._scheme = "https"

    @property
    def endpoint(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{self._scheme}://{host}:{port}"

    @property
    def connection_string(self) -> str:
        return f"endpoint={self.endpoint}/;accesskey={self.state.access_key}"

    def release(self) -> None:
        """Let held operations finish."""
        with self.state.lock:
            self.state.held.clear()

    def __enter__(self) -> "FakeAcs":
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
