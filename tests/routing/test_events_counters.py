"""The event stream (typed, in order) and the live counters behind the metrics.

The test clock starts on Monday 23 November 2026 at 09:00, Paris time: counters go to
the day "2026-11-23" and the 15-minute interval "2026-11-23T09:00" (then 09:15...).
"""

from __future__ import annotations

from datetime import datetime

from routing.clock import PARIS
from routing.events import EventReader, EventType
from routing.metrics import Counts, compute
from routing.models import Presence

DAY, NINE, NINE_FIFTEEN = "2026-11-23", "2026-11-23T09:00", "2026-11-23T09:15"


def summary(events, tid: str | None = None) -> list[tuple[str, str, str]]:
    return [(e.type.value, e.task, e.volunteer) for e in events if tid is None or e.task == tid]


async def test_a_life_cycle_in_order(desk, engine, clock) -> None:
    start = clock.now_ms()
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05", skill="impots")  # v1 lacks the skill: the call waits
    for seconds in (15, 15, 30):  # the group, the région, then the skill relaxes: offered
        await desk.wait(seconds)
    await engine.accept("v1", "t1")
    await desk.wait(300)
    await engine.complete("v1", "t1")
    await desk.wait(30)
    await engine.finish_wrapup("v1", "t1")

    events = await desk.events()
    assert summary(events) == [
        ("volunteer_presence", "", "v1"),
        ("task_created", "t1", ""),
        ("task_widened", "t1", ""),  # 15 s: group
        ("task_widened", "t1", ""),  # 30 s: région
        ("task_offered", "t1", "v1"),  # 60 s: skill relaxed
        ("task_assigned", "t1", "v1"),
        ("task_completed", "t1", "v1"),
        ("task_ended", "t1", "v1"),
    ]
    by_type = {e.type: e for e in events}
    assert all(isinstance(e.type, EventType) for e in events)
    seconds = [(e.at_ms - start) // 1000 for e in events]
    assert seconds == [0, 0, 15, 30, 60, 60, 360, 390]
    assert by_type[EventType.VOLUNTEER_PRESENCE].data["presence"] == "available"
    created = by_type[EventType.TASK_CREATED].data
    assert (created["channel"], created["dept"], created["region"], created["skill"]) == (
        "voice",
        "05",
        "93",
        "impots",
    )
    assert created["level"] == "0"
    assert [e.data["level"] for e in events if e.type is EventType.TASK_WIDENED] == ["1", "2"]
    offered = by_type[EventType.TASK_OFFERED].data
    assert (offered["ring"], int(offered["expires_at"]) - start) == ("0", 80_000)
    assert by_type[EventType.TASK_ASSIGNED].data["waited_ms"] == "60000"
    assert by_type[EventType.TASK_COMPLETED].data["handle_ms"] == "300000"
    assert by_type[EventType.TASK_ENDED].data["outcome"] == "completed"
    ids = [e.id for e in events]
    assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))  # stream order


async def test_a_task_that_skips_rings_is_created_at_the_ring_it_starts_at(desk) -> None:
    await desk.volunteer("v13", "13")
    await desk.call("t1", "05")  # nobody in 05 or the massif: straight to the région
    events = await desk.events()
    assert summary(events, "t1") == [
        ("task_created", "t1", ""),
        ("task_offered", "t1", "v13"),
    ]
    created = next(e for e in events if e.type is EventType.TASK_CREATED)
    assert created.data["level"] == "2"


async def test_decline_timeout_and_auto_pause_events(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await desk.volunteer("v2", "05")
    await desk.call("t1", "05")
    await engine.decline("v1", "t1")
    await desk.wait(20)  # v2 does not answer
    events = await desk.events()
    assert summary(events, "t1") == [
        ("task_created", "t1", ""),
        ("task_offered", "t1", "v1"),
        ("offer_declined", "t1", "v1"),
        ("task_offered", "t1", "v2"),
        ("offer_timeout", "t1", "v2"),
        ("task_widened", "t1", ""),  # back in the queue at 20 s of age: the group ring
        ("task_offered", "t1", "v1"),  # v1's reject delay (5 s) was over
    ]
    assert events[-1].data["ring"] == "0"
    timeout = next(e for e in events if e.type is EventType.OFFER_TIMEOUT)
    assert timeout.data["misses"] == "1"


async def test_the_auto_pause_is_a_presence_event_with_its_reason(desk, engine) -> None:
    await engine.configure((await engine.config()).model_copy(update={"max_no_answer": 1}))
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await desk.wait(20)
    last = (await desk.events())[-3:]
    assert summary(last) == [
        ("offer_timeout", "t1", "v1"),
        ("volunteer_presence", "", "v1"),
        ("task_widened", "t1", ""),  # v1 was 05's only volunteer on duty
    ]
    assert (last[1].data["presence"], last[1].data["reason"]) == ("paused", "sans réponse")


async def test_transfer_priority_callback_and_close_events(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    await desk.call("t2", "05")
    await desk.call("t3", "05")
    await engine.set_priority("t3", 7)
    await engine.to_callback("t2", "cb2")
    await engine.close("cb2", "line_closed")
    await engine.transfer("v1", "t1", skill="retraite")
    events = await desk.events()
    interesting = [e for e in events if e.type.value not in {"volunteer_presence"}]
    assert summary(interesting)[3:] == [
        ("task_created", "t2", ""),
        ("task_created", "t3", ""),
        ("task_priority", "t3", ""),
        ("task_ended", "t2", ""),
        ("task_created", "cb2", ""),
        ("task_ended", "cb2", ""),
        ("task_transferred", "t1", "v1"),
        ("task_offered", "t3", "v1"),  # v1's capacity came back; t3 is first in line
    ]
    ended = [e.data for e in events if e.type is EventType.TASK_ENDED]
    assert [(d["outcome"], d["reason"]) for d in ended] == [
        ("callback", "cb2"),
        ("closed", "line_closed"),
    ]
    assert (
        next(e for e in events if e.type is EventType.TASK_CREATED and e.task == "cb2").data[
            "channel"
        ]
        == "callback"
    )
    transferred = next(e for e in events if e.type is EventType.TASK_TRANSFERRED)
    assert (transferred.data["skill"], transferred.data["to"]) == ("retraite", "")


async def test_a_reader_follows_the_stream_from_where_it_is(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    reader = EventReader(engine.redis, engine.keys)  # "$": only what comes next
    assert await reader.read(block_ms=None) == []
    await desk.call("t1", "05")
    assert summary(await reader.read(block_ms=None)) == [
        ("task_created", "t1", ""),
        ("task_offered", "t1", "v1"),
    ]
    await engine.accept("v1", "t1")
    assert summary(await reader.read(block_ms=None)) == [("task_assigned", "t1", "v1")]


# Live counters --------------------------------------------------------------------------


async def test_counters_of_a_morning(desk, engine, clock) -> None:
    await desk.volunteer("v05", "05")
    await desk.call("t1", "05")  # offered to v05 at once
    await desk.wait(10)
    await engine.accept("v05", "t1")  # answered at département level after 10 s

    await desk.call("t2", "05")  # t+10: waits; nobody else on duty anywhere near
    await desk.call("t3", "05")
    await desk.call("t4", "05")
    await desk.wait(3)
    await engine.cancel("t3")  # a short abandon (< 5 s)
    await desk.wait(27)
    await engine.cancel("t4")  # a real abandon after 30 s
    await desk.wait(60)  # t+100: t2 reached the national ring at 90 s of age
    await desk.volunteer("v75", "75")
    assert await desk.offered_to("t2") == "v75"
    await desk.wait(5)
    await engine.accept("v75", "t2")  # answered nationally after 95 s: outside the SL

    expected = Counts(
        offered=4,
        answered=2,
        answered_within_sl=1,
        wait_ms=10_000 + 95_000,
        abandoned=2,
        abandoned_short=1,
        answered_ring0=1,
        answered_ring3=1,
    )
    for bucket in (DAY, NINE):
        assert await engine.counts(bucket) == expected, bucket
    metrics = compute(expected)
    assert metrics.service_level == 1 / 3  # short abandons excluded
    assert metrics.service_level_answered == 1 / 2
    assert metrics.asa_s == 52.5
    assert metrics.abandonment_rate == 2 / 4
    assert (metrics.match_departement, metrics.match_national) == (1 / 2, 1 / 2)

    clock.advance(15 * 60)  # into the next quarter-hour
    await desk.call("t5", "13")
    assert (await engine.counts(NINE_FIFTEEN)).offered == 1
    assert (await engine.counts(NINE)).offered == 4
    assert (await engine.counts(DAY)).offered == 5


async def test_counters_change_day_at_midnight_in_paris(desk, engine, clock) -> None:
    clock.set(datetime(2026, 3, 28, 23, 50, tzinfo=PARIS))  # the night before summer time
    await desk.call("t1", "05")
    clock.advance(15 * 60)
    await desk.call("t2", "05")
    assert (await engine.counts("2026-03-28")).offered == 1
    assert (await engine.counts("2026-03-28T23:45")).offered == 1
    assert (await engine.counts("2026-03-29")).offered == 1
    assert (await engine.counts("2026-03-29T00:00")).offered == 1


async def test_answered_once_whatever_happens_before_or_after(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await desk.volunteer("v2", "05")
    await desk.volunteer("v38", "38")
    await desk.call("t1", "05")
    await engine.decline("v1", "t1")
    await desk.wait(20)  # v2 misses it
    await desk.wait(5)
    await engine.accept(await desk.offered_to("t1"), "t1")
    await engine.transfer("v1", "t1", to_volunteer="v38")
    await engine.accept("v38", "t1")  # the transfer is not a second answer
    await engine.complete("v38", "t1")
    await engine.finish_wrapup("v38", "t1")
    counts = await engine.counts(DAY)
    assert (counts.offered, counts.answered, counts.answered_ring0, counts.answered_ring1) == (
        1,
        1,
        1,
        0,
    )
    assert (counts.transferred, counts.completed, counts.wait_ms) == (1, 1, 25_000)


async def test_handle_wrapup_callback_and_closed_counters(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    await desk.call("t2", "05")
    await desk.call("t3", "05")
    await desk.wait(240)
    await engine.complete("v1", "t1")
    await desk.wait(120)  # the wrap-up times out
    await engine.set_presence("v1", Presence.PAUSED)
    await engine.to_callback("t2", "cb2")
    await engine.close("t3", "line_closed")
    counts = await engine.counts(DAY)
    assert (counts.completed, counts.handle_ms, counts.wrapup_ms) == (1, 240_000, 120_000)
    # Three contacts: the callback replaces t2, it is not a fourth one offered.
    assert (counts.callback, counts.closed, counts.offered) == (1, 1, 3)
    assert counts.abandoned == 0  # converting to a callback or closing is not abandoning


async def test_a_call_turned_into_a_callback_is_offered_once(desk, engine) -> None:
    await desk.busy("v1", "05")
    await desk.call("t1", "05")
    await engine.to_callback("t1", "cb1")
    raw = await engine.redis.hgetall(engine.keys.stats(DAY))
    # busy-v1 and t1; cb1 is t1 under another form. Totals are sums over channels.
    assert (raw.get("offered_voice"), raw.get("offered_callback")) == ("2", None)
    assert (await engine.counts(DAY)).offered == 2
    created = [e for e in await desk.events() if e.type.value == "task_created"]
    assert [(e.task, e.data["replaces"]) for e in created] == [
        ("busy-v1", ""),
        ("t1", ""),
        ("cb1", "t1"),
    ]
    await engine.complete("v1", "busy-v1")
    await engine.finish_wrapup("v1", "busy-v1")
    await engine.accept("v1", "cb1")
    counts = await engine.counts(DAY)
    assert (counts.offered, counts.answered, counts.callback) == (2, 2, 1)
    assert compute(counts).abandonment_rate == 0


async def test_every_counter_key_expires(desk, engine, clock) -> None:
    """Counter keys get their deadline when created, even in a bucket a wrap-up opens."""
    ttl_ms = int((await engine.config()).stats_ttl_s * 1000)
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    await engine.complete("v1", "t1")
    clock.advance(15 * 60)  # the wrap-up ends in the next quarter-hour: its first counter
    await engine.finish_wrapup("v1", "t1")
    for bucket in (DAY, NINE, NINE_FIFTEEN):
        key = engine.keys.stats(bucket)
        assert await engine.redis.hgetall(key), bucket
        assert 0 < await engine.redis.pttl(key) <= ttl_ms, bucket
