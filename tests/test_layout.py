"""The run contract: the namespace file, imports from the repository root, --help without config."""
import os
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
    assert "*/15" in cron and "7 0 * * *" in cron


def test_sdk_is_imported_by_one_module_only():
    importers = [p.relative_to(ROOT) for p in (ROOT / "databricks" / "teachinglab").rglob("*.py")
                 if "from databricks.sdk" in p.read_text() or "import databricks.sdk" in p.read_text()]
    assert [str(p) for p in importers] == ["databricks/teachinglab/workspace_gateway.py"]


def test_only_entry_points_read_the_clock():
    readers = [p.name for p in (ROOT / "databricks" / "teachinglab").rglob("*.py")
               if "datetime.now(" in p.read_text() or "utcnow()" in p.read_text()]
    assert set(readers) <= {"runtime.py", "cli_commands.py", "demo.py", "bench.py"}


def test_crontab_is_generated_in_the_quota_zone_with_the_real_path(tmp_path):
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "QUOTA_TIMEZONE": "Europe/Berlin",
           "TZ": "UTC"}
    r = subprocess.run([sys.executable, "-m", "databricks.main", "--crontab"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "CRON_TZ=Europe/Berlin" in r.stdout and f"{ROOT}/scripts/periodic_poll.sh" in r.stdout
    assert "this machine's zone is UTC, not Europe/Berlin" in r.stdout
    from databricks.teachinglab.cli_commands import crontab_lines
    example = "\n".join(crontab_lines("Asia/Jerusalem", ROOT.parent / "teachinglab", "Asia/Jerusalem")) + "\n"
    assert (ROOT / "scripts" / "crontab.example").read_text() == example.replace(str(ROOT.parent), "/opt")
