"""Each metric of DESIGN.md from a hand-made event history with known answers."""

from __future__ import annotations

import pytest

from routing.events import Event, EventType
from routing.metrics import Counts, compute
from routing.occupancy import OccupancyTracker
from web.coordination.history import Thresholds, contact_counts, contact_fields
from web.coordination.models import Contact

T0 = 1_795_420_800_000  # 2026-11-23 09:00 Paris, in ms
_seq = iter(range(1, 1_000_000))


def ev(kind: EventType, at_s: float, task: str = "", vol: str = "", **data: object) -> Event:
    """An event as the stream would carry it, ``at_s`` seconds after T0."""
    at = T0 + int(at_s * 1000)
    return Event(f"{at}-{next(_seq)}", kind, at, task, vol, {k: str(v) for k, v in data.items()})


def created(task: str, at_s: float, channel: str = "voice", dept: str = "05") -> Event:
    return ev(EventType.TASK_CREATED, at_s, task, channel=channel, dept=dept, region="93",
              skill="famille", priority=0, resumed=0, preferred="")


def answered(task: str, at_s: float, vol: str, ring: int, waited_s: float, ch: str = "voice"):
    return [
        ev(EventType.TASK_OFFERED, at_s, task, vol, ring=ring, channel=ch),
        ev(EventType.TASK_ASSIGNED, at_s, task, vol, ring=ring, waited_ms=int(waited_s * 1000),
           channel=ch),
    ]


def handled(task: str, vol: str, done_s: float, handle_s: float, ended_s: float,
            ch: str = "voice") -> list[Event]:
    return [
        ev(EventType.TASK_COMPLETED, done_s, task, vol, handle_ms=int(handle_s * 1000),
           channel=ch),
        ev(EventType.TASK_ENDED, ended_s, task, vol, outcome="completed", reason="", channel=ch),
    ]


def history() -> list[Event]:
    """Seven contacts; the expected numbers are worked out in the test below."""
    return [
        # A: answered in 10 s at département level, 300 s talk, 60 s wrap-up.
        created("A", 0), *answered("A", 10, "v1", 0, 10), *handled("A", "v1", 310, 300, 370),
        # B: widened to the région, answered after 90 s (outside T), 120 s talk, 20 s wrap-up.
        created("B", 0), ev(EventType.TASK_WIDENED, 30, "B", level=2),
        *answered("B", 90, "v2", 2, 90), *handled("B", "v2", 210, 120, 230),
        # C: hung up after 3 s (a short abandon). D: hung up after 40 s.
        created("C", 100), ev(EventType.TASK_ENDED, 103, "C", outcome="abandoned",
                              reason="caller_left", channel="voice"),
        created("D", 100), ev(EventType.TASK_ENDED, 140, "D", outcome="abandoned",
                              reason="caller_left", channel="voice"),
        # E: a chat answered nationally after 30 s, transferred, answered again; the second
        # answer changes neither the wait nor the ring; handle time is the last leg's.
        created("E", 200, "chat"), *answered("E", 230, "v3", 3, 30, "chat"),
        ev(EventType.TASK_TRANSFERRED, 260, "E", "v3", skill="", to=""),
        *answered("E", 270, "v1", 0, 70, "chat"), *handled("E", "v1", 400, 130, 430, "chat"),
        # F: asked to be called back; G, the callback, is closed with the line.
        created("F", 300), ev(EventType.TASK_ENDED, 320, "F", outcome="callback", reason="G",
                              channel="voice"),
        created("G", 320, "callback"),
        ev(EventType.TASK_ENDED, 500, "G", outcome="closed", reason="line_closed",
           channel="callback"),
    ]


def contacts(events: list[Event]) -> list[Contact]:
    by_task: dict[str, list[Event]] = {}
    for e in events:
        by_task.setdefault(e.task, []).append(e)
    return [Contact(line="x", task_id=t, **contact_fields(es)) for t, es in by_task.items()]


def test_each_metric_from_a_hand_made_history() -> None:
    counts = contact_counts(contacts(history()), Thresholds(60_000, 5_000))
    m = compute(counts)
    assert (m.offered, m.answered, m.abandoned) == (6, 3, 2)  # G is F called back: one contact
    # SL: answered within 60 s (A, E) over answered + abandoned - short abandons (3 + 2 - 1).
    assert m.service_level == pytest.approx(2 / 4)
    assert m.service_level_answered == pytest.approx(2 / 3)
    assert m.asa_s == pytest.approx((10 + 90 + 30) / 3)
    assert m.abandonment_rate == pytest.approx(2 / 6)
    assert (m.match_departement, m.match_group, m.match_region, m.match_national) == (
        pytest.approx(1 / 3), 0, pytest.approx(1 / 3), pytest.approx(1 / 3))
    # Handle time excludes wrap-up: (300 + 120 + 130) / 3, not (360 + 140 + 160) / 3.
    assert m.handle_time_s == pytest.approx(550 / 3)
    assert m.wrapup_time_s == pytest.approx(110 / 3)
    assert (counts.callback, counts.closed, counts.transferred) == (1, 1, 1)


def test_short_abandons_leave_the_service_level_and_its_base() -> None:
    only_short = [created("S", 0), ev(EventType.TASK_ENDED, 4.9, "S", outcome="abandoned",
                                      reason="caller_left", channel="voice")]
    m = compute(contact_counts(contacts(only_short), Thresholds(60_000, 5_000)))
    assert m.service_level is None  # nothing to measure, not 0 %
    assert m.abandonment_rate == 1.0  # but it still counts as an abandon
    m = compute(contact_counts(contacts(only_short), Thresholds(60_000, 4_000)))
    assert m.service_level == 0.0  # with a 4 s limit it is no longer short


def test_the_service_level_threshold_is_inclusive() -> None:
    at_t = [created("X", 0), *answered("X", 60, "v1", 0, 60)]
    assert compute(contact_counts(contacts(at_t), Thresholds())).service_level == 1.0


def test_contact_rows_ignore_event_order_and_a_missing_creation() -> None:
    events = [e for e in history() if e.task == "E"]
    forward = contact_fields(events)
    assert contact_fields(list(reversed(events))) == forward
    assert forward["ring"] == 3 and forward["wait_ms"] == 30_000
    assert (forward["volunteer_id"], forward["last_volunteer_id"]) == ("v3", "v1")
    orphan = Contact(line="x", task_id="E", **contact_fields(events[1:]))
    assert contact_counts([orphan], Thresholds()).offered == 0


def test_occupancy_counts_handling_over_time_on_duty() -> None:
    events = [
        # v1: available 0-400 and 500-600, handles A 10-370 (wrap-up included).
        ev(EventType.VOLUNTEER_PRESENCE, 0, vol="v1", presence="available"),
        ev(EventType.TASK_ASSIGNED, 10, "A", "v1", ring=0, waited_ms=0),
        ev(EventType.TASK_COMPLETED, 300, "A", "v1", handle_ms=290_000),
        ev(EventType.TASK_ENDED, 370, "A", "v1", outcome="completed"),
        ev(EventType.VOLUNTEER_PRESENCE, 400, vol="v1", presence="paused", reason="repas"),
        ev(EventType.VOLUNTEER_PRESENCE, 500, vol="v1", presence="available"),
        ev(EventType.VOLUNTEER_PRESENCE, 600, vol="v1", presence="logged_out"),
        # v2 pauses during a call: the call still counts as time on duty.
        ev(EventType.VOLUNTEER_PRESENCE, 0, vol="v2", presence="available"),
        ev(EventType.TASK_ASSIGNED, 100, "X", "v2", ring=0, waited_ms=0),
        ev(EventType.VOLUNTEER_PRESENCE, 150, vol="v2", presence="paused", reason="fin"),
        ev(EventType.TASK_ENDED, 250, "X", "v2", outcome="completed"),
        ev(EventType.VOLUNTEER_PRESENCE, 300, vol="v2", presence="available"),
        # v3: two chats at once count once.
        ev(EventType.VOLUNTEER_PRESENCE, 0, vol="v3", presence="available"),
        ev(EventType.TASK_ASSIGNED, 10, "c1", "v3", ring=0, waited_ms=0),
        ev(EventType.TASK_ASSIGNED, 20, "c2", "v3", ring=0, waited_ms=0),
        ev(EventType.TASK_ENDED, 50, "c1", "v3", outcome="completed"),
        ev(EventType.TASK_ENDED, 80, "c2", "v3", outcome="completed"),
        ev(EventType.VOLUNTEER_PRESENCE, 100, vol="v3", presence="logged_out"),
    ]
    events.sort(key=lambda e: e.at_ms)
    tracker = OccupancyTracker(T0).apply_all(events)
    per = {t.volunteer: (t.staffed_ms, t.occupied_ms) for t in tracker.totals(T0 + 700_000)}
    assert per["v1"] == (500_000, 360_000)
    assert per["v2"] == (250_000 + 400_000, 150_000)  # still available at 700 s
    assert per["v3"] == (100_000, 70_000)
    only_v1 = tracker.counts(T0 + 700_000, {"v1"})
    assert compute(only_v1).occupancy == pytest.approx(0.72)
    window = OccupancyTracker(T0 + 50_000, T0 + 100_000).apply_all(events)
    v3 = next(t for t in window.totals(T0 + 700_000) if t.volunteer == "v3")
    assert (v3.staffed_ms, v3.occupied_ms) == (50_000, 30_000)


def test_compute_is_the_same_for_live_counters() -> None:
    counts = contact_counts(contacts(history()), Thresholds())
    as_hash = {k: str(v) for k, v in counts.__dict__.items()}
    # The scripts count these per channel only; from_hash sums them.
    for total in ("offered", "answered", "abandoned"):
        n = int(as_hash.pop(total))
        as_hash[f"{total}_voice"], as_hash[f"{total}_chat"] = str(n - n // 2), str(n // 2)
    assert counts.offered > 1 and counts.answered > 1 and counts.abandoned > 0
    assert Counts.from_hash(as_hash) == counts
    assert compute(Counts.from_hash(as_hash)) == compute(counts)


def test_the_ring_a_contact_reached_counts_the_one_it_started_at() -> None:
    started_national = ev(EventType.TASK_CREATED, 0, "H", channel="voice", dept="05",
                          region="93", skill="", priority=0, resumed=0, preferred="", level=3)
    assert contact_fields([started_national])["level"] == 3
    widened_later = [created("I", 0), ev(EventType.TASK_WIDENED, 30, "I", level=2)]
    assert contact_fields(widened_later)["level"] == 2  # events without a starting ring: 0
