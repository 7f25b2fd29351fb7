"""The run contract: the namespace file, imports from the repository root, --help without config."""
import os
from pathlib import Path
import subprocess
import sys

import pytest

from conftest import ROOT

ENTRY_POINTS = ["databricks.poll_clusters", "databricks.end_of_day_operations", "databricks.main"]


def test_namespace_file_is_the_sdk_one_liner():
    text = (ROOT / "databricks" / "__init__.py").read_text()
    assert text.strip() == '__path__ = __import__("pkgutil").extend_path(__path__, __name__)'


def test_sdk_and_entry_points_import_from_the_repository_root():
    # regression: the old tool's own package shadowed databricks.sdk
    code = "import databricks.sdk, " + ", ".join(ENTRY_POINTS) + "; print(databricks.sdk.WorkspaceClient)"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "WorkspaceClient" in r.stdout


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_help_works_with_no_configuration(module, tmp_path):
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "usage: python -m " + module in r.stdout


def test_cron_wrappers_default_to_timeout_30_and_journald():
    poll = (ROOT / "scripts" / "periodic_poll.sh").read_text()
    assert "POLL_TIMEOUT_SECONDS:-30}" in poll and "databricks.poll_clusters" in poll
    assert "systemd-cat -t dbr_scripts --level-prefix=true" in (ROOT / "scripts" / "job.sh").read_text()
    cron = (ROOT / "scripts" / "crontab.example").read_text()
    assert "\n* * * * *    " in cron and "7 0 * * *" in cron


def lint_imports(cwd) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_import_contracts_hold():
    """The layers (cli > services > adapters > core), a pure core, one SDK module, no sandbox in
    the product: .importlinter's contracts, checked by import-linter."""
    r = lint_imports(ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "Contracts: 6 kept, 0 broken." in r.stdout


@pytest.mark.parametrize("module, line, contract", [
    ("core/usage.py", "import peewee", "core is pure"),
    ("core/quota.py", "from databricks.sdk.service import compute", "core does not import databricks.sdk"),
    ("services/poll.py", "from databricks.sdk import WorkspaceClient", "Only the adapters.workspace package"),
    ("adapters/ledger/repository.py", "from databricks.teachinglab.services import poll", "The layers go"),
    ("core/report.py", "import time", "core is pure"),
    ("services/grants.py", "from databricks.teachinglab.adapters.ledger.models import Cluster",
     "Services reach the ledger through its repository"),
    ("services/audit.py", "from databricks.sandbox import Workspace", "The product never imports"),
])
def test_each_import_contract_catches_its_violation(tmp_path, module, line, contract):
    """A copy of the tree with one forbidden import added: lint-imports must fail on that contract."""
    import shutil
    shutil.copytree(ROOT / "databricks", tmp_path / "databricks",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    target = tmp_path / "databricks" / "teachinglab" / module
    target.write_text(target.read_text() + f"\n{line}\n")
    r = lint_imports(tmp_path)
    assert r.returncode == 1
    broken = [ln for ln in r.stdout.splitlines() if ln.rstrip().endswith("BROKEN")]
    assert any(contract in ln for ln in broken) or contract in r.stdout.split("Broken contracts")[-1], r.stdout


def test_entry_points_are_thin():
    for name in ("poll_clusters.py", "end_of_day_operations.py", "main.py"):
        lines = (ROOT / "databricks" / name).read_text().splitlines()
        assert len(lines) < 60, f"databricks/{name} has {len(lines)} lines; the work belongs in teachinglab/cli"


def test_only_the_cli_reads_the_clock_or_the_environment():
    readers = [str(p.relative_to(ROOT / "databricks" / "teachinglab")) for p in
               (ROOT / "databricks" / "teachinglab").rglob("*.py")
               if "datetime.now(" in p.read_text() or "os.environ" in p.read_text()]
    assert readers and all(r.startswith("cli/") for r in readers), readers


def test_crontab_is_generated_in_the_quota_zone_with_the_real_path(tmp_path):
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "QUOTA_TIMEZONE": "Europe/Berlin",
           "TZ": "UTC"}
    r = subprocess.run([sys.executable, "-m", "databricks.main", "--crontab"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "CRON_TZ=Europe/Berlin" in r.stdout and f"{ROOT}/scripts/periodic_poll.sh" in r.stdout
    assert "this machine's zone is UTC, not Europe/Berlin" in r.stdout
    from databricks.teachinglab.cli.commands import crontab_lines
    example = "\n".join(crontab_lines("Asia/Jerusalem", ROOT.parent / "teachinglab", "Asia/Jerusalem")) + "\n"
    assert (ROOT / "scripts" / "crontab.example").read_text() == example.replace(str(ROOT.parent), "/opt")


def test_crontab_follows_poll_interval_minutes():
    from databricks.teachinglab.cli.commands import crontab_lines
    every_minute = crontab_lines("UTC", ROOT, "UTC", 1)
    light = crontab_lines("UTC", ROOT, "UTC", 15)
    assert f"* * * * *    {ROOT}/scripts/periodic_poll.sh" in every_minute
    assert f"*/15 * * * * {ROOT}/scripts/periodic_poll.sh" in light and not any(l.startswith("* ") for l in light)


@pytest.mark.parametrize("has", ["systemd-cat", "logger", "neither"])
def test_wrappers_log_to_journald_or_syslog_or_the_jobs_own_file(tmp_path, has):
    """systemd-cat when journald runs, logger when only syslog does; else the job is told to write
    its own log file (--log-to file) and its output is not piped anywhere. The job is always told
    where its log goes, so its alert mails can say. Stand-in programs record what they get."""
    import socket
    import shutil
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "timeout", "sed", "cat", "sh"):  # only these, not the host's systemd-cat/logger
        (bin_dir / tool).symlink_to(shutil.which(tool))
    for name in ("systemd-cat", "logger"):
        if has == name:
            (bin_dir / name).write_text(f"#!/bin/sh\ncat > {tmp_path}/{name}.out\n")
            (bin_dir / name).chmod(0o755)
    sockets = []
    for name in ("journal.sock", "syslog.sock"):
        s = socket.socket(socket.AF_UNIX)
        s.bind(str(tmp_path / name))
        sockets.append(s)
    fake_python = bin_dir / "python"
    fake_python.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/args\n"
                           "echo '<6>databricks.poll_clusters: poll done'\necho '<3>x: failed' >&2\n")
    fake_python.chmod(0o755)
    env = {"PATH": str(bin_dir), "TEACHINGLAB_PYTHON": str(fake_python),
           "TEACHINGLAB_JOURNAL_SOCKET": str(tmp_path / "journal.sock"),
           "TEACHINGLAB_SYSLOG_SOCKET": str(tmp_path / "syslog.sock")}
    try:
        r = subprocess.run([shutil.which("bash"), str(ROOT / "scripts" / "periodic_poll.sh")], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    finally:
        for s in sockets:
            s.close()
    assert r.returncode == 0
    args = (tmp_path / "args").read_text().split()
    if has == "systemd-cat":
        got = (tmp_path / "systemd-cat.out").read_text()
        assert "<6>databricks.poll_clusters: poll done" in got and "<3>x: failed" in got
        assert args[args.index("--log-to") + 1] == "journald" and "--journald" in args
    elif has == "logger":
        got = (tmp_path / "logger.out").read_text()
        assert "databricks.poll_clusters: poll done" in got and "<6>" not in got  # logger sets its own priority
        assert args[args.index("--log-to") + 1] == "syslog"
    else:
        assert args[args.index("--log-to") + 1] == "file" and "--journald" not in args
        assert "poll done" in r.stdout and "x: failed" in r.stderr  # nothing between the job and cron


def _imported(args: list[str], env: dict | None = None) -> set[str]:
    """Top-level modules a run of `python -X importtime ...` imported."""
    r = subprocess.run([sys.executable, "-X", "importtime", *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=120, env={**os.environ, **(env or {})})
    return {line.split("|")[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("args, env", [
    (["-m", "databricks.main", "--help"], None),
    (["-m", "databricks.poll_clusters", "--help"], None),
    (["-m", "databricks.main", "--frobnicate"], None),                                   # an argument error
    (["-m", "databricks.poll_clusters"], {"DATABRICKS_WARN_UPTIME": "abc", "DATABRICKS_HOST": "https://x.net"}),
], ids=["main-help", "poll-help", "argument-error", "configuration-error"])
def test_help_and_errors_never_import_the_sdk_or_the_renderers(args, env):
    """databricks.sdk takes most of a second to import, Jinja2, pandas and matplotlib more: a
    command that only explains itself must not pay for them (timings: make bench)."""
    loaded = _imported(args, env)
    assert "databricks.teachinglab.cli.config" in loaded or "argparse" in loaded
    for heavy in ("databricks.sdk", "jinja2", "pandas", "matplotlib"):
        assert heavy not in loaded, heavy
