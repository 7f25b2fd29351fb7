"""Shared fixtures: an emulated workspace on 127.0.0.1 reached through the real databricks-sdk,
a real ledger, and settings pointing at both.

Every test that touches the ledger (through `make_env` or `ledger_db`) runs twice: on a SQLite
file in a temp folder, and on its own database in a real PostgreSQL server the suite starts
(tests/pgserver.py). Tests of what only SQLite has (the file guard, WAL, backups) are marked
`sqlite_only`."""
from __future__ import annotations

import io
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from databricks.sandbox import Delays, SandboxClock, SandboxServer, Workspace, load_scenario  # noqa: E402
from databricks.teachinglab.cli.config import load_settings  # noqa: E402
from databricks.teachinglab.cli.wiring import close_ledger, connect_workspace, open_context  # noqa: E402
from databricks.teachinglab.services.context import JobContext  # noqa: E402

TZ = ZoneInfo("Asia/Jerusalem")
ADMIN = "admin@example.edu"


def local(y, m, d, hh=0, mm=0, ss=0, tz=TZ) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=tz).astimezone(timezone.utc)


def evening_zone(now: datetime) -> str:
    """A fixed-offset IANA zone in which `now` is about 20:00, so subprocess tests that read the
    real clock can put sessions hours back without crossing local midnight, whenever CI runs."""
    shift = (20 - now.astimezone(timezone.utc).hour) % 24
    if shift > 14:
        shift -= 24
    return "Etc/GMT" if shift == 0 else f"Etc/GMT{-shift:+d}"


class Env:
    """One emulated workspace + ledger + settings, with helpers that drive time."""

    def __init__(self, tmp: Path, start: datetime, extra_env: dict | None = None, database_url: str | None = None):
        self.clock = SandboxClock(start)
        self.workspace = Workspace(self.clock, tokens={"sandbox-token": ADMIN},
                                   delays=Delays(startup=0, restart=60, resize=30, shutdown=30))
        self.server = SandboxServer(workspace=self.workspace).start()
        self.tmp = tmp
        self.env = {
            "DATABRICKS_HOST": self.server.url, "DATABRICKS_TOKEN": "sandbox-token",
            "QUOTA_TIMEZONE": "Asia/Jerusalem", "ADMIN_EMAIL": ADMIN,
            "REPORT_RECIPIENT_EMAIL": "reports@example.edu",
            "CLUSTER_UPTIMES_DB": str(tmp / "ledger.db"), "EMAIL_TRANSPORT": "file",
            "EMAIL_FILE_DIR": str(tmp / "mail"), "HOME": str(tmp), "API_PARALLELISM": "8",
            **({"DATABASE_URL": database_url} if database_url else {}),
            **(extra_env or {}),
        }
        self.settings = load_settings(self.env)
        self.mail_out = io.StringIO()
        self._lab: JobContext | None = None

    def lab(self, **kwargs) -> JobContext:
        """The context a job gets, wired as the CLI wires it (cli/wiring.py), built once."""
        if self._lab is None:
            gateway = connect_workspace(self.settings, retry_timeout_seconds=10)
            gateway.backoff = 0.01
            self._lab = open_context(self.settings, self.now, gateway=gateway, **kwargs)
        return self._lab

    @property
    def now(self) -> datetime:
        return self.workspace.now()

    def seed(self, scenario: dict) -> dict[str, str]:
        return load_scenario(self.workspace, scenario)

    def at(self, when: datetime) -> datetime:
        self.clock.set(when)
        return self.workspace.now()

    def poll(self, when: datetime | None = None, **kwargs):
        from databricks.teachinglab.services.poll import run_poll
        if when is not None:
            self.at(when)
        return run_poll(self.lab(), self.now, **kwargs)

    def polls(self, start: datetime, end: datetime, step: int = 15) -> list:
        """A poll every `step` minutes from start to end, both included, as cron would run it."""
        reports, t = [], start
        while t <= end:
            reports.append(self.poll(t))
            t += timedelta(minutes=step)
        return reports

    def run_to_hard_quota(self, cluster_id: str, day: tuple[int, int, int] = (2026, 3, 2)) -> None:
        """The story many tests start from: the cluster runs from 08:00 local, polled every 15
        minutes until 16:15; at 16:00 it reaches the 480-minute quota, is stopped and blocked."""
        self.workspace.session(cluster_id, local(*day, 8), None)
        self.polls(local(*day, 8), local(*day, 16, 15))

    def close_day(self, when: datetime | None = None):
        from databricks.teachinglab.services.nightly import run_end_of_day
        if when is not None:
            self.at(when)
        return run_end_of_day(self.lab(), self.now)

    def mails(self) -> list[str]:
        folder = self.tmp / "mail"
        return sorted(p.name for p in folder.glob("*.eml")) if folder.exists() else []

    def stop(self):
        if self._lab is not None:
            close_ledger()
        self.server.stop()


@pytest.fixture(autouse=True)
def _restore_logging():
    """Entry points configure the root logger; put it back so later tests keep pytest's capture."""
    import logging
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    sdk = logging.getLogger("databricks.sdk")
    sdk_level = sdk.level
    sdk.setLevel(logging.ERROR)  # its host-metadata probe warns on every client
    yield
    root.handlers[:], root.level = saved
    sdk.setLevel(sdk_level)


def pytest_configure(config):
    config.addinivalue_line("markers", "sqlite_only: tests what only a SQLite ledger has (one backend)")
    config.addinivalue_line("markers", "postgresql_only: tests what only a PostgreSQL ledger has (its lock)")


def pytest_generate_tests(metafunc):
    """Each ledger-touching test on both backends, as [sqlite] and [postgresql]."""
    if "ledger_backend" in metafunc.fixturenames:
        backends = ["sqlite", "postgresql"]
        if metafunc.definition.get_closest_marker("sqlite_only"):
            backends = ["sqlite"]
        elif metafunc.definition.get_closest_marker("postgresql_only"):
            backends = ["postgresql"]
        metafunc.parametrize("ledger_backend", backends, indirect=True)


@pytest.fixture(scope="session")
def postgres_server():
    from tests.pgserver import PostgresServer, missing_reason
    reason = missing_reason()
    if reason and os.environ.get("TEACHINGLAB_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL leg required (TEACHINGLAB_REQUIRE_POSTGRES=1, as .ci/run sets): {reason}")
    if reason:
        pytest.skip(f"PostgreSQL leg: {reason}")
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture
def ledger_backend(request):
    return request.param


@pytest.fixture
def database_urls(request, ledger_backend):
    """A function giving a new, empty ledger URL on this test's backend (None: the SQLite file
    CLUSTER_UPTIMES_DB names); the databases it made are dropped after the test."""
    if ledger_backend == "sqlite":
        yield lambda: None
        return
    server = request.getfixturevalue("postgres_server")
    made = []

    def new() -> str:
        made.append(server.create_database())
        return server.url(made[-1])

    yield new
    from databricks.teachinglab.cli.wiring import close_ledger
    close_ledger()
    for name in made:
        server.drop_database(name)


@pytest.fixture
def ledger_db(tmp_path, database_urls):
    """A real, migrated ledger (SQLite file or PostgreSQL database), bound to the models."""
    from databricks.teachinglab.adapters.ledger.models import open_ledger
    url = database_urls()
    database = open_ledger(db_path=None if url else tmp_path / "l.db", database_url=url,
                           now=datetime(2026, 3, 2, 11, 0, tzinfo=timezone.utc))
    yield database
    database.close()


@pytest.fixture
def make_env(tmp_path, database_urls):
    envs = []

    def make(start: datetime, **extra) -> Env:
        env = Env(tmp_path / f"env{len(envs)}", start, extra, database_url=database_urls())
        (tmp_path / f"env{len(envs)}").mkdir(exist_ok=True)
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.stop()


def ledger_dump(env: Env | None = None, *, url: str | None = None, path: Path | None = None,
                schema: str = "public") -> list[tuple[str, list[str]]]:
    """Every table of a ledger, row by row, read through its own connection (not the product's):
    what a test compares before and after a command that must change nothing."""
    if env is not None:
        url = env.env.get("DATABASE_URL")
        path = None if url else Path(env.env["CLUSTER_UPTIMES_DB"])
    if url and url.startswith("postgres"):
        import psycopg2
        con = psycopg2.connect(url)
        try:
            with con.cursor() as cur:
                cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                            "ORDER BY table_name", (schema,))
                tables = [r[0] for r in cur.fetchall()]
                out = []
                for table in tables:
                    cur.execute(f'SELECT * FROM "{schema}"."{table}"')
                    out.append((table, sorted(repr(tuple(bytes(v) if isinstance(v, memoryview) else v for v in r))
                                              for r in cur.fetchall())))
                return out
        finally:
            con.close()
    import sqlite3
    con = sqlite3.connect(path if path is not None else url.split("sqlite:///", 1)[1])
    try:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return [(t, sorted(repr(r) for r in con.execute(f'SELECT * FROM "{t}"'))) for t in tables]
    finally:
        con.close()


def course(n_groups=2, size=2, **cluster_extra) -> dict:
    from databricks.sandbox import sample_course
    scenario = sample_course(n_groups, size)
    for c in scenario["clusters"]:
        c.update(cluster_extra)
    return scenario


class Inbox:
    """An aiosmtpd handler that keeps what it receives: (recipients, raw message)."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, envelope.content))
        return "250 OK"


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


__all__ = ["local", "course", "evening_zone", "ledger_dump", "TZ", "ADMIN", "timedelta", "Inbox", "free_port"]


def roster_env(make_env, monkeypatch, tmp_path, start: datetime, **extra) -> Env:
    """An Env whose settings are also the process's (for in-process `cli.main`), with the sample
    Moodle export converted to `env.users_csv`."""
    from databricks import main as cli
    e = make_env(start, **extra)
    for key, value in e.env.items():
        monkeypatch.setenv(key, value)
    users = tmp_path / "users.csv"
    assert cli.main(["--convert_moodle", str(ROOT / "tests" / "data" / "moodle_groupselect.csv"), "-o", str(users)]) == 0
    e.users_csv = users
    return e


def rerun_changes_nothing(env: Env, capsys) -> None:
    """A second --create_from_csv of `env.users_csv` says "nothing to change" and writes nothing."""
    from databricks import main as cli
    capsys.readouterr()
    writes = len([r for r in env.workspace.requests if r.method != "GET"])
    assert cli.main(["--create_from_csv", str(env.users_csv)]) == 0
    assert "nothing to change" in capsys.readouterr().out
    assert len([r for r in env.workspace.requests if r.method != "GET"]) == writes
