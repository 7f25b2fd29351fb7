"""The students' page (--status_page), served by the real CLI process from a ledger the emulated
workspace filled: tokens, refusals, the admin page, then the pages in a real headless Chromium
(Selenium and Debian's chromium-driver), screenshots saved to test-artifacts/."""
import base64
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import course, local
from databricks.teachinglab.core.links import group_token

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
TUE = (2026, 3, 3)
SECRET = "page-secret-for-tests"
PASSWORD = "admin-pass-for-tests"
RTL_GROUP = "צוות_אלפא"
COURSE = "course"   # COURSE_NAME's default: a token is bound to the course and the group
POLICY = """\
[daily]
warn_minutes = 100
max_minutes = 200

[weekly]
max_minutes = 300

[semester]
start = 2026-03-02
end = 2026-07-10
max_minutes = 2000
"""


@pytest.fixture
def served(make_env, tmp_path):
    """group_01 ran 08:00-09:10 and again from 10:00 (still running at 10:30, the page's time);
    group_02 is stopped at its daily cap; a third group has a Hebrew name."""
    (tmp_path / "policy.toml").write_text(POLICY)
    env = make_env(local(*TUE, 7), QUOTA_POLICY_FILE=str(tmp_path / "policy.toml"), STATUS_PAGE_SECRET=SECRET,
                   STATUS_PAGE_PASSWORD=PASSWORD, STATUS_PAGE_URL="https://lab.example.edu/status")
    scenario = course(2, 2)
    scenario["groups"].append({"name": RTL_GROUP, "members": ["student011@students.example.edu"]})
    scenario["clusters"].append({"name": "cluster_he", "group": RTL_GROUP, "tags": {"course": "bigdata"}})
    env.ids = env.seed(scenario)
    env.workspace.session(env.ids["cluster_01"], local(*TUE, 8), local(*TUE, 9, 10))
    env.workspace.session(env.ids["cluster_01"], local(*TUE, 10), None)
    env.workspace.session(env.ids["cluster_02"], local(*TUE, 6), None)
    env.workspace.session(env.ids["cluster_he"], local(*TUE, 9), local(*TUE, 9, 45))
    env.polls(local(*TUE, 7), local(*TUE, 10, 30))
    proc = subprocess.Popen([sys.executable, "-m", "databricks.main", "--status_page", "--port", "0",
                             "--at", local(*TUE, 10, 30).isoformat()], cwd=ROOT, env={**os.environ, **env.env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    assert m, (line, proc.stderr.read() if proc.poll() is not None else "")
    env.base = f"http://127.0.0.1:{m.group(1)}"
    env.proc = proc
    yield env
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    env.server_log = err
    assert SECRET not in err and PASSWORD not in err and group_token(SECRET, COURSE, "group_01") not in err


def get(url, auth=None):
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode("utf-8", "replace"), dict(r.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode("utf-8", "replace"), dict(err.headers)


def test_a_group_page_shows_today_week_semester_sessions_and_the_forecast(served):
    status, page, headers = get(f"{served.base}/g/{group_token(SECRET, COURSE, 'group_01')}")
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert "group_01" in page and "group_02" not in page
    today = re.search(r"<th scope=\"row\">today</th><td>(\d+) minutes</td><td>(\d+) minutes</td><td>(\d+) minutes",
                      page)
    assert today.groups() == ("100", "200", "100")      # 70 + 30 minutes used
    assert "this week" in page and "next Monday (2026-03-09)" in page
    assert "this semester" in page and "never this semester" in page
    assert "<td>08:00</td><td>09:10</td><td>70</td>" in page and "<td>10:00</td><td>running</td><td>30</td>" in page
    assert 'id="forecast"' in page and "12:10" in page   # 100 left at one minute a minute
    assert "example.edu" not in page and SECRET not in page   # no student or staff address, no secret


def test_a_forged_or_old_token_is_404_and_shows_nothing(served):
    good = group_token(SECRET, COURSE, "group_01")
    for token in (good[:-1] + ("A" if good[-1] != "A" else "B"), group_token("an-old-secret", COURSE, "group_01"),
                  "group_01", ""):
        status, page, _ = get(f"{served.base}/g/{token}")
        assert status == 404 and "group_01" not in page and "minutes" not in page


def test_the_stopped_group_page_names_the_cap(served):
    status, page, _ = get(f"{served.base}/g/{group_token(SECRET, COURSE, 'group_02')}")
    assert status == 200 and 'id="stopped"' in page and "<strong>daily</strong>" in page


def test_the_admin_page_needs_the_password_and_shows_the_course(served):
    assert get(f"{served.base}/admin/")[0] == 401
    assert get(f"{served.base}/admin/", auth="admin:wrong")[0] == 401
    status, page, _ = get(f"{served.base}/admin/", auth=f"admin:{PASSWORD}")
    assert status == 200 and all(g in page for g in ("group_01", "group_02", RTL_GROUP))
    status, png, headers = get(f"{served.base}/admin/report.png", auth=f"admin:{PASSWORD}")
    assert status == 200 and headers["Content-Type"] == "image/png"


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("no Chromium here: apt-get install chromium chromium-driver (.ci/run does)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver), options=opts)


def test_in_a_real_browser_the_page_reads_on_a_phone_without_javascript(served):
    from selenium.webdriver.common.by import By
    ARTIFACTS.mkdir(exist_ok=True)
    drv = browser()
    try:
        drv.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
        drv.set_window_size(390, 844)   # a phone
        drv.get(f"{served.base}/g/{group_token(SECRET, COURSE, 'group_01')}")
        assert drv.find_element(By.ID, "group").text == "group_01"
        rows = drv.find_elements(By.CSS_SELECTOR, "#periods tbody tr")
        assert [r.find_element(By.TAG_NAME, "th").text for r in rows] == ["today", "this week", "this semester"]
        width = drv.execute_cdp_cmd("Runtime.evaluate", {"expression": "document.documentElement.scrollWidth"})
        assert width["result"]["value"] <= 390   # nothing wider than the phone
        drv.save_screenshot(str(ARTIFACTS / "status-group_01-phone.png"))

        drv.get(f"{served.base}/g/{group_token(SECRET, COURSE, RTL_GROUP)}")
        name = drv.find_element(By.ID, "group")
        assert name.text == RTL_GROUP and name.tag_name == "bdi"
        drv.save_screenshot(str(ARTIFACTS / "status-rtl-group.png"))
    finally:
        drv.quit()
    assert (ARTIFACTS / "status-group_01-phone.png").stat().st_size > 1000


def test_rotating_the_ledger_secret_invalidates_every_link_and_dry_run_keeps_it(make_env, monkeypatch, capsys):
    from databricks import main as cli
    from databricks.teachinglab.adapters.ledger import repository as ledger
    from databricks.teachinglab.services.status import SECRET_NAME, status_link
    env = make_env(local(*TUE, 7), STATUS_PAGE_URL="https://lab.example.edu/status")
    env.ids = env.seed(course(1, 1))
    for key, value in env.env.items():
        monkeypatch.setenv(key, value)
    env.poll(local(*TUE, 8))
    with ledger.transaction():
        first = status_link(env.settings, "group_01", env.now)
    stored = ledger.secret(SECRET_NAME)
    assert stored and stored not in first and first.startswith("https://lab.example.edu/status/g/")
    assert cli.main(["--rotate_status_secret", "--dry-run"]) == 0
    assert ledger.secret(SECRET_NAME) == stored
    assert cli.main(["--rotate_status_secret"]) == 0
    assert stored not in capsys.readouterr().out
    from databricks.teachinglab.services.status import group_for_token
    assert group_for_token(env.settings, first.rsplit("/", 1)[1], env.now) is None
    assert status_link(env.settings, "group_01", env.now) != first


@pytest.mark.postgresql_only
def test_the_page_outlives_a_database_failover(served, postgres_server):
    """The server cuts every session of the ledger's database (a failover): the next request
    reconnects and is answered, not a 500 until someone restarts the page."""
    import psycopg2
    url = f"{served.base}/g/{group_token(SECRET, COURSE, 'group_01')}"
    assert get(url)[0] == 200
    database = served.env["DATABASE_URL"].rsplit("/", 1)[1]
    postgres_server.terminate_connections(database)
    status, page, _ = get(url)
    assert status == 200 and "group_01" in page
    for _ in range(20):  # a thread per request: each closes its connection, none is left behind
        assert get(url)[0] == 200
    con = psycopg2.connect(served.env["DATABASE_URL"])
    try:
        with con.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = "
                        "'teachinglab'", (database,))
            assert cur.fetchone()[0] <= 2
    finally:
        con.close()


def test_a_slow_or_half_open_client_never_delays_another(served):
    """One student's connection that sends half a request and waits (slowloris, a phone losing
    signal) holds only itself: everyone else's page comes back at once."""
    import socket
    import time
    host, port = served.base.split("//")[1].split(":")
    stalls = []
    for _ in range(5):
        s = socket.create_connection((host, int(port)))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")   # and never the blank line
        stalls.append(s)
    started = time.monotonic()
    status, page, _ = get(f"{served.base}/g/{group_token(SECRET, COURSE, 'group_01')}")
    waited = time.monotonic() - started
    for s in stalls:
        s.close()
    assert status == 200 and "group_01" in page and waited < 5


def test_tokens_never_reach_the_log_in_any_encoding_and_a_huge_request_line_is_414(served):
    from urllib.parse import quote
    token = group_token(SECRET, COURSE, "group_02")
    for path in (f"/%67/{token}", f"/g/{''.join('%%%02X' % ord(c) for c in token)}", f"//g/{token}",
                 f"/g/{token}/extra", f"/x?next=/g/{token}"):
        assert get(f"{served.base}{path}")[0] in (200, 404)
    assert get(f"{served.base}/g/{token}?" + "a" * 70_000)[0] == 414
    assert get(f"{served.base}/healthz")[0] == 200             # the server goes on
    served.proc.terminate()
    _, err = served.proc.communicate(timeout=10)
    assert token not in err and quote(token) not in err and "%67" not in err and "aaaa" not in err
    assert "/g/…" in err
    served.proc = subprocess.Popen(["true"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_token_of_another_course_opens_nothing(served):
    """Courses may share STATUS_PAGE_SECRET: a link is bound to its course as well as its group."""
    assert get(f"{served.base}/g/{group_token(SECRET, 'ml', 'group_01')}")[0] == 404
    assert get(f"{served.base}/g/{group_token(SECRET, COURSE, 'group_01')}")[0] == 200
