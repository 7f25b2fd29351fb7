"""The lab's settings as typed sections: what config.load_settings produces from the environment
once, checked, and what every layer below takes. Pure data: nothing here reads anything."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from databricks.teachinglab.core.policy import Policy
from databricks.teachinglab.core.prices import PriceTable
from databricks.teachinglab.core.units import MINUTES, QuotaUnit

if TYPE_CHECKING:  # a type only: core opens no file
    from pathlib import Path

ACCESS_MODES = {"dedicated": "DATA_SECURITY_MODE_DEDICATED", "standard": "DATA_SECURITY_MODE_STANDARD",
                "none": None}
# The runtime each access mode needs (Databricks docs): dedicated compute assigned to a group needs
# 15.4 LTS or later ("Dedicated group access"); standard access mode with Unity Catalog 13.3 LTS.
MIN_RUNTIME = {"dedicated": (15, 4), "standard": (13, 3), "none": (0, 0)}
MAX_PINNED = 100  # a workspace pins at most 100 clusters (Clusters API, pin)


def runtime_of(spark_version: str) -> tuple[int, int] | None:
    """(15, 4) from "15.4.x-scala2.12" (also "15.4.x-cpu-ml-scala2.12"); None when unreadable."""
    m = re.match(r"^(\d+)\.(\d+)\.", spark_version)
    return (int(m.group(1)), int(m.group(2))) if m else None


@dataclass(frozen=True)
class ClusterSettings:
    course: str = "course"
    spark_version: str = "15.4.x-scala2.12"
    node_type_id: str = "Standard_DS3_v2"
    driver_node_type_id: str | None = None
    min_workers: int = 1
    max_workers: int = 2
    autotermination_minutes: int = 30
    pypi: tuple[str, ...] = ()
    maven: tuple[str, ...] = ()
    access_mode: str = "dedicated"
    access_mode_given: bool = True   # False: CLUSTER_ACCESS_MODE unset, chosen by whether groups are account groups

    @property
    def students_group(self) -> str:
        return f"{self.course}-students"

    def cluster_name(self, group_key: str) -> str:
        return f"{self.course}-{group_key}"

    @staticmethod
    def group_folder(group_name: str) -> str:
        """Dedicated group compute works in the group's folder (Databricks docs, "Dedicated group
        access": create /Workspace/Groups/<group> with CAN MANAGE for the group)."""
        return f"/Workspace/Groups/{group_name}"

    def spec(self, group_key: str, group_name: str) -> dict:
        out = {"cluster_name": self.cluster_name(group_key), "spark_version": self.spark_version,
               "node_type_id": self.node_type_id, "driver_node_type_id": self.driver_node_type_id,
               "autotermination_minutes": self.autotermination_minutes,
               "autoscale": (self.min_workers, self.max_workers),
               "custom_tags": {"group": group_name, "course": self.course},
               "data_security_mode": ACCESS_MODES[self.access_mode]}
        if self.access_mode == "dedicated":
            out["single_user_name"] = group_name  # dedicated to the group: members act as the group
        return out


@dataclass(frozen=True)
class WorkspaceSettings:
    host: str | None = None
    token: str | None = field(default=None, repr=False)
    profile: str | None = None
    api_parallelism: int = 8
    poll_deadline_seconds: float = 25.0
    poll_interval_seconds: int = 60        # POLL_INTERVAL_MINUTES: how often cron runs the poll
    serverless_notebooks: str = "unknown"  # on | off | unknown: no workspace API shows it
    account_id: str | None = None          # set: groups are account groups (identity federation)
    account_host: str | None = None
    account_token: str | None = field(default=None, repr=False)
    account_profile: str | None = None
    warehouse_id: str | None = None        # DATABRICKS_WAREHOUSE_ID: the nightly close reads the bill there
    warehouse_wait_seconds: float = 45.0   # WAREHOUSE_WAIT_SECONDS: how long the close waits for it
    warehouse_start: str = "auto"          # WAREHOUSE_START: auto (a stopped one is started) | never
    lab_managers: tuple[str, ...] = ()     # LAB_MANAGERS: emails and service principals' application ids
    # SERVERLESS_INTERACTIVE_COMPUTE_ID / SERVERLESS_AUTOMATED_COMPUTE_ID: the workspace's two
    # serverless compute objects (notebooks, jobs), whose CAN_USE follows the course
    serverless_interactive_id: str | None = None
    serverless_automated_id: str | None = None
    serverless_check_minutes: int | None = None  # SERVERLESS_CHECK_MINUTES: the poll reads the bill this often

    @property
    def serverless_objects(self) -> tuple[tuple[str, str], ...]:
        """(label, id) of each serverless compute object the admin named."""
        return tuple((label, oid) for label, oid in (("notebooks", self.serverless_interactive_id),
                                                     ("jobs", self.serverless_automated_id)) if oid)


@dataclass(frozen=True)
class QuotaSettings:
    unit: QuotaUnit = MINUTES               # QUOTA_UNIT
    warn_limit: float = 400                 # per group per day, in `unit`
    max_limit: float = 480
    timezone: ZoneInfo = ZoneInfo("UTC")
    semester_start: date | None = None
    prices: PriceTable | None = None        # PRICE_TABLE_FILE, or the packaged table
    price_file: str = "the packaged prices.json"  # where `prices` came from, for messages
    policy: Policy | None = None            # QUOTA_POLICY_FILE, else the daily limits above
    budget_usd: float | None = None         # COURSE_BUDGET_USD: --create_from_csv refuses a worst case above it

    @property
    def the_policy(self) -> Policy:
        return self.policy or Policy.daily_only(self.unit, self.warn_limit, self.max_limit)

    @property
    def tz_name(self) -> str:
        return self.timezone.key


@dataclass(frozen=True)
class MailSettings:
    """Who mail goes to and from, and how: EMAIL_TRANSPORT and each transport's own variables."""
    transport: str = "console"
    sender: str = "teachinglab@localhost"
    admin_email: str | None = None
    report_recipient: str | None = None
    templates_dir: Path | None = None
    budget_seconds: float = 8.0
    file_dir: Path | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str = field(default="", repr=False)
    smtp_starttls: bool = True
    smtp_ca_file: str | None = None      # SMTP_CA_FILE, else REQUESTS_CA_BUNDLE
    acs_endpoint: str | None = None
    acs_key: str = field(default="", repr=False)
    ca_bundle: str | None = None         # REQUESTS_CA_BUNDLE, for ACS behind a private CA
    # ACS sends per subscription (ACS_SEND_PER_MINUTE/_HOUR): an Azure-managed domain allows 5 a
    # minute and 10 an hour, a custom domain 30 and 100 ("Email client library overview: API
    # throttling"); more on request to Azure support.
    acs_send_per_minute: int = 5
    acs_send_per_hour: int = 10


@dataclass(frozen=True)
class LedgerSettings:
    db_path: Path | None = None        # the SQLite file; None with database_url
    database_url: str | None = field(default=None, repr=False)
    lock_path: Path | None = None      # the file lock (SQLite); PostgreSQL uses an advisory lock
    schema: str | None = None          # PostgreSQL: a course's own schema (TEACHINGLAB_COURSES_FILE)
    state_dir: Path | None = None      # the account's data folder: the ledger registry, alert state


@dataclass(frozen=True)
class StatusPageSettings:
    """The students' page (--status_page): where it is reached, what signs its links, the admin's
    password. The secret, when not set, is kept in the ledger (--rotate_status_secret)."""
    url: str | None = None                 # STATUS_PAGE_URL, e.g. https://lab.example.edu/status
    secret: str | None = field(default=None, repr=False)    # STATUS_PAGE_SECRET
    password: str | None = field(default=None, repr=False)  # STATUS_PAGE_PASSWORD: /admin


@dataclass(frozen=True)
class LoggingSettings:
    journald: bool = False                 # LOG_JOURNALD=1: <N> priority prefixes for systemd-cat
    target: str = "stderr"                 # where this run's log lines go: journald, syslog, file, stderr
    log_file: Path | None = None           # the file, for target "file" (TEACHINGLAB_LOG_DIR or the ledger's folder)

    @property
    def hint(self) -> str:
        """How the admin reads this run's log, as an alert mail says it."""
        if self.target == "journald":
            return "journalctl -t dbr_scripts -r"
        if self.target == "syslog":
            return "grep dbr_scripts /var/log/syslog (or /var/log/messages): the system log, tag dbr_scripts"
        if self.target == "file" and self.log_file is not None:
            return f"tail -n 100 {self.log_file}"
        return "the run's own output (it ran outside the cron wrappers; scripts/periodic_poll.sh logs for you)"


@dataclass(frozen=True)
class ContentSettings:
    """Where each group works beyond its cluster: a Unity Catalog home and the course's notebooks."""
    catalog: str | None = None              # UC_CATALOG: the course catalog (created if missing)
    storage_root: str | None = None         # UC_CATALOG_STORAGE_ROOT: its managed location, if the metastore has none
    notebooks_dir: Path | None = None       # COURSE_NOTEBOOKS_DIR: notebooks in source format, deployed to the groups
    notebooks_shared: bool = False          # COURSE_NOTEBOOKS_SHARED: once into a folder every group may read

    def group_schema(self, group_key: str) -> str:
        return f"{self.catalog}.{group_key.lower()}"

    @property
    def shared_schema(self) -> str:
        return f"{self.catalog}.shared"


@dataclass(frozen=True)
class Settings:
    workspace: WorkspaceSettings = field(default_factory=WorkspaceSettings)
    quota: QuotaSettings = field(default_factory=QuotaSettings)
    mail: MailSettings = field(default_factory=MailSettings)
    ledger: LedgerSettings = field(default_factory=LedgerSettings)
    cluster: ClusterSettings = field(default_factory=ClusterSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    status: StatusPageSettings = field(default_factory=StatusPageSettings)
    course_given: bool = False             # COURSE_NAME set: provisioning needs it
    course_id: str | None = None           # the course's name in TEACHINGLAB_COURSES_FILE; None: the one course
    content: ContentSettings = field(default_factory=ContentSettings)
    environment: str = "prod"              # TEACHINGLAB_ENV: dev | prod

    @property
    def environment_tag(self) -> str:
        """"[dev] " in front of log lines, mail subjects and report titles; nothing for prod."""
        return "" if self.environment == "prod" else f"[{self.environment}] "

    @property
    def course_label(self) -> str:
        """The course's name in JSON output and log lines: its courses-file name, else COURSE_NAME."""
        return self.course_id or self.cluster.course
