"""Shared fixtures: an emulated workspace on 127.0.0.1 reached through the real databricks-sdk,
a real SQLite ledger in a temp folder, and settings pointing at both."""
from __future__ import annotations

import io
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

    def __init__(self, tmp: Path, start: datetime, extra_env: dict | None = None):
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


@pytest.fixture
def ledger_db(tmp_path):
    """A real, migrated SQLite ledger in a temp folder, bound to the models for the test."""
    from databricks.teachinglab.adapters.ledger.models import open_ledger
    database = open_ledger(db_path=tmp_path / "l.db", database_url=None,
                           now=datetime(2026, 3, 2, 11, 0, tzinfo=timezone.utc))
    yield database
    database.close()


@pytest.fixture
def make_env(tmp_path):
    envs = []

    def make(start: datetime, **extra) -> Env:
        env = Env(tmp_path / f"env{len(envs)}", start, extra)
        (tmp_path / f"env{len(envs)}").mkdir(exist_ok=True)
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.stop()


def course(n_groups=2, size=2, **cluster_extra) -> dict:
    from databricks.sandbox import sample_course
    scenario = sample_course(n_groups, size)
    for c in scenario["clusters"]:
        c.update(cluster_extra)
    return scenario


__all__ = ["local", "course", "evening_zone", "TZ", "ADMIN", "timedelta"]
