"""Configuration: defaults, every problem at once, exit 2 without a traceback, no secrets."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from databricks.teachinglab.cli.config import ConfigError, load_settings, normalize_host, read_env

BASE = {"DATABRICKS_HOST": "adb-1.azuredatabricks.net", "DATABRICKS_TOKEN": "dapi-secret-123",
        "HOME": "/home/lab"}


def test_defaults():
    s = load_settings({**BASE, "TZ": "Asia/Jerusalem"})
    assert (s.quota.warn_limit, s.quota.max_limit) == (400, 480)
    assert s.quota.tz_name == "Asia/Jerusalem"
    assert s.ledger.db_path == Path("/home/lab/.local/share/teachinglab/cluster_uptimes.db")
    assert s.mail.transport == "console"
    assert "dapi-secret-123" not in repr(s)


@pytest.mark.parametrize("raw,want", [
    ("adb-1.azuredatabricks.net", "https://adb-1.azuredatabricks.net"),
    ("https://adb-1.azuredatabricks.net/", "https://adb-1.azuredatabricks.net"),
    ("  http://127.0.0.1:8765/ ", "http://127.0.0.1:8765"),
])
def test_host_with_or_without_scheme(raw, want):
    # regression: the old tool crashed when the host was written with https://
    assert normalize_host(raw) == want
    assert load_settings({**BASE, "DATABRICKS_HOST": raw}).workspace.host == want


def test_every_problem_is_listed_at_once():
    with pytest.raises(ConfigError) as err:
        load_settings({"HOME": "/h", "DATABRICKS_WARN_UPTIME": "lots", "DATABRICKS_MAX_UPTIME": "0",
                       "ADMIN_EMAIL": "not-an-email", "QUOTA_TIMEZONE": "Mars/Olympus",
                       "EMAIL_TRANSPORT": "pigeon", "DATABASE_URL": "mysql://x"})
    text = "\n".join(err.value.problems)
    for name in ("DATABRICKS_HOST", "DATABRICKS_WARN_UPTIME", "DATABRICKS_MAX_UPTIME", "ADMIN_EMAIL",
                 "QUOTA_TIMEZONE", "EMAIL_TRANSPORT", "DATABASE_URL"):
        assert name in text
    assert len(err.value.problems) >= 7


def test_warn_must_be_below_max():
    with pytest.raises(ConfigError, match="must be less than"):
        load_settings({**BASE, "DATABRICKS_WARN_UPTIME": "500"})


def test_profile_alone_is_enough():
    s = load_settings({"HOME": "/h", "DATABRICKS_CONFIG_PROFILE": "course"})
    assert s.workspace.profile == "course" and s.workspace.host is None


def test_dotenv_is_read_and_the_environment_wins(tmp_path, monkeypatch):
    dotenv = tmp_path / ".env"
    dotenv.write_text("DATABRICKS_MAX_UPTIME=300\nDATABRICKS_WARN_UPTIME=200\nADMIN_EMAIL=a@b.edu\n")
    for name in ("DATABRICKS_WARN_UPTIME", "ADMIN_EMAIL"):  # restored after the test
        monkeypatch.setenv(name, "x")
        monkeypatch.delenv(name)
    monkeypatch.setenv("DATABRICKS_MAX_UPTIME", "360")
    env = read_env(dotenv)
    s = load_settings({**env, **BASE})
    assert (s.quota.warn_limit, s.quota.max_limit, s.mail.admin_email) == (200, 360, "a@b.edu")


def test_bad_config_exits_2_with_one_message_and_no_secret(tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DATABRICKS_TOKEN": "dapi-very-secret",
           "DATABRICKS_WARN_UPTIME": "abc", "QUOTA_TIMEZONE": "Nowhere/City"}
    for module in ("databricks.poll_clusters", "databricks.end_of_day_operations"):
        r = subprocess.run([sys.executable, "-m", module], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 2
        assert "Traceback" not in r.stderr and "dapi-very-secret" not in r.stderr + r.stdout
        assert "DATABRICKS_HOST" in r.stderr and "DATABRICKS_WARN_UPTIME" in r.stderr
        assert "QUOTA_TIMEZONE" in r.stderr


def test_a_readable_dotenv_is_flagged(tmp_path, capsys, monkeypatch):
    dotenv = tmp_path / ".env"
    dotenv.write_text("DATABRICKS_MAX_UPTIME=300\n")
    monkeypatch.setenv("DATABRICKS_MAX_UPTIME", "300")
    dotenv.chmod(0o644)
    read_env(dotenv)
    assert "chmod 600" in capsys.readouterr().err
    dotenv.chmod(0o600)
    read_env(dotenv)
    assert capsys.readouterr().err == ""


def test_jobs_refuse_a_real_workspace_with_mail_going_nowhere():
    import pytest as _pytest
    from databricks.teachinglab.cli.config import ConfigError, load_settings
    real = {"DATABRICKS_HOST": "https://adb-1.2.azuredatabricks.net", "DATABRICKS_TOKEN": "t", "HOME": "/tmp"}
    with _pytest.raises(ConfigError) as err:
        load_settings(real, need_mail=True)
    assert any("EMAIL_TRANSPORT is not set" in p for p in err.value.problems)
    assert load_settings({**real, "EMAIL_TRANSPORT": "smtp", "SMTP_HOST": "relay"}, need_mail=True)
    assert load_settings({**real, "DATABRICKS_HOST": "http://127.0.0.1:8765"}, need_mail=True)  # the emulator
    assert load_settings(real)  # an admin command that sends nothing


def test_a_malformed_acs_connection_string_is_a_configuration_error_naming_it():
    import pytest as _pytest
    from databricks.teachinglab.cli.config import ConfigError, load_settings
    with _pytest.raises(ConfigError) as err:
        load_settings({"DATABRICKS_HOST": "h", "DATABRICKS_TOKEN": "t", "HOME": "/tmp", "EMAIL_TRANSPORT": "acs",
                       "EMAIL_SENDER": "lab@uni.edu", "AZURE_EMAIL_CONNECTION_STRING": "accesskey=only-a-key"})
    assert any(p.startswith("AZURE_EMAIL_CONNECTION_STRING must look like") for p in err.value.problems)
    assert not any("only-a-key" in p for p in err.value.problems)  # the secret is never echoed


def test_mail_secrets_never_show_in_settings_repr():
    s = load_settings({**BASE, "EMAIL_TRANSPORT": "smtp", "SMTP_HOST": "relay", "SMTP_PASSWORD": "smtp-pw-777",
                       "AZURE_EMAIL_CONNECTION_STRING": "endpoint=https://x.communication.azure.com/;accesskey=acs-key-999"})
    assert s.mail.smtp_password == "smtp-pw-777" and s.mail.acs_key == "acs-key-999"
    assert "smtp-pw-777" not in repr(s.mail) and "acs-key-999" not in repr(s.mail)


@pytest.mark.parametrize("raw", ["0", "61", "fifteen", "1.5"])
def test_poll_interval_minutes_is_checked(raw):
    with pytest.raises(ConfigError) as err:
        load_settings({**BASE, "POLL_INTERVAL_MINUTES": raw})
    assert any(p.startswith(f"POLL_INTERVAL_MINUTES={raw!r}") for p in err.value.problems)


def test_the_default_cadence_is_one_minute_and_fifteen_is_an_option():
    assert load_settings(BASE).workspace.poll_interval_seconds == 60
    assert load_settings({**BASE, "POLL_INTERVAL_MINUTES": "15"}).workspace.poll_interval_seconds == 900


def test_quota_unit_dbu_reads_its_own_limits():
    s = load_settings({**BASE, "QUOTA_UNIT": "DBU", "DATABRICKS_WARN_DBU": "4.5", "DATABRICKS_MAX_DBU": "6"})
    assert (s.quota.unit.name, s.quota.warn_limit, s.quota.max_limit) == ("dbu", 4.5, 6.0)


@pytest.mark.parametrize("env, expected", [
    ({"QUOTA_UNIT": "hours"}, "QUOTA_UNIT='hours' is not a quota unit"),
    ({"QUOTA_UNIT": "dbu", "DATABRICKS_WARN_DBU": "4"}, "DATABRICKS_MAX_DBU is not set, and QUOTA_UNIT=dbu needs it"),
    ({"QUOTA_UNIT": "usd", "DATABRICKS_WARN_USD": "-1", "DATABRICKS_MAX_USD": "5"}, "DATABRICKS_WARN_USD='-1' must be"),
    ({"QUOTA_UNIT": "usd", "DATABRICKS_WARN_USD": "6", "DATABRICKS_MAX_USD": "5"},
     "DATABRICKS_WARN_USD (6) must be less than DATABRICKS_MAX_USD (5)"),
])
def test_a_bad_quota_unit_or_limit_names_the_variable(env, expected):
    with pytest.raises(ConfigError) as err:
        load_settings({**BASE, **env})
    assert expected in str(err.value)


def test_a_priced_unit_needs_the_labs_node_types_in_the_price_table(tmp_path):
    table = tmp_path / "prices.json"
    table.write_text('{"dbu_price": 0.5, "node_types": {"Standard_DS3_v2": {"dbu_per_hour": 0.75, "vm_per_hour": 0.3}}}')
    env = {**BASE, "QUOTA_UNIT": "dbu", "DATABRICKS_WARN_DBU": "4", "DATABRICKS_MAX_DBU": "6",
           "PRICE_TABLE_FILE": str(table), "CLUSTER_NODE_TYPE": "Standard_E8ds_v5"}
    with pytest.raises(ConfigError) as err:
        load_settings(env)
    assert "node type Standard_E8ds_v5" in str(err.value) and str(table) in str(err.value)
    assert load_settings({**env, "QUOTA_UNIT": "minutes"}).quota.unit.name == "minutes"  # minutes need no price


def test_a_bad_quota_unit_exits_2_from_the_poll(tmp_path):
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), **BASE, "QUOTA_UNIT": "dbu"}
    r = subprocess.run([sys.executable, "-m", "databricks.poll_clusters"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "DATABRICKS_WARN_DBU is not set" in r.stderr and "DATABRICKS_MAX_DBU is not set" in r.stderr
