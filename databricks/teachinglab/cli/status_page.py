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
from wsgiref.simple_server import WSGIRequestHandler, make_server

from databricks.teachinglab.adapters.report_files import bundle
from databricks.teachinglab.adapters.web.pages import render_page
from databricks.teachinglab.cli.wiring import LEDGER_LOST, reconnect_ledger
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
            return respond(environ, start_response, path, now)
        except LEDGER_LOST:
            # A long-running server outlives a PostgreSQL failover or restart: its connection is
            # dead, and the first query says so. Reconnect and answer this request once more.
            logger.warning("status page: the ledger's connection was lost; reconnecting")
            reconnect_ledger()
            try:
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


class QuietHandler(WSGIRequestHandler):
    """One log line per request, without the query string or the token (a token is a key)."""

    def log_request(self, code="-", size="-") -> None:
        path = self.path.split("?")[0]
        shown = "/g/…" if path.startswith("/g/") else path
        logger.info("status page: %s %s %s", self.command, shown, code)

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        text = format % args
        path = getattr(self, "path", "")
        logger.warning("status page: %s", text.replace(path, "/g/…") if path.startswith("/g/") else text)


def serve(settings: Settings, clock: Callable[[], datetime], host: str, port: int) -> None:
    with make_server(host, port, make_app(settings, clock), handler_class=QuietHandler) as server:
        logger.info("status page: listening on http://%s:%d (links: %s/g/<token>)", host, server.server_port,
                    settings.status.url or "STATUS_PAGE_URL not set")
        print(f"serving the status page on http://{host}:{server.server_port}; Ctrl-C stops it", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
