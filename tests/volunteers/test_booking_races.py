"""Concurrent bookings and cancellations on PostgreSQL never overbook a slot or skip the
standby list: each test runs its operations at once, each in its own session and
connection, as several app processes would."""

from __future__ import annotations

import asyncio
import dataclasses
import os
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlmodel import select

from volunteers.bookings import Bookings
from volunteers.models import Account, Booking, BookingStatus
from volunteers.slots import Slot, SlotPlan

pytestmark = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres"),
    reason="needs PostgreSQL (DATABASE_URL): SQLite runs one write transaction at a time, "
    "so concurrent sessions cannot interleave there",
)

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=PARIS).astimezone(UTC)  # days before the slots
MAX = 2
ROUNDS = 4  # each on a slot of its own: more chances for the sessions to interleave


@pytest.fixture
def settings(vsettings):
    return dataclasses.replace(vsettings, slot_max=MAX)


async def _slots(settings) -> list[Slot]:
    plan = SlotPlan(settings)
    return (await plan.slots_between(date(2026, 11, 23), date(2026, 11, 27)))[:ROUNDS]


async def _book(database, settings, account: Account, slot: Slot):
    async with database.session() as session:
        return await Bookings(session, settings).book(account, slot.start, NOW)


async def _cancel(database, settings, account: Account, slot: Slot):
    async with database.session() as session:
        return await Bookings(session, settings).cancel(account, slot.start, NOW)


async def _statuses(database, slot: Slot) -> dict[int, str]:
    async with database.session() as session:
        rows = await session.exec(select(Booking).where(Booking.slot_start == slot.start))
        return {b.account_id: b.status for b in rows}


def _count(statuses: dict[int, str], status: BookingStatus) -> int:
    return sum(1 for s in statuses.values() if s == status.value)


async def test_simultaneous_bookings_never_pass_the_maximum(database, settings, make_account):
    people = [await make_account(f"Bénévole {n}") for n in range(6)]
    for slot in await _slots(settings):
        results = await asyncio.gather(*(_book(database, settings, p, slot) for p in people))
        statuses = await _statuses(database, slot)
        assert _count(statuses, BookingStatus.BOOKED) == MAX, slot.label
        assert _count(statuses, BookingStatus.STANDBY) == len(people) - MAX
        # What each volunteer was told matches what was stored.
        told = {r.booking.account_id: r.standby for r in results}
        assert told == {a: s == BookingStatus.STANDBY.value for a, s in statuses.items()}


async def test_two_cancellations_at_once_promote_two_from_the_standby_list(
    database, settings, make_account
):
    anne, bruno, chloe, david, emma = [
        await make_account(n) for n in ("Anne", "Bruno", "Chloé", "David", "Emma")
    ]
    for slot in await _slots(settings):
        for person in (anne, bruno, chloe, david, emma):  # Chloé, David, Emma wait, in order
            await _book(database, settings, person, slot)
        promoted = await asyncio.gather(
            _cancel(database, settings, anne, slot), _cancel(database, settings, bruno, slot)
        )
        statuses = await _statuses(database, slot)
        assert _count(statuses, BookingStatus.BOOKED) == MAX, slot.label
        assert statuses[chloe.id] == statuses[david.id] == BookingStatus.BOOKED.value
        assert statuses[emma.id] == BookingStatus.STANDBY.value
        assert sorted(b.account_id for found in promoted for b in found) == sorted(
            [chloe.id, david.id]
        )


async def test_a_cancellation_and_new_bookings_at_once(database, settings, make_account):
    """The place a cancellation frees goes to the standby list first, never one too many."""
    anne, bruno, chloe = [await make_account(n) for n in ("Anne", "Bruno", "Chloé")]
    newcomers = [await make_account(f"Nouveau {n}") for n in range(3)]
    for slot in await _slots(settings):
        for person in (anne, bruno, chloe):  # full; Chloé waits
            await _book(database, settings, person, slot)
        await asyncio.gather(
            _cancel(database, settings, anne, slot),
            *(_book(database, settings, p, slot) for p in newcomers),
        )
        statuses = await _statuses(database, slot)
        assert _count(statuses, BookingStatus.BOOKED) == MAX, slot.label
        assert statuses[chloe.id] == BookingStatus.BOOKED.value  # first on the list
        assert all(statuses[p.id] == BookingStatus.STANDBY.value for p in newcomers)


async def test_standby_volunteer_leaving_while_promoted_stays_gone(
    database, settings, make_account
):
    """A standby volunteer who leaves the list as a place frees is not booked anyway."""
    anne, bruno, chloe, david = [await make_account(n) for n in ("Anne", "Bruno", "Chloé", "David")]
    for slot in await _slots(settings):
        for person in (anne, bruno, chloe, david):
            await _book(database, settings, person, slot)
        await asyncio.gather(
            _cancel(database, settings, anne, slot), _cancel(database, settings, chloe, slot)
        )
        statuses = await _statuses(database, slot)
        assert statuses[chloe.id] == BookingStatus.CANCELLED.value, slot.label
        assert statuses[david.id] == BookingStatus.BOOKED.value
        assert _count(statuses, BookingStatus.BOOKED) == MAX
