"""--status_page: the students' page, a WSGI app on the standard library's server (wsgiref).

    /g/<token>        a group's page: today, this week, this semester; today's sessions; the forecast
    /admin/           the whole course today, as the daily report shows it (HTTP Basic, STATUS_PAGE_PASSWORD)
    /admin/report.png its chart
    /healthz          "ok", for the systemd unit's watchdog or a load balancer

A forged or stale token gets the same 404 as an unknown path; a page never names another group,
a student or a secret. Every request reads the ledger as the last poll left it, and the clock
once (this is the CLI layer). Run it behind a TLS proxy (README), as a systemd service."""
from __future__ import annotations

import base64
import binascii
import hmac
import logging
from datetime import datetime
from typing import Callable, Iterable
import threading
from socketserver import ThreadingMixIn
from urllib.parse import unquote
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer, make_server

from databricks.teachinglab.adapters.report_files import bundle
from databricks.teachinglab.adapters.web.pages import render_page
from databricks.teachinglab.cli.wiring import LEDGER_LOST, reconnect_ledger, request_connection
from databricks.teachinglab.core.accounting import local_day
from databricks.teachinglab.core.settings import Settings
from databricks.teachinglab.services.reports import preview_report
from databricks.teachinglab.services.status import group_for_token, group_status

logger = logging.getLogger(__name__)
HEADERS = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
           ("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'"),
           ("X-Frame-Options", "DENY")]


def make_app(settings: Settings, clock: Callable[[], datetime]):
    def app(environ, start_response) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
            return _send(start_response, "405 Method Not Allowed", b"", "text/plain", [("Allow", "GET, HEAD")])
        now = clock()
        try:
            with request_connection():  # each request's thread: its own connection, closed after it
                return respond(environ, start_response, path, now)
        except LEDGER_LOST:
            # A long-running server outlives a PostgreSQL failover or restart: its connection is
            # dead, and the first query says so. Reconnect and answer this request once more.
            logger.warning("status page: the ledger's connection was lost; reconnecting")
            reconnect_ledger()
            try:
                with request_connection():
                    return respond(environ, start_response, path, now)
            except Exception as err:  # noqa: BLE001 - one line in the log, a plain 500, nothing leaked
                return _failed(start_response, path, err)
        except Exception as err:  # noqa: BLE001 - one line in the log, a plain 500, nothing leaked
            return _failed(start_response, path, err)

    def respond(environ, start_response, path: str, now: datetime) -> Iterable[bytes]:
        if path == "/healthz":
            return _send(start_response, "200 OK", b"ok\n", "text/plain")
        if path.startswith("/g/") and path.count("/") == 2:
            group = group_for_token(settings, path[3:], now)
            if group is not None:
                page = render_page("group", s=group_status(settings, group, now))
                return _send(start_response, "200 OK", page.encode("utf-8"), "text/html; charset=utf-8")
        elif path in ("/admin", "/admin/", "/admin/report.png") and settings.status.password:
            if not _authorized(environ, settings.status.password):
                return _send(start_response, "401 Unauthorized", b"password needed\n", "text/plain",
                             [("WWW-Authenticate", 'Basic realm="teaching lab admin", charset="UTF-8"')])
            if path == "/admin":
                return _send(start_response, "301 Moved Permanently", b"", "text/plain", [("Location", "/admin/")])
            report = bundle(preview_report(local_day(now, settings.quota.timezone), settings), settings, now,
                            inline_chart=False)
            if path.endswith(".png"):
                return _send(start_response, "200 OK", report.png, "image/png")
            return _send(start_response, "200 OK", report.html.encode("utf-8"), "text/html; charset=utf-8")
        return _send(start_response, "404 Not Found", render_page("not_found").encode("utf-8"),
                     "text/html; charset=utf-8")
    return app


def _failed(start_response, path: str, err: Exception) -> list[bytes]:
    logger.error("status page: %s failed (%s: %s)", path.split("/")[1] or "/", type(err).__name__, err)
    return _send(start_response, "500 Internal Server Error", b"error; see the server's log\n", "text/plain")


def _send(start_response, status: str, body: bytes, content_type: str, extra: list | None = None) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body))), *HEADERS,
                            *(extra or [])])
    return [body]


def _authorized(environ, password: str) -> bool:
    header = environ.get("HTTP_AUTHORIZATION", "")
    if not header.startswith("Basic "):
        return False
    try:
        _, _, given = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return hmac.compare_digest(given.encode("utf-8"), password.encode("utf-8"))


ROUTES = ("/", "/healthz", "/admin", "/admin/", "/admin/report.png")
MAX_REQUEST_LINE = 8192          # longer is 414: no page here needs more, and the log stays small
CONNECTION_TIMEOUT_SECONDS = 10  # a client that sends nothing for this long is closed
MAX_CONNECTIONS = 128            # threads at once; past that a client gets 503 at once


class QuietHandler(WSGIRequestHandler):
    """One log line per request naming the route, never the path as sent: a token is a key, and
    a percent-encoded one (/%67/<token>) is the same key. Each connection has its own thread and
    its own socket timeout, so a slow or half-open client holds only itself."""
    timeout = CONNECTION_TIMEOUT_SECONDS

    def route(self) -> str:
        path = unquote(str(getattr(self, "path", "") or "").split("?", 1)[0])
        if "/g/" in path or path.startswith("/g"):
            return "/g/…"
        return path if path in ROUTES else "(another path)"

    def handle(self) -> None:
        """WSGIRequestHandler.handle, with an 8 KB request line and the multithreaded flag."""
        try:
            self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE + 1)
        except (TimeoutError, OSError):
            return  # the client sent nothing in time: close, nothing to answer
        if len(self.raw_requestline) > MAX_REQUEST_LINE:
            self.requestline, self.request_version, self.command, self.path = "", "HTTP/1.0", "", ""
            self.send_error(414, "Request line too long")
            return
        if not self.parse_request():
            return
        handler = ServerHandler(self.rfile, self.wfile, self.get_stderr(), self.get_environ(), multithread=True)
        handler.request_handler = self
        handler.run(self.server.get_app())

    def log_request(self, code="-", size="-") -> None:
        logger.info("status page: %s %s %s", str(getattr(self, "command", "") or "-")[:8], self.route(), code)

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        # What the base class logs (errors, timeouts) may quote the request: numbers only.
        logger.warning("status page: " + format, *(a if isinstance(a, (int, float)) else "…" for a in args))


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """A thread per connection, at most MAX_CONNECTIONS at once."""
    daemon_threads = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def serve(settings: Settings, clock: Callable[[], datetime], host: str, port: int) -> None:
    with make_server(host, port, make_app(settings, clock), server_class=ThreadingWSGIServer,
                     handler_class=QuietHandler) as server:
        links = f"{settings.status.url}/g/<token>" if settings.status.url else \
            "none in mails: set STATUS_PAGE_URL to the address students reach this page at"
        logger.info("status page: listening on http://%s:%d (links: %s)", host, server.server_port, links)
        print(f"serving the status page on http://{host}:{server.server_port}; Ctrl-C stops it", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
