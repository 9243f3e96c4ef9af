"""The recorder against a real Redis stream and a real database."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from routing.clock import ManualClock, buckets
from routing.engine import Engine
from routing.metrics import compute
from routing.models import Channel, Presence, TaskSpec, VolunteerProfile
from web.coordination.history import Thresholds, contact_counts
from web.coordination.models import Contact, RoutingEvent
from web.coordination.recorder import GROUP, Recorder


async def a_morning(
    engine: Engine, clock: ManualClock, v1: str = "v1", v2: str = "v2"
) -> None:
    """A few contacts of every kind, driven through the real engine."""
    await engine.log_in(VolunteerProfile(v1, "05", name="Anne"))
    await engine.log_in(VolunteerProfile(v2, "13", name="Bruno"))
    await engine.set_presence(v1, Presence.AVAILABLE)
    await engine.enqueue(TaskSpec("c1", Channel.VOICE, "05"))  # offered to v1 at once
    clock.advance(8)
    await engine.accept(v1, "c1")
    await engine.enqueue(TaskSpec("c2", Channel.VOICE, "13"))  # nobody free: waits
    clock.advance(3)
    await engine.enqueue(TaskSpec("c3", Channel.VOICE, "84"))
    clock.advance(2)
    await engine.cancel("c3")  # a short abandon
    clock.advance(100)
    await engine.complete(v1, "c1")
    clock.advance(30)
    await engine.finish_wrapup(v1, "c1")  # v1 free again: c2 (région) is offered to v1
    clock.advance(5)
    await engine.decline(v1, "c2")
    await engine.set_presence(v2, Presence.AVAILABLE)  # c2 goes to v2
    clock.advance(4)
    await engine.accept(v2, "c2")
    await engine.enqueue(TaskSpec("c4", Channel.CHAT, "75"))
    clock.advance(70)
    await engine.cancel("c4")  # a chat left after 70 s
    await engine.enqueue(TaskSpec("c5", Channel.VOICE, "69"))
    clock.advance(10)
    await engine.to_callback("c5", "c5-cb")
    clock.advance(10)
    await engine.close("c5-cb", "line_closed")
    await engine.cancel("c2")  # the caller hangs up while talking: completed
    clock.advance(20)
    await engine.tick()
    await engine.finish_wrapup(v2, "c2")
    await engine.set_presence(v1, Presence.PAUSED, "repas")


async def history(db: AsyncEngine, line: str) -> tuple[list[tuple], int]:
    """Every contact row (as tuples) and the number of recorded events of a line."""
    async with AsyncSession(db) as session:
        rows = (
            await session.execute(
                select(Contact).where(Contact.line == line).order_by(Contact.task_id)
            )
        ).scalars().all()
        n = (
            await session.execute(
                select(func.count()).select_from(RoutingEvent).where(RoutingEvent.line == line)
            )
        ).scalar_one()
    return [tuple(r.model_dump().values()) for r in rows], n


async def drain(recorder: Recorder) -> None:
    await recorder.ensure_group()
    while await recorder.step(block_ms=None):
        pass


async def test_replaying_the_stream_twice_gives_the_same_history(
    engine: Engine, clock: ManualClock, redis: Redis, history_db: AsyncEngine, line: str
) -> None:
    await a_morning(engine, clock)
    stream_len = await redis.xlen(engine.keys.events)
    recorder = Recorder(redis, history_db, line=line)
    await drain(recorder)
    first, n_events = await history(history_db, line)
    assert n_events == stream_len
    assert len(first) == 6  # c1 c2 c3 c4 c5 c5-cb
    assert await recorder.replay() == 0
    assert await recorder.replay() == 0
    again, n_again = await history(history_db, line)
    assert (again, n_again) == (first, n_events)
    # Nothing is left unacknowledged.
    assert (await redis.xpending(engine.keys.events, GROUP))["pending"] == 0


async def test_history_agrees_with_the_live_counters(
    engine: Engine, clock: ManualClock, redis: Redis, history_db: AsyncEngine, line: str
) -> None:
    await a_morning(engine, clock)
    await drain(Recorder(redis, history_db, line=line))
    async with AsyncSession(history_db) as session:
        rows = (await session.execute(select(Contact).where(Contact.line == line))).scalars()
        cfg = await engine.config()
        th = Thresholds(int(cfg.service_level_s * 1000), int(cfg.short_abandon_s * 1000))
        from_history = contact_counts(rows.all(), th)
    live = await engine.counts(buckets(clock.now_ms())[0])
    assert from_history == live
    m = compute(from_history)
    assert (m.offered, m.answered, m.abandoned) == (5, 2, 2)  # c5-cb is c5, offered once
    # c2 widened to the région and was declined there; a local volunteer then took it.
    assert m.match_departement == 1.0
    assert m.asa_s == (8 + 144) / 2


async def test_a_caller_who_leaves_after_a_lost_line_is_answered_not_abandoned(
    engine: Engine, clock: ManualClock, redis: Redis, history_db: AsyncEngine, line: str
) -> None:
    # Each contact counts once in the service level: answered or abandoned, not both.
    await engine.log_in(VolunteerProfile("v1", "05", name="Anne"))
    await engine.set_presence("v1", Presence.AVAILABLE)
    await engine.enqueue(TaskSpec("c1", Channel.VOICE, "05", caller_key="ck-1"))
    clock.advance(8)
    await engine.accept("v1", "c1")
    clock.advance(60)
    await engine.give_back("v1", "c1")  # Anne's softphone is lost: c1 waits again
    clock.advance(20)
    await engine.cancel("c1")  # and its caller hangs up (outcome: abandoned)
    await engine.enqueue(TaskSpec("c2", Channel.VOICE, "05"))
    clock.advance(30)
    await engine.cancel("c2")  # nobody answered it: abandoned
    await drain(Recorder(redis, history_db, line=line))
    async with AsyncSession(history_db) as session:
        rows = (await session.execute(select(Contact).where(Contact.line == line))).scalars()
        contacts = {row.task_id: row for row in rows.all()}
    assert [contacts[t].outcome for t in ("c1", "c2")] == ["abandoned", "abandoned"]
    cfg = await engine.config()
    th = Thresholds(int(cfg.service_level_s * 1000), int(cfg.short_abandon_s * 1000))
    from_history = contact_counts(contacts.values(), th)
    assert from_history == await engine.counts(buckets(clock.now_ms())[0])
    m = compute(from_history)
    assert (m.offered, m.answered, m.abandoned) == (2, 1, 1)
    assert m.service_level == 0.5  # c1 answered in 8 s, over c1 and c2


async def test_a_crashed_recorders_entries_are_claimed_and_recorded_once(
    engine: Engine, clock: ManualClock, redis: Redis, history_db: AsyncEngine, line: str
) -> None:
    await a_morning(engine, clock)
    dead = Recorder(redis, history_db, line=line, consumer="dead", batch=7)
    await dead.ensure_group()
    # The dead consumer records part of a batch it then never acknowledges (crash after commit).
    reply = await redis.xreadgroup(GROUP, "dead", {engine.keys.events: ">"}, count=7)
    entries = reply[0][1]
    from routing.events import Event

    await dead.record([Event.parse(i, f) for i, f in entries[:4]])
    assert (await redis.xpending(engine.keys.events, GROUP))["pending"] == 7
    alive = Recorder(redis, history_db, line=line, consumer="alive", claim_idle_ms=0)
    await drain(alive)
    assert (await redis.xpending(engine.keys.events, GROUP))["pending"] == 0
    recovered = await history(history_db, line)
    # The same history as a clean recording on another line of the same stream content.
    assert recovered[1] == await redis.xlen(engine.keys.events)
    assert await alive.replay() == 0
    assert await history(history_db, line) == recovered


async def test_a_restarted_recorder_first_takes_its_own_pending_entries(
    engine: Engine, clock: ManualClock, redis: Redis, history_db: AsyncEngine, line: str
) -> None:
    await a_morning(engine, clock)
    first = Recorder(redis, history_db, line=line, consumer="host-1", claim_idle_ms=3_600_000)
    await first.ensure_group()
    await redis.xreadgroup(GROUP, "host-1", {engine.keys.events: ">"}, count=5)  # then crash
    restarted = Recorder(redis, history_db, line=line, consumer="host-1",
                         claim_idle_ms=3_600_000)
    await drain(restarted)
    assert (await redis.xpending(engine.keys.events, GROUP))["pending"] == 0
    assert (await history(history_db, line))[1] == await redis.xlen(engine.keys.events)


async def test_concurrent_recorders_build_the_same_history_as_one(
    engine: Engine, clock: ManualClock, redis: Redis, history_db: AsyncEngine, line: str
) -> None:
    await a_morning(engine, clock)
    recorders = [
        Recorder(redis, history_db, line=line, consumer=f"r{i}", batch=3) for i in range(3)
    ]
    await recorders[0].ensure_group()
    await asyncio.gather(*(drain(r) for r in recorders))
    together = await history(history_db, line)
    # A sequential replay into the same tables adds nothing and changes nothing.
    assert await recorders[0].replay() == 0
    assert await history(history_db, line) == together
    assert together[1] == await redis.xlen(engine.keys.events)
