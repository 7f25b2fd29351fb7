"""Issue 23, parts 3 and 4: TEACHINGLAB_ENV (dev and prod, named in every log line, mail and
report outside prod) and --end_semester (report, export, handoff, teardown, what still costs
money), through the real CLI against the emulated workspace."""
from __future__ import annotations

import io
import json
import os

import pytest
from freezegun import freeze_time

from conftest import ADMIN, local, roster_env
from databricks import end_of_day_operations, main as cli

DANA = "dana@uni.example.edu"


class Tty(io.StringIO):
    def isatty(self):
        return True


def run(*argv):
    return cli.main(list(argv))


def mails(env) -> list:
    """The delivered messages (EMAIL_TRANSPORT=file), parsed."""
    from email import policy
    from email.parser import BytesParser
    return [BytesParser(policy=policy.default).parsebytes(p.read_bytes())
            for p in sorted((env.tmp / "mail").glob("*.eml"))]


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


# -- TEACHINGLAB_ENV ---------------------------------------------------------------------------
@pytest.fixture
def dotenv_folder(tmp_path, monkeypatch):
    """The repository's .env files, in a folder of the test's own."""
    from databricks.teachinglab.cli import config
    folder = tmp_path / "repo"
    folder.mkdir()
    monkeypatch.setattr(config, "DOTENV", folder / ".env")
    saved = dict(os.environ)   # reading a dotenv file exports its values (load_dotenv): none may leak on
    yield folder
    os.environ.clear()
    os.environ.update(saved)


def test_teachinglab_env_picks_its_env_file_before_env_and_the_environment_wins(dotenv_folder):
    from databricks.teachinglab.cli.config import read_dotenvs
    (dotenv_folder / ".env").write_text("COURSE_NAME=bigdata\nQUOTA_TIMEZONE=Asia/Jerusalem\n")
    (dotenv_folder / ".env.dev").write_text("COURSE_NAME=bigdata-dev\n")
    for key in ("COURSE_NAME", "QUOTA_TIMEZONE", "TEACHINGLAB_ENV"):
        os.environ.pop(key, None)          # the fixture puts the environment back as it was
    values, where = read_dotenvs({"TEACHINGLAB_ENV": "dev"})
    assert values["COURSE_NAME"] == "bigdata-dev" and values["QUOTA_TIMEZONE"] == "Asia/Jerusalem"
    assert where.endswith(".env.dev or " + str(dotenv_folder / ".env"))
    values, _ = read_dotenvs({})
    assert values["COURSE_NAME"] == "bigdata"                       # no TEACHINGLAB_ENV: .env alone
    (dotenv_folder / ".env").write_text("TEACHINGLAB_ENV=dev\nCOURSE_NAME=bigdata\n")
    os.environ.pop("COURSE_NAME", None)
    values, _ = read_dotenvs({})
    assert values["COURSE_NAME"] == "bigdata-dev"                   # named in .env itself
    from databricks.teachinglab.cli.runtime import courses_or_exit
    os.environ["COURSE_NAME"] = "from-the-environment"
    [course] = courses_or_exit(None, need_workspace=False)
    assert course.settings.cluster.course == "from-the-environment" and course.settings.environment == "dev"


@pytest.fixture
def dev(make_env, monkeypatch, tmp_path, dotenv_folder):
    e = make_env(local(2026, 3, 2, 7), COURSE_NAME="bigdata-dev")
    for key, value in e.env.items():
        monkeypatch.setenv(key, value)
    (dotenv_folder / ".env.dev").write_text("TEACHINGLAB_ENV=dev\n")
    (dotenv_folder / ".env.dev").chmod(0o600)
    monkeypatch.setenv("TEACHINGLAB_ENV", "dev")
    return e


def test_dev_names_itself_in_log_lines_mail_subjects_and_the_report(dev, capsys, monkeypatch):
    from conftest import course
    dev.seed(course(1, 2))
    monkeypatch.setenv("LOG_JOURNALD", "0")
    assert run("--test_email") == 0
    subjects = [m["Subject"].strip() for m in mails(dev)]
    assert subjects and all(s.startswith("[dev] ") for s in subjects)
    err = capsys.readouterr().err
    assert "[dev] " in err
    dev.poll(local(2026, 3, 2, 10))
    dev.at(local(2026, 3, 3, 0, 7))
    with freeze_time(local(2026, 3, 3, 0, 7), tick=True):
        assert end_of_day_operations.main([]) == 0
    report = next(m for m in mails(dev) if "Cluster usage" in m["Subject"])
    assert report["Subject"].strip().startswith("[dev] [teaching lab] Cluster usage on 2026-03-02")
    assert text_of(report).startswith("ENVIRONMENT: dev, not the production course.")


def test_prod_adds_nothing_and_an_unknown_environment_is_a_config_error(dev, capsys, monkeypatch):
    monkeypatch.setenv("TEACHINGLAB_ENV", "prod")
    assert run("--test_email") == 0
    subject = mails(dev)[0]["Subject"]
    assert not subject.startswith("[dev]") and "[prod]" not in subject
    monkeypatch.setenv("TEACHINGLAB_ENV", "staging")
    with pytest.raises(SystemExit) as stop:
        run("--test_email")
    assert stop.value.code == 2 and "TEACHINGLAB_ENV='staging' must be dev or prod" in capsys.readouterr().err


# -- --end_semester ----------------------------------------------------------------------------
@pytest.fixture
def semester(make_env, monkeypatch, tmp_path):
    """A provisioned course with a closed day, a student's notebook, a warehouse, another course's
    cluster and student in the same workspace, and a course catalog."""
    e = roster_env(make_env, monkeypatch, tmp_path, local(2026, 3, 1, 9), COURSE_NAME="bigdata",
                   CLUSTER_ACCESS_MODE="standard", UC_CATALOG="bigdata_2026")
    monkeypatch.setenv("DATABRICKS_ACCOUNT_ID", e.workspace.account_id)
    monkeypatch.setenv("DATABRICKS_ACCOUNT_HOST", e.server.url)
    monkeypatch.setenv("DATABRICKS_ACCOUNT_TOKEN", "sandbox-token")
    monkeypatch.setenv("UC_CATALOG", "bigdata_2026")
    monkeypatch.chdir(tmp_path)
    assert run("--create_from_csv", str(e.users_csv)) == 0
    ws = e.workspace
    ws.write_notebook(f"/Users/{DANA}/project/etl", b"print('my work')\n")
    ws.uc_add_table("bigdata_2026.g1043", "results")
    ws.add_user("physics@uni.example.edu")
    ws.add_cluster("physics-g1", tags={"course": "physics", "group": "Physics"})
    ws.warehouses.add("wh-reports", state="STOPPED")
    e.poll(local(2026, 3, 1, 10))
    e.at(local(2026, 3, 2, 0, 7))
    with freeze_time(local(2026, 3, 2, 0, 7), tick=True):
        assert end_of_day_operations.main([]) == 0
    e.out = tmp_path / "end"
    return e


def test_end_semester_runs_every_step_in_order_and_a_second_run_is_safe(semester, capsys):
    ws = semester.workspace
    out = semester.out
    capsys.readouterr()
    assert run("--end_semester", "--out", str(out), "--yes") == 0
    text = capsys.readouterr().out
    steps = [text.index(f"[{s}]") for s in ("report", "export", "handoff", "teardown", "costs")]
    assert steps == sorted(steps)
    assert (out / "report" / "report.html").exists() and "2026-03-01" in text, text
    manifest = json.loads((out / "notebooks" / "manifest.json").read_text())
    assert f"/Users/{DANA}/project/etl" in {f["path"] for f in manifest["files"]}
    # The course is gone; the other course, the lab principal and the data stay.
    assert not [c for c in ws.cluster_views() if c.spec["custom_tags"].get("course") == "bigdata"]
    assert [c.name for c in ws.cluster_views()] == ["physics-g1"]
    assert not ws.has_user(DANA) and ws.has_user("physics@uni.example.edu") and ws.has_user(ADMIN)
    assert "Team Rocket" not in ws.group_names() and "bigdata-students" not in ws.group_names()
    assert len(ws.uc_schemas("bigdata_2026")) == 5                     # no --drop_data: kept
    costs = json.loads((out / "still-costs-money.json").read_text())
    whats = [c["what"] for c in costs]
    assert "cluster physics-g1 (TERMINATED)" in whats and "SQL warehouse wh-reports (STOPPED)" in whats
    assert any(w.startswith("Unity Catalog catalog bigdata_2026") for w in whats)
    assert any("Azure Databricks workspace" in w for w in whats) and any("this VM" in w for w in whats)
    assert any("managed storage" in w for w in whats)
    record = json.loads((out / "handoff.json").read_text())
    assert [e["event"] for e in record["events"]][-1] == "end of semester"
    capsys.readouterr()
    assert run("--end_semester", "--out", str(out), "--yes") == 0   # again: nothing left, nothing fails
    again = capsys.readouterr().out
    assert "clusters: 0 deleted" in again and "students: 0 deleted" in again and "[export] export 0," in again


def test_the_teardown_waits_for_an_export_and_drop_data_needs_the_typed_catalog_name(semester, capsys, monkeypatch):
    ws = semester.workspace
    out = semester.out
    assert run("--end_semester", "--out", str(out), "--yes", "--skip", "export") == 1
    assert "[teardown] not run: the notebooks are not exported yet" in capsys.readouterr().err
    assert ws.has_user(DANA)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert run("--end_semester", "--out", str(out), "--yes", "--drop_data", "--skip", "report,handoff,costs") == 2
    assert "--drop_data needs its typed confirmation" in capsys.readouterr().err
    assert len(ws.uc_schemas("bigdata_2026")) == 5
    monkeypatch.setattr("sys.stdin", Tty("bigdata\n"))                  # not the catalog's name
    assert run("--end_semester", "--out", str(out), "--yes", "--drop_data", "--skip", "report,handoff,costs") == 2
    assert "the catalog name did not match; nothing dropped" in capsys.readouterr().err
    assert len(ws.uc_schemas("bigdata_2026")) == 5 and ws.has_user(DANA)
    ws.uc_add_catalog("bigdata_2026_other", owner=ADMIN)
    ws.catalog.create_schema({"catalog_name": "bigdata_2026", "name": "staff_notes"}, ADMIN, 0)  # not the course's
    monkeypatch.setattr("sys.stdin", Tty("bigdata_2026\n"))
    assert run("--end_semester", "--out", str(out), "--yes", "--drop_data", "--skip", "report,handoff") == 0
    text = capsys.readouterr().out
    assert "schemas: 5 deleted, 1 kept" in text and "kept   bigdata_2026.staff_notes: not made by the lab" in text
    assert list(ws.uc_schemas("bigdata_2026")) == ["bigdata_2026.staff_notes"]
    assert not ws.has_user(DANA)


def test_end_semester_dry_run_and_a_bad_step_name(semester, capsys):
    ws = semester.workspace
    out = semester.out
    users, clusters = ws.user_names(), len(ws.cluster_views())
    assert run("--end_semester", "--out", str(out), "--dry-run") == 0
    text = capsys.readouterr().out
    assert "would write the report of 2026-03-01" in text and "would export 1," in text
    assert f"would delete {DANA}" in text and "would delete bigdata-g1043" in text
    assert not out.exists() and ws.user_names() == users and len(ws.cluster_views()) == clusters
    assert run("--end_semester", "--skip", "export,reprot") == 2
    assert "--skip reprot: not a step" in capsys.readouterr().err


def test_deploy_notebooks_dry_run_changes_nothing(semester, capsys, monkeypatch, tmp_path):
    folder = tmp_path / "course"
    folder.mkdir()
    (folder / "intro.py").write_text("print(1)\n")
    monkeypatch.setenv("COURSE_NOTEBOOKS_DIR", str(folder))
    writes = len([r for r in semester.workspace.requests if r.method != "GET"])
    assert run("--deploy_notebooks", str(semester.users_csv), "--dry-run") == 0
    assert "would deploy_notebook /Workspace/Groups/Solo/course-notebooks/intro" in capsys.readouterr().out
    assert len([r for r in semester.workspace.requests if r.method != "GET"]) == writes
