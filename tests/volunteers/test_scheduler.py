"""The shift life cycle: one scheduler among many, reminders and no-shows on a test clock."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlmodel import select

from routing.models import Channel, Presence, TaskSpec
from volunteers import accounts, jobs
from volunteers.bookings import Bookings
from volunteers.console import ConsoleHub
from volunteers.credentials import Sealer
from volunteers.models import Booking, OutboxMessage, Role, ShiftLog
from volunteers.profile import ProfileInput, clean_profile
from volunteers.scheduler import ShiftScheduler, plan_into
from volunteers.slots import SlotPlan
from web.db import create_sync_engine

PARIS = ZoneInfo("Europe/Paris")
SLOT = datetime(2026, 11, 24, 13, 0, tzinfo=PARIS)  # Tuesday 13 h – 15 h
KEY = SLOT.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


@pytest.fixture
def small_vol(vol):
    vol.settings = dataclasses.replace(vol.settings, slot_max=2)
    jobs.CONTEXT = vol
    yield vol
    jobs.CONTEXT = None


async def _outbox(sessions, kind: str) -> list[OutboxMessage]:
    async with sessions() as session:
        return list(await session.exec(select(OutboxMessage).where(OutboxMessage.kind == kind)))


async def test_plan_reminders_no_show_and_slot_end_on_a_test_clock(
    small_vol, make_account, sessions, clock, engine
):
    vol = small_vol
    clock.set(datetime(2026, 11, 23, 9, 0, tzinfo=PARIS))
    now = jobs.now_of(vol)
    anne, bruno, chloe = [await make_account(n) for n in ("Anne", "Bruno", "Chloé")]
    claire = await make_account("Claire", role=Role.COORDINATOR)
    async with sessions() as session:
        book = Bookings(session, vol.settings)
        for person in (anne, bruno, chloe):
            await book.book(person, SLOT.astimezone(UTC), now)  # Chloé: standby
        bruno_row = await session.get(type(bruno), bruno.id)
        profile = clean_profile(
            ProfileInput(
                name="Bruno", postal_code="05000", phone_mode="phone", phone="06 12 34 56 78"
            )
        )
        await accounts.save_profile(session, bruno_row, profile, Sealer(vol.settings.secret_key))

    # The planner lays out the slot's jobs with explicit ids and the right times.
    planner = AsyncIOScheduler(timezone=UTC)
    ids = await plan_into(planner, vol, now)
    runs = {j.id: j.trigger.run_date for j in planner.get_jobs()}
    assert runs[f"slot:{KEY}:remind1440"] == SLOT - timedelta(hours=24)
    assert runs[f"slot:{KEY}:remind60"] == SLOT - timedelta(hours=1)
    assert runs[f"slot:{KEY}:noshow"] == SLOT + timedelta(minutes=10)
    assert runs[f"slot:{KEY}:end"] == SLOT + timedelta(hours=2)
    assert all(runs[i] > now for i in ids)
    assert f"slot:{KEY}:start" in ids and len(ids) == len(set(ids))

    # 24 h before: both booked volunteers are reminded once, whatever runs twice.
    clock.set(SLOT - timedelta(hours=24))
    assert await jobs.remind(KEY, 1440) == 2
    assert await jobs.remind(KEY, 1440) == 0
    day_before = await _outbox(sessions, "rappel_24heures")
    assert sorted(m.account_id for m in day_before) == sorted([anne.id, bruno.id])
    assert all("commence demain (mardi 24 novembre, 13 h – 15 h)" in m.body for m in day_before)
    assert {m.channel for m in day_before} == {"outbox"}  # no SMS, no SMTP configured
    clock.set(SLOT - timedelta(hours=1))
    assert await jobs.remind(KEY, 60) == 2
    assert "commence dans 1 heure" in (await _outbox(sessions, "rappel_1heure"))[0].body

    # Anne logs in; at the start she counts as present, Bruno as expected.
    await engine.log_in(accounts.routing_profile(anne))
    await engine.set_presence(anne.public_id, Presence.AVAILABLE)
    clock.set(SLOT)
    assert await jobs.slot_start(KEY) == {"expected": 2, "present": 1}

    # Ten minutes in, Bruno is still missing: nudged, coordinators alerted, standby asked.
    clock.advance(10 * 60)
    assert await jobs.no_show(KEY) == ["Bruno"]
    assert await jobs.no_show(KEY) == ["Bruno"]  # a second run writes nothing new
    nudges = await _outbox(sessions, "relance_absence")
    assert [m.account_id for m in nudges] == [bruno.id]
    assert "n'êtes pas connecté" in nudges[0].body
    alerts = await _outbox(sessions, "alerte_absence")
    assert [m.account_id for m in alerts] == [claire.id] and "Bruno" in alerts[0].body
    asked = await _outbox(sessions, "appel_liste_attente")
    assert [m.account_id for m in asked] == [chloe.id]
    async with sessions() as session:
        rows = {b.account_id: b for b in await session.exec(select(Booking))}
        logs = [r.kind for r in await session.exec(select(ShiftLog).order_by(ShiftLog.id))]
    assert rows[bruno.id].no_show_at is not None and rows[anne.id].present_at is not None
    assert logs == ["slot_start", "no_show"]

    # Slot end while Anne is in a call: she keeps it, gets no new offer, then goes off duty.
    await engine.enqueue(TaskSpec("call-end", Channel.VOICE, "05"))
    await engine.accept(anne.public_id, "call-end")
    clock.set(SLOT + timedelta(hours=2))
    assert await jobs.slot_end(KEY) == [anne.public_id]
    state = await engine.volunteer(anne.public_id)
    assert state.presence is Presence.PAUSED and state.reason == jobs.END_REASON
    assert await jobs.end_sweep(jobs.END_REASON) == []  # still in her call
    await engine.complete(anne.public_id, "call-end")
    await engine.finish_wrapup(anne.public_id, "call-end")
    assert await jobs.end_sweep(jobs.END_REASON) == [anne.public_id]
    assert (await engine.volunteer(anne.public_id)).presence is Presence.LOGGED_OUT


async def test_a_connection_lost_just_before_the_slot_ends_gives_no_presence_back_after(
    small_vol, make_account, sessions, clock, engine
):
    """The console gives a lost connection's presence back when the volunteer returns within
    the window; once their slot ended meanwhile, it must not make them available again."""
    vol = small_vol
    clock.set(datetime(2026, 11, 23, 9, 0, tzinfo=PARIS))
    anne = await make_account("Anne")
    async with sessions() as session:
        await Bookings(session, vol.settings).book(anne, SLOT.astimezone(UTC), jobs.now_of(vol))
    clock.set(SLOT + timedelta(hours=1, minutes=59))
    await engine.log_in(accounts.routing_profile(anne))
    await engine.set_presence(anne.public_id, Presence.AVAILABLE)
    hub = ConsoleHub(vol)
    await hub.touch(anne.public_id)
    clock.set(SLOT + timedelta(hours=2) - timedelta(seconds=1))
    assert await hub.reap() == [anne.public_id]  # her console went silent: logged out, kept
    clock.set(SLOT + timedelta(hours=2))
    assert await jobs.slot_end(KEY) == []  # already logged out
    assert not await hub.restore(anne.public_id)  # back a minute later: still logged out
    assert (await engine.volunteer(anne.public_id)).presence is Presence.LOGGED_OUT


async def _wait_for(predicate, what: str, limit_s: float = 20) -> None:
    # Polls state owned by other tasks (APScheduler, Redis): no event to wait on.
    async with asyncio.timeout(limit_s):
        while not await predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.05)


async def test_two_schedulers_one_leader_each_job_runs_once(vol, app_settings, redis):
    jobs.CONTEXT = vol
    engines = [create_sync_engine(app_settings), create_sync_engine(app_settings)]
    first, second = (
        ShiftScheduler(vol, engines[0], owner="process-1", lease_ms=900, standing_jobs=False),
        ShiftScheduler(vol, engines[1], owner="process-2", lease_ms=900, standing_jobs=False),
    )
    stops = {first: asyncio.Event(), second: asyncio.Event()}
    runners = {s: asyncio.create_task(s.run(stops[s])) for s in (first, second)}
    counter = vol.key("test", "probe-runs")
    try:
        await _wait_for(async_true(lambda: first.leading or second.leading), "a leader")
        assert [first.leading, second.leading].count(True) == 1
        leader, follower = (first, second) if first.leading else (second, first)

        soon = datetime.now(UTC) + timedelta(milliseconds=300)
        for i in range(5):
            leader.scheduler.add_job(
                "tests.volunteers.probe:record",
                "date",
                run_date=soon,
                args=[counter, f"job-{i}"],
                id=f"probe-{i}",
                replace_existing=True,
            )
        # A job for later, kept in SQL: whoever leads then must run it.
        later = datetime.now(UTC) + timedelta(seconds=3)
        leader.scheduler.add_job(
            "tests.volunteers.probe:record",
            "date",
            run_date=later,
            args=[counter, "later"],
            id="probe-later",
            replace_existing=True,
        )

        async def five_ran() -> bool:
            return len(await redis.hgetall(counter)) >= 5

        await _wait_for(five_ran, "the five jobs")
        # Both keep competing for a while: still one leader, nothing runs twice.
        for _ in range(5):
            await asyncio.sleep(0.3)
            assert [first.leading, second.leading].count(True) == 1
        assert await redis.hgetall(counter) == {f"job-{i}": "1" for i in range(5)}

        # The leader stops (its process ends): the other takes over and runs what was left.
        stops[leader].set()
        await runners[leader]
        assert not leader.leading
        await _wait_for(async_true(lambda: follower.leading), "the follower to lead")

        async def later_ran() -> bool:
            return "later" in await redis.hgetall(counter)

        await _wait_for(later_ran, "the job left in the job store")
        for _ in range(3):
            await asyncio.sleep(0.3)
        runs = await redis.hgetall(counter)
        assert runs == {**{f"job-{i}": "1" for i in range(5)}, "later": "1"}
        assert follower.missed == []
    finally:
        for event in stops.values():
            event.set()
        await asyncio.gather(*runners.values(), return_exceptions=True)
        for e in engines:
            e.dispose()
        jobs.CONTEXT = None
        await redis.delete(counter)


def async_true(check):
    async def predicate() -> bool:
        return bool(check())

    return predicate


async def test_slot_plan_is_used_for_jobs(vsettings) -> None:
    assert await SlotPlan(vsettings).slot_at(SLOT.astimezone(UTC)) is not None
