"""One deadline per run, shared by every API call and retry (the SDK's own 429 retries included),
and never a second create. Time in the storm tests is a fake monotonic clock that the gateway's
sleeps move, so the checks are about what the run did, not about how long a machine took."""
import os
import subprocess
import sys

import pytest

from conftest import ROOT, course, local
from databricks.sandbox import Fault
from databricks.teachinglab.adapters.deadline import Deadline
from databricks.teachinglab.services.poll import run_poll
from databricks.teachinglab.core.errors import DeadlineReached
from databricks.teachinglab.cli.wiring import connect_workspace, open_context
from databricks.teachinglab.adapters.ledger.models import ClusterDay, OutboxMessage

DAY = (2026, 3, 2)


def at(h, m=0):
    return local(*DAY, h, m)


class FakeMonotonic:
    def __init__(self):
        self.t = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds


@pytest.fixture
def env(make_env):
    e = make_env(at(7))
    e.ids = e.seed(course(3, 1))
    return e


def storm_lab(env, seconds=25.0):
    clock = FakeMonotonic()
    deadline = Deadline(seconds, monotonic=clock)
    gateway = connect_workspace(env.settings, deadline=deadline)
    gateway._sleep = clock.sleep
    lab = open_context(env.settings, env.now, gateway=gateway, deadline=deadline)
    return lab, clock


def failures():
    return list(OutboxMessage.select().where(OutboxMessage.kind == "failure"))


def test_a_429_storm_stops_the_poll_at_its_deadline_with_one_alert_and_loses_nothing(env):
    cid = env.ids["cluster_01"]
    env.workspace.session(cid, at(8), at(9))
    env.poll(at(8, 30))  # a normal poll first: the session is open in the ledger
    storm = env.workspace.inject(Fault(method="*", path="/clusters/events", status=429,
                                       error_code="REQUEST_LIMIT_EXCEEDED", retry_after=1, times=None))
    env.at(at(9, 15))
    lab, clock = storm_lab(env)
    report = run_poll(lab, env.now)
    assert report.failures and all(isinstance(o.error.error, DeadlineReached) for o in report.failures)
    assert clock.t - 1000.0 <= 25.0  # every retry, the SDK's included, stayed inside one deadline
    assert sum(1 for s in clock.slept if s >= 1) >= 3  # it did honour Retry-After while time was left
    assert len(failures()) == 1 and "deadline" in failures()[0].text_body
    lab2, _ = storm_lab(env)
    run_poll(lab2, env.now)
    assert len(failures()) == 1  # the same storm the same day: no second alert
    env.workspace.remove_fault(storm)
    env.poll(at(9, 30))
    row = ClusterDay.get((ClusterDay.cluster == cid) & (ClusterDay.day == at(9).astimezone(env.settings.quota.timezone).date()))
    assert row.used_ms == 60 * 60_000  # measured exactly once the storm passed


def test_a_storm_on_the_very_first_poll_still_records_the_clusters_and_alerts_once(env):
    """Regression (found by make bench): on a new ledger the lab's principals are read after the
    events; with the deadline gone by then, that read raised out of the poll, which recorded
    nothing and alerted no one. Now the clusters it cannot classify are this run's failures."""
    from databricks.teachinglab.adapters.ledger.models import Cluster
    env.workspace.session(env.ids["cluster_01"], at(8), None)
    for path in ("/clusters/events", "/scim/"):  # the events and the reads of who the admins are
        env.workspace.inject(Fault(method="*", path=path, status=429, error_code="REQUEST_LIMIT_EXCEEDED",
                                   retry_after=1, times=None))
    env.at(at(8, 30))
    lab, clock = storm_lab(env)
    report = run_poll(lab, env.now)
    assert report.failures and clock.t - 1000.0 <= 25.0
    assert {c.cluster_id for c in Cluster.select()} >= {env.ids["cluster_01"]}
    assert len(failures()) == 1 and "deadline" in failures()[0].text_body


def test_deadline_already_passed_sends_no_request(env):
    lab, clock = storm_lab(env, seconds=1)
    clock.t += 2
    before = len(env.workspace.requests)
    with pytest.raises(DeadlineReached):
        lab.workspace.list_clusters()
    assert len(env.workspace.requests) == before


@pytest.mark.parametrize("status, code", [(429, "REQUEST_LIMIT_EXCEEDED"), (503, "TEMPORARILY_UNAVAILABLE"),
                                          (500, "INTERNAL_ERROR")])
def test_a_create_is_sent_once_and_never_retried(env, status, code):
    env.workspace.inject(Fault(method="POST", path="/clusters/create", status=status, error_code=code,
                               retry_after=1 if status != 500 else None, times=1))
    gateway = env.lab().workspace
    with pytest.raises(Exception) as failed:
        gateway.create_cluster({"cluster_name": "x", "spark_version": "15.4.x-scala2.12",
                                "node_type_id": "Standard_DS3_v2", "autotermination_minutes": 30,
                                "custom_tags": {}, "autoscale": (1, 2)})
    assert not isinstance(failed.value, DeadlineReached)
    creates = [r for r in env.workspace.requests if r.path.endswith("/clusters/create")]
    assert len(creates) == 1 and len(env.workspace.cluster_views(include_deleted=True)) == 3  # nothing half-created


def test_idempotent_reads_are_retried_through_a_short_storm(env):
    env.workspace.inject(Fault(method="GET", path="/clusters/list", status=429,
                               error_code="REQUEST_LIMIT_EXCEEDED", retry_after=1, times=2))
    lab, clock = storm_lab(env)
    assert len(lab.workspace.list_clusters()) == 3
    assert clock.slept[:2] and all(s >= 1 for s in clock.slept[:2])


def test_poll_under_a_permanent_storm_exits_1_without_a_traceback(env):
    env.workspace.inject(Fault(method="*", path=".", status=429, error_code="REQUEST_LIMIT_EXCEEDED",
                               retry_after=1, times=None))
    subenv = {**env.env, "PATH": os.environ["PATH"], "POLL_DEADLINE_SECONDS": "3"}
    r = subprocess.run([sys.executable, "-m", "databricks.poll_clusters"], cwd=ROOT, env=subenv,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "deadline" in r.stderr


def test_a_run_killed_by_the_wrapper_timeout_is_logged_and_the_next_run_alerts_once(env, tmp_path):
    """The wrapper's `timeout` kills a poll stuck on a host that accepts and never answers: the
    wrapper leaves an err-priority line (here on stderr: no journald in the test), and the next
    poll finds the unfinished run in the ledger and alerts the admin, once."""
    import socket
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # accepts connections, never answers
    host = f"http://127.0.0.1:{silent.getsockname()[1]}"
    base = {**env.env, "PATH": os.environ["PATH"], "TEACHINGLAB_PYTHON": sys.executable}
    try:
        killed = subprocess.run(["bash", str(ROOT / "scripts" / "periodic_poll.sh")], cwd=ROOT,
                                env={**base, "DATABRICKS_HOST": host, "POLL_TIMEOUT_SECONDS": "3"},
                                capture_output=True, text=True, timeout=60)
    finally:
        silent.close()
    assert killed.returncode == 124
    assert "databricks.poll_clusters: killed by timeout after 3 s" in killed.stderr  # no journald here: plain, for cron
    for _ in range(2):
        again = subprocess.run(["bash", str(ROOT / "scripts" / "periodic_poll.sh")], cwd=ROOT, env=base,
                               capture_output=True, text=True, timeout=60)
        assert again.returncode == 0, again.stderr
    env.lab()  # the ledger the subprocesses wrote
    alerts = failures()
    assert len(alerts) == 1 and "never finished" in alerts[0].text_body


def test_a_deadline_says_how_much_of_it_has_gone():
    """What a run that waits for a quota subtracts: the time its first pass took."""
    clock = FakeMonotonic()
    deadline = Deadline(25, monotonic=clock)
    clock.sleep(3.5)
    assert (deadline.elapsed(), deadline.remaining()) == (3.5, 21.5)
