"""Logs: one line per decision, journald priorities on request, and never a secret."""
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

from conftest import ROOT, course, evening_zone


def test_poll_logs_decisions_with_priorities_and_no_token(make_env):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    env = make_env(now - timedelta(hours=9), QUOTA_TIMEZONE=evening_zone(now))
    ids = env.seed(course(2, 1))
    env.workspace.session(ids["cluster_01"], now - timedelta(hours=8, minutes=30), None)
    env.workspace.session(ids["cluster_02"], now - timedelta(hours=7), None)
    env.at(now)
    subenv = {**env.env, "PATH": os.environ["PATH"], "DATABRICKS_TOKEN": "sandbox-token"}
    r = subprocess.run([sys.executable, "-m", "databricks.poll_clusters", "--journald", "--verbose"],
                       cwd=ROOT, env=subenv, capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.splitlines()
    assert lines and all(line[:3] in ("<6>", "<7>", "<4>", "<3>") for line in lines), lines
    decisions = [line for line in lines if "cluster=" in line and "used=" in line]
    stopped = [line for line in decisions if "name=cluster_01" in line and "terminate+block+notify" in line]
    assert len(stopped) == 1 and stopped[0].startswith("<6>") and "group=group_01" in stopped[0]
    assert "/480min" in stopped[0]
    warned = [line for line in decisions if "name=cluster_02" in line]
    assert warned and warned[0].startswith("<6>") and "warn" in warned[0]
    assert "sandbox-token" not in r.stderr + r.stdout
    assert any(line.startswith("<6>databricks.poll_clusters: poll done") for line in lines)  # not __main__


def test_redaction_filter_hides_secrets_in_any_log_line(capsys):
    import argparse
    import logging

    from databricks.teachinglab.cli.runtime import setup_logging
    setup_logging(argparse.Namespace(verbose=False, journald=True), ["dapi-abcdef123"])
    logging.getLogger("x").error("request failed with header Bearer %s", "dapi-abcdef123")
    err = capsys.readouterr().err
    assert "dapi-abcdef123" not in err and "Bearer ***" in err and err.startswith("<3>")
