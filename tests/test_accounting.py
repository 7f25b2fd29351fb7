"""The pure accounting core: events -> intervals -> seconds per local day."""
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from databricks.teachinglab.core import accounting as acc
from databricks.teachinglab.core.accounting import Interval, Tracker
from databricks.teachinglab.core.model import ClusterEvent, ClusterInfo
from databricks.teachinglab.core.quota import Action, DayFlags, Limits, decide

TZ = ZoneInfo("Asia/Jerusalem")


def L(y, m, d, hh=0, mm=0, ss=0):
    return datetime(y, m, d, hh, mm, ss, tzinfo=TZ).astimezone(timezone.utc)


def ev(at, kind):
    return ClusterEvent(at, kind)


def cluster(state="TERMINATED", **kw):
    return ClusterInfo("c1", "cluster_01", state, **kw)


def test_midnight_split_to_the_second():
    parts = acc.split_by_day(Interval(L(2026, 3, 2, 23, 10, 7), L(2026, 3, 3, 1, 2, 3)), TZ)
    assert parts == {date(2026, 3, 2): (49 * 60 + 53) * 1000, date(2026, 3, 3): (62 * 60 + 3) * 1000}


@pytest.mark.parametrize("day,hours", [(date(2026, 3, 27), 23), (date(2026, 10, 25), 25),
                                       (date(2026, 3, 26), 24)])
def test_dst_days_in_jerusalem_have_23_or_25_hours(day, hours):
    lo, hi = acc.day_bounds(day, TZ)
    assert hi - lo == timedelta(hours=hours)
    # a cluster running the whole local day is charged exactly that day's length
    whole = Interval(lo - timedelta(hours=1), hi + timedelta(hours=1))
    assert acc.split_by_day(whole, TZ)[day] == hours * 3600 * 1000


def test_session_across_the_spring_forward_gap_counts_real_time():
    # 01:30 -> 03:30 local on 2026-03-27 is one real hour: 02:00 became 03:00
    start = datetime(2026, 3, 27, 1, 30, tzinfo=TZ)
    end = datetime(2026, 3, 27, 3, 30, tzinfo=TZ)
    assert acc.split_by_day(Interval(start, end), TZ) == {date(2026, 3, 27): 3600 * 1000}


def test_session_across_the_autumn_fold_counts_both_hours():
    start = datetime(2026, 10, 25, 0, 30, tzinfo=TZ)
    end = datetime(2026, 10, 25, 2, 30, tzinfo=TZ)  # 01:00-02:00 happens twice
    assert acc.split_by_day(Interval(start, end), TZ) == {date(2026, 10, 25): 3 * 3600 * 1000}


def test_restart_and_resize_inside_a_session_do_not_split_it():
    t = L(2026, 3, 2, 8)
    events = [ev(t, "STARTING"), ev(t + timedelta(minutes=2), "RUNNING"),
              ev(t + timedelta(minutes=30), "RESTARTING"), ev(t + timedelta(minutes=31), "RUNNING"),
              ev(t + timedelta(minutes=40), "RESIZING"), ev(t + timedelta(minutes=41), "UPSIZE_COMPLETED"),
              ev(t + timedelta(minutes=62), "TERMINATING")]
    out = acc.apply_events(Tracker(checked_until=t), events, cluster(), t + timedelta(hours=2), t)
    assert [i.ms for i in out.closed] == [60 * 60 * 1000]
    assert out.tracker.open_since is None


def test_replaying_the_same_events_counts_nothing_twice():
    t = L(2026, 3, 2, 8)
    events = [ev(t, "RUNNING"), ev(t + timedelta(minutes=5), "TERMINATING")]
    first = acc.apply_events(Tracker(checked_until=t - timedelta(minutes=1)), events, cluster(),
                             t + timedelta(minutes=15), t)
    again = acc.apply_events(first.tracker, events, cluster(), t + timedelta(minutes=15), t)
    assert [i.ms for i in first.closed] == [5 * 60 * 1000]
    assert again.closed == ()
    assert again.tracker == first.tracker


def test_events_at_the_same_millisecond_are_all_applied():
    t = L(2026, 3, 2, 8)
    out = acc.apply_events(Tracker(checked_until=t - timedelta(1)), [ev(t, "STARTING"), ev(t, "RUNNING")],
                           cluster("RUNNING"), t + timedelta(minutes=10), t)
    assert out.tracker.open_since == t


def test_first_look_at_a_cluster_running_since_before_midnight_starts_at_midnight():
    now = L(2026, 3, 2, 1, 30)
    window = acc.day_start(date(2026, 3, 2), TZ)
    out = acc.apply_events(None, [], cluster("RUNNING"), now, window)
    assert out.tracker.open_since == window
    assert acc.used_ms_on(date(2026, 3, 2), TZ, 0, out.tracker.open_since, now) == 90 * 60 * 1000


def test_first_look_closing_event_without_opening_counts_from_window_start():
    window = acc.day_start(date(2026, 3, 2), TZ)
    out = acc.apply_events(None, [ev(window + timedelta(minutes=20), "TERMINATING")], cluster(),
                           window + timedelta(hours=1), window)
    assert [i.ms for i in out.closed] == [20 * 60 * 1000]


@pytest.mark.parametrize("before", ["CREATING", "STARTING", "RESTARTING"])
def test_first_look_closing_after_a_not_yet_usable_event_costs_nothing(before):
    """A cluster created (or started) and stopped before its first poll never ran: it must not be
    charged from the window start (regression: 841 minutes booked at 14:00 on day one)."""
    window = acc.day_start(date(2026, 3, 2), TZ)
    t0 = window + timedelta(hours=14)
    events = [ev(t0, before), ev(t0 + timedelta(seconds=40), "TERMINATING")]
    out = acc.apply_events(None, events, cluster(), t0 + timedelta(minutes=15), window)
    assert out.closed == () and out.tracker.open_since is None


def test_first_look_failed_start_then_a_real_session_counts_only_the_session():
    window = acc.day_start(date(2026, 3, 2), TZ)
    t0 = window + timedelta(hours=9)
    events = [ev(t0, "STARTING"), ev(t0 + timedelta(minutes=3), "TERMINATING"),
              ev(t0 + timedelta(minutes=10), "STARTING"), ev(t0 + timedelta(minutes=12), "RUNNING"),
              ev(t0 + timedelta(minutes=42), "TERMINATING")]
    out = acc.apply_events(None, events, cluster(), t0 + timedelta(hours=1), window)
    assert [i.ms for i in out.closed] == [30 * 60 * 1000]


def test_open_interval_usage_is_clipped_to_the_day():
    now = L(2026, 3, 3, 0, 30)
    open_since = L(2026, 3, 2, 23, 0)
    assert acc.used_ms_on(date(2026, 3, 3), TZ, 0, open_since, now) == 30 * 60 * 1000
    assert acc.used_ms_on(date(2026, 3, 2), TZ, 0, open_since, now) == 60 * 60 * 1000


def test_estimate_from_state_when_events_are_unavailable():
    now = L(2026, 3, 2, 12)
    started = L(2026, 3, 2, 10)
    out = acc.estimate_activity(Tracker(checked_until=L(2026, 3, 2, 9)),
                                cluster("RUNNING", start_time=L(2026, 2, 1), last_restarted_time=started), now)
    assert out.estimated and out.tracker.open_since == started and out.tracker.watermark == now
    closed = acc.estimate_activity(out.tracker, cluster("TERMINATED", terminated_time=L(2026, 3, 2, 13)),
                                   L(2026, 3, 2, 14))
    assert [i.ms for i in closed.closed] == [3 * 3600 * 1000]


def test_events_older_than_30_days_are_not_trusted():
    now = L(2026, 3, 31)
    assert acc.events_expired(Tracker(checked_until=now - timedelta(days=30)), now)
    assert not acc.events_expired(Tracker(checked_until=now - timedelta(days=29)), now)


def test_idle_terminated_clusters_are_not_asked_for_events():
    checked = L(2026, 3, 2, 10)
    idle = cluster("TERMINATED", terminated_time=L(2026, 3, 2, 9))
    assert not acc.may_have_run(idle, Tracker(checked_until=checked))
    ran_since = cluster("TERMINATED", terminated_time=L(2026, 3, 2, 10, 5))
    assert acc.may_have_run(ran_since, Tracker(checked_until=checked))
    assert acc.may_have_run(cluster("RUNNING"), Tracker(checked_until=checked))
    assert acc.may_have_run(idle, None)
    assert not acc.may_have_run(cluster("TERMINATED"), Tracker(checked_until=checked))  # never ran


LIMITS = Limits.from_minutes(400, 480)


def _decide(used_min, state="RUNNING", **flags):
    return decide(used=int(used_min * 60_000), limits=LIMITS, state=state, flags=DayFlags(**flags),
                  group="group_01", exempt=False).actions


def test_usage_exactly_at_the_limit_terminates_and_one_ms_less_does_not():
    assert _decide(480) == (Action.TERMINATE, Action.BLOCK, Action.NOTIFY)
    assert decide(used=480 * 60_000 - 1, limits=LIMITS, state="RUNNING", flags=DayFlags(),
                  group="g", exempt=False).actions == (Action.WARN,)
    assert _decide(400) == (Action.WARN,)
    assert _decide(399.99) == ()


def test_no_warning_once_over_the_hard_quota_or_after_termination():
    assert Action.WARN not in _decide(500)
    assert _decide(450, state="TERMINATED", notified=True) == ()


def test_blocked_cluster_running_again_is_terminated_and_admin_told_once():
    assert _decide(500, terminated=True, blocked=True, notified=True) == (
        Action.TERMINATE, Action.NOTIFY_RETERMINATION)
    assert _decide(500, terminated=True, blocked=True, notified=True, retermination_notified=True) == (
        Action.TERMINATE,)


def test_exempt_and_unmapped_clusters_are_left_alone():
    assert decide(used=10**9, limits=LIMITS, state="RUNNING", flags=DayFlags(), group="g",
                  exempt=True).actions == ()
    assert decide(used=10**9, limits=LIMITS, state="RUNNING", flags=DayFlags(), group=None,
                  exempt=False).actions == ()


def test_a_grant_that_lifts_the_limit_restores():
    lifted = Limits.from_minutes(400, 480, granted=60)
    assert decide(used=490 * 60_000, limits=lifted, state="TERMINATED",
                  flags=DayFlags(blocked=True, notified=True, terminated=True), group="g",
                  exempt=False).actions == (Action.RESTORE,)


def test_events_window_after_a_look_that_saw_no_events_starts_at_that_look():
    # regression: it restarted at today's midnight, losing yesterday-evening sessions
    looked = L(2026, 3, 2, 22, 45)
    assert acc.events_window_start(Tracker(checked_until=looked), L(2026, 3, 3, 3), TZ) == looked - acc.EVENT_LAG
    applied = L(2026, 3, 2, 23)
    assert acc.events_window_start(Tracker(watermark=applied, checked_until=looked), L(2026, 3, 3, 3), TZ) \
        == applied + timedelta(milliseconds=1)
    assert acc.events_window_start(None, L(2026, 3, 3, 3), TZ) == acc.day_start(date(2026, 3, 3), TZ)


# -- node-time ---------------------------------------------------------------------------------
def wev(at, kind, workers):
    return ClusterEvent(at, kind, workers)


def node_ms(activity, tz=TZ):
    return acc.node_ms_by_day(activity.segments, tz)


def test_node_time_follows_an_upsize_and_lost_nodes_to_the_millisecond():
    """RUNNING with 2 workers, upsized to 4 at 10:00:00.250, a node lost at 11:00, stopped at
    12:00: 3 nodes for 1 h 250 ms, 5 for 1 h less 250 ms, 4 for 1 h, to the millisecond."""
    events = [wev(L(2026, 3, 2, 9), "RUNNING", 2), wev(L(2026, 3, 2, 10, 0, 0) + timedelta(milliseconds=250),
                                                      "UPSIZE_COMPLETED", 4),
              wev(L(2026, 3, 2, 11), "NODES_LOST", 3), ev(L(2026, 3, 2, 12), "TERMINATING")]
    a = acc.apply_events(Tracker(checked_until=L(2026, 3, 2, 8)), events, cluster(num_workers=4),
                         L(2026, 3, 2, 13), L(2026, 3, 2, 8))
    hour = 3_600_000
    assert [i.ms for i in a.closed] == [3 * hour]  # one session: resizes do not split usage
    assert node_ms(a) == {date(2026, 3, 2): 3 * (hour + 250) + 5 * (hour - 250) + 4 * hour}
    assert a.tracker.open_since is None and a.tracker.workers is None


def test_a_restart_keeps_the_node_count_and_a_same_count_event_does_not_cut():
    events = [wev(L(2026, 3, 2, 9), "RUNNING", 2), ev(L(2026, 3, 2, 10), "RESTARTING"),
              wev(L(2026, 3, 2, 10, 1), "RUNNING", 2), ev(L(2026, 3, 2, 11), "TERMINATING")]
    a = acc.apply_events(Tracker(checked_until=L(2026, 3, 2, 8)), events, cluster(num_workers=2),
                         L(2026, 3, 2, 12), L(2026, 3, 2, 8))
    assert [(g.nodes, g.start, g.end) for g in a.segments] == [(3, L(2026, 3, 2, 9), L(2026, 3, 2, 11))]


def test_open_node_time_is_split_at_midnight_and_carried_across_polls():
    """Upsized at 23:30 and still running at 00:30: the poll books 23:00-23:30 at 2 nodes as
    closed; the open segment (4 nodes from 23:30) counts 30 min on each day."""
    first = acc.apply_events(Tracker(checked_until=L(2026, 3, 2, 22)),
                             [wev(L(2026, 3, 2, 23), "RUNNING", 1), wev(L(2026, 3, 2, 23, 30), "UPSIZE_COMPLETED", 3)],
                             cluster("RUNNING", num_workers=3), L(2026, 3, 3, 0, 30), L(2026, 3, 2, 22))
    assert node_ms(first) == {date(2026, 3, 2): 2 * 30 * 60_000}
    t = first.tracker
    assert (t.open_since, t.segment_since, t.nodes) == (L(2026, 3, 2, 23), L(2026, 3, 2, 23, 30), 4)
    now = L(2026, 3, 3, 0, 30)
    assert acc.used_node_ms_on(date(2026, 3, 2), TZ, 2 * 30 * 60_000, t, now) == (2 + 4) * 30 * 60_000
    assert acc.used_node_ms_on(date(2026, 3, 3), TZ, 0, t, now) == 4 * 30 * 60_000
    clipped = acc.clip_open_interval(t, L(2026, 3, 3))  # the nightly close archived the 2nd
    assert (clipped.open_since, clipped.segment_since) == (L(2026, 3, 3), L(2026, 3, 3))


def test_node_time_on_the_23_hour_dst_day():
    """Running all of 27 March 2026 (spring forward in Jerusalem) with 1 worker: 2 nodes x 23 h."""
    lo, hi = acc.day_bounds(date(2026, 3, 27), TZ)
    a = acc.apply_events(Tracker(checked_until=lo - timedelta(hours=2)),
                         [wev(lo - timedelta(hours=1), "RUNNING", 1), ev(hi + timedelta(hours=1), "TERMINATING")],
                         cluster(num_workers=1), hi + timedelta(hours=2), lo - timedelta(hours=2))
    assert node_ms(a)[date(2026, 3, 27)] == 2 * 23 * 3_600_000


def test_a_first_look_at_a_cluster_resized_since_before_the_window_counts_from_the_window():
    """Running since yesterday, resized today: it is usable from midnight (it used to be missed),
    at the autoscale maximum until the event tells the count."""
    midnight = L(2026, 3, 2)
    a = acc.apply_events(None, [wev(L(2026, 3, 2, 9), "UPSIZE_COMPLETED", 2)], cluster("RUNNING", num_workers=8),
                         L(2026, 3, 2, 10), midnight)
    assert a.tracker.open_since == midnight and a.tracker.workers == 2
    assert [(g.nodes, g.start, g.end) for g in a.segments] == [(9, midnight, L(2026, 3, 2, 9))]


def test_start_up_vm_time_is_kept_apart_from_usage():
    """STARTING at 08:00, RUNNING at 08:03 with 2 workers, stopped at 09:00: 57 minutes of usage,
    and 3 minutes of start-up at 3 nodes, which only the cost counts. A start that fails before
    RUNNING is start-up time too (at the autoscale maximum), and no usage."""
    events = [ev(L(2026, 3, 2, 8), "STARTING"), wev(L(2026, 3, 2, 8, 3), "RUNNING", 2),
              ev(L(2026, 3, 2, 9), "TERMINATING"), ev(L(2026, 3, 2, 10), "STARTING"),
              ev(L(2026, 3, 2, 10, 2), "TERMINATING")]
    a = acc.apply_events(Tracker(checked_until=L(2026, 3, 2, 7)), events, cluster(num_workers=4),
                         L(2026, 3, 2, 11), L(2026, 3, 2, 7))
    assert [i.ms for i in a.closed] == [57 * 60_000]
    assert [(g.nodes, g.start, g.end) for g in a.startup] == [(3, L(2026, 3, 2, 8), L(2026, 3, 2, 8, 3)),
                                                            (5, L(2026, 3, 2, 10), L(2026, 3, 2, 10, 2))]
    assert acc.startup_by_day(a.startup, TZ) == {date(2026, 3, 2): (5 * 60_000, (9 + 10) * 60_000)}


def test_a_start_seen_before_running_is_carried_to_the_next_poll():
    first = acc.apply_events(Tracker(checked_until=L(2026, 3, 2, 7)), [ev(L(2026, 3, 2, 8), "STARTING")],
                             cluster("PENDING", num_workers=1), L(2026, 3, 2, 8, 1), L(2026, 3, 2, 7))
    assert first.tracker.starting_since == L(2026, 3, 2, 8) and not first.startup
    second = acc.apply_events(first.tracker, [ev(L(2026, 3, 2, 8), "STARTING"), wev(L(2026, 3, 2, 8, 4), "RUNNING", 1)],
                              cluster("RUNNING", num_workers=1), L(2026, 3, 2, 8, 5), L(2026, 3, 2, 8))
    assert [(g.nodes, g.start, g.end) for g in second.startup] == [(2, L(2026, 3, 2, 8), L(2026, 3, 2, 8, 4))]
    assert second.tracker.starting_since is None


def test_a_downsize_lowers_the_count_when_it_starts_and_an_upsize_only_when_the_nodes_are_there():
    """The real API reports a shrinking RESIZING with the old size as current_num_workers and the
    new one as target_num_workers, and no completion event (only DECOMMISSION_*, which may say
    nothing); growth completes with UPSIZE_COMPLETED. 1 -> 4 -> 1 -> 3 workers, to the millisecond."""
    day = (2026, 3, 2)
    events = [wev(L(*day, 9), "RUNNING", 1),
              ClusterEvent(L(*day, 10), "RESIZING", 1, 4), wev(L(*day, 10, 0, 30), "UPSIZE_COMPLETED", 4),
              ClusterEvent(L(*day, 11), "RESIZING", 4, 1), ClusterEvent(L(*day, 11), "DECOMMISSION_STARTED"),
              ClusterEvent(L(*day, 11, 0, 30), "DECOMMISSION_ENDED"),
              ClusterEvent(L(*day, 12), "RESIZING", 1, 3), wev(L(*day, 12, 0, 30), "UPSIZE_COMPLETED", 3),
              ev(L(*day, 13), "TERMINATING")]
    a = acc.apply_events(Tracker(checked_until=L(*day, 8)), events, cluster(num_workers=4), L(*day, 14), L(*day, 8))
    s = 1000
    assert node_ms(a) == {date(*day): (3630 * 2 + 3570 * 5 + 3630 * 2 + 3570 * 4) * s}


def test_lost_nodes_and_failed_growth_keep_the_count_honest():
    day = (2026, 3, 2)
    events = [wev(L(*day, 9), "RUNNING", 4), wev(L(*day, 10), "NODES_LOST", 2),
              ClusterEvent(L(*day, 10, 30), "RESIZING", 2, 4), wev(L(*day, 10, 35), "ADD_NODES_FAILED", 3),
              wev(L(*day, 11), "AUTOSCALING_FAILED", 3), ev(L(*day, 12), "TERMINATING")]
    a = acc.apply_events(Tracker(checked_until=L(*day, 8)), events, cluster(num_workers=4), L(*day, 13), L(*day, 8))
    minute = 60_000
    assert node_ms(a) == {date(*day): 5 * 60 * minute + 3 * 35 * minute + 4 * 85 * minute}


def test_the_clusters_list_corrects_a_count_no_event_reported():
    """A RUNNING cluster whose executors number other than the events left: the count follows
    the list from the poll's `now`, once (a replay at the same `now` changes nothing)."""
    day = (2026, 3, 2)
    a = acc.apply_events(Tracker(checked_until=L(*day, 8)), [wev(L(*day, 9), "RUNNING", 4)],
                         cluster("RUNNING", num_workers=4), L(*day, 10), L(*day, 8))
    listed = ClusterInfo("c1", "c1", "RUNNING", num_workers=4, executors=1)
    fixed = acc.workers_from_list(a, listed, L(*day, 10))
    assert [(g.nodes, g.start, g.end) for g in fixed.segments] == [(5, L(*day, 9), L(*day, 10))]
    assert (fixed.tracker.workers, fixed.tracker.segment_since) == (1, L(*day, 10))
    assert acc.workers_from_list(fixed, listed, L(*day, 10)) == fixed
