"""Booking rules: slots from opening hours, max and standby, overlaps, cut-off, recurring."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from volunteers.bookings import Bookings
from volunteers.errors import VolunteerError
from volunteers.models import AccountStatus, BookingStatus
from volunteers.settings import VolunteersSettings
from volunteers.slots import SlotPlan

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=PARIS).astimezone(UTC)  # Monday morning


def at(day: int, hour: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, 0, tzinfo=PARIS).astimezone(UTC)


async def test_slots_follow_opening_hours_and_holidays(vsettings: VolunteersSettings) -> None:
    plan = SlotPlan(vsettings)  # no provider installed: the settings' own hours
    tuesday = await plan.slots_on(date(2026, 11, 24))
    assert [s.label for s in tuesday] == [
        "mardi 24 novembre, 9 h – 11 h",
        "mardi 24 novembre, 11 h – 13 h",
        "mardi 24 novembre, 13 h – 15 h",
        "mardi 24 novembre, 15 h – 17 h",
        "mardi 24 novembre, 17 h – 18 h",
    ]
    assert await plan.slots_on(date(2026, 11, 28)) == []  # Saturday
    assert await plan.slots_on(date(2026, 12, 25)) == []  # Noël
    assert (await plan.closed_reason(date(2026, 12, 25))).startswith("férié")
    # Summer time: 9 h in Paris is 7 h UTC.
    first = (await plan.slots_on(date(2027, 6, 1)))[0]
    assert first.start == datetime(2027, 6, 1, 7, 0, tzinfo=UTC)


async def test_book_fill_standby_and_promotion(
    db_session: AsyncSession, vsettings: VolunteersSettings, make_account
) -> None:
    book = Bookings(db_session, vsettings)  # slot_max = 2
    a, b, c = [await make_account(n) for n in ("Anne", "Bruno", "Chloé")]
    first = await book.book(a, at(24, 13), NOW)
    assert not first.standby and first.message.startswith("Créneau réservé : mardi 24 novembre")
    assert not (await book.book(b, at(24, 13), NOW)).standby
    third = await book.book(c, at(24, 13), NOW)
    assert third.standby
    assert "complet" in third.message and "liste d'attente" in third.message
    need = [n for n in await book.week(date(2026, 11, 23), c.id) if n.slot.start == at(24, 13)][0]
    assert (need.booked, need.standby, need.mine) == (2, 1, "standby")

    [promoted] = await book.cancel(a, at(24, 13), NOW)
    assert promoted.account_id == c.id
    assert promoted.status == BookingStatus.BOOKED and book.promoted == [promoted]
    assert await book.count(at(24, 13), BookingStatus.BOOKED) == 2


async def test_refusals_are_clear_and_change_nothing(
    db_session: AsyncSession, vsettings: VolunteersSettings, make_account
) -> None:
    book = Bookings(db_session, vsettings)
    anne = await make_account("Anne")
    await book.book(anne, at(24, 9), NOW)

    closed = "Ce créneau n'existe pas : la ligne est fermée à cette heure-là."
    cases = [
        (at(24, 9), NOW, "Vous avez déjà réservé ce créneau."),
        (at(24, 10), NOW, closed),  # not a slot start
        (at(25, 9, 12), NOW, closed),  # Noël
        (at(23, 7), NOW, closed),  # before opening
        (at(23, 9), NOW + timedelta(hours=2), "Ce créneau est déjà commencé ou passé."),
    ]
    for start, now, message in cases:
        with pytest.raises(VolunteerError) as err:
            await book.book(anne, start, now)
        assert err.value.message == message
    with pytest.raises(VolunteerError, match="jours à l'avance"):
        await book.book(anne, at(24, 9) + timedelta(days=70), NOW)

    pending = await make_account("Paul", status=AccountStatus.PENDING)
    with pytest.raises(VolunteerError) as err:
        await book.book(pending, at(24, 11), NOW)
    assert err.value.message == (
        "Votre compte doit être validé par un coordinateur avant de réserver un créneau."
    )
    assert [b.slot_start for b in await book.mine(anne.id, NOW)] == [at(24, 9)]


async def test_overlap_refused_when_slot_length_changed(
    db_session: AsyncSession, vsettings: VolunteersSettings, make_account
) -> None:
    anne = await make_account("Anne")
    await Bookings(db_session, vsettings).book(anne, at(24, 9), NOW)  # 9 h – 11 h
    hourly = VolunteersSettings(secret_key="k", slot_minutes=60)
    with pytest.raises(VolunteerError) as err:
        await Bookings(db_session, hourly).book(anne, at(24, 10), NOW)
    assert err.value.message == (
        "Ce créneau chevauche un autre créneau que vous avez déjà réservé "
        "(mardi 24 novembre, 9 h – 11 h)."
    )
    assert len(await Bookings(db_session, hourly).mine(anne.id, NOW)) == 1


async def test_cancel_cut_off(
    db_session: AsyncSession, vsettings: VolunteersSettings, make_account
) -> None:
    book = Bookings(db_session, vsettings)  # 24 h cut-off
    anne = await make_account("Anne")
    await book.book(anne, at(24, 9), NOW)  # 25 h away: may cancel until Monday 9 h
    later = NOW + timedelta(hours=2)
    with pytest.raises(VolunteerError) as err:
        await book.cancel(anne, at(24, 9), later)
    assert err.value.message == (
        "Il est trop tard pour annuler ce créneau en ligne (moins de 24 heures avant le "
        "début). Prévenez un coordinateur."
    )
    assert (await book.mine(anne.id, later))[0].status == BookingStatus.BOOKED
    assert await book.cancel(anne, at(24, 9), NOW) == []
    assert await book.mine(anne.id, NOW) == []
    with pytest.raises(VolunteerError, match="Vous n'avez pas réservé ce créneau."):
        await book.cancel(anne, at(24, 9), NOW)
    # Cancelled, then booked again: the same row comes back to life.
    assert not (await book.book(anne, at(24, 9), NOW)).standby


async def test_recurring_weekly_booking(
    db_session: AsyncSession, vsettings: VolunteersSettings, make_account
) -> None:
    book = Bookings(db_session, vsettings)  # 56-day horizon
    anne = await make_account("Anne")
    # Every Friday 14 h would be 13 h – 15 h slots; 13:00 is a real start, 14:00 is not.
    with pytest.raises(VolunteerError, match="la ligne est fermée"):
        await book.add_recurring(anne, 4, "14:00", NOW)
    # Every Friday 13 h – 15 h. The horizon (56 days) holds 8 Fridays, two of them
    # holidays (Noël, 25 December 2026, and Jour de l'an, 1 January 2027): no slot then.
    rule, booked, skipped = await book.add_recurring(anne, 4, "13:00", NOW)
    starts = [r.slot.start for r in booked]
    assert starts[0] == at(27, 13)
    assert all(s.astimezone(PARIS).weekday() == 4 for s in starts)
    assert at(25, 13, 12) not in starts
    assert len(starts) == 6
    assert skipped == []
    with pytest.raises(VolunteerError, match="chaque vendredi"):
        await book.add_recurring(anne, 4, "13:00", NOW)

    # Expanding again books nothing twice; a week cancelled on purpose stays cancelled.
    await book.cancel(anne, at(4, 13, 12), NOW)
    again, _ = await book.expand(anne, rule, NOW)
    assert again == []
    assert at(4, 13, 12) not in [b.slot_start for b in await book.mine(anne.id, NOW)]

    # A full Friday puts this volunteer on standby, reported as such.
    bruno = await make_account("Bruno")
    chloe = await make_account("Chloé")
    await book.book(bruno, at(27, 11), NOW)
    await book.book(chloe, at(27, 11), NOW)
    _rule, booked_b, _ = await book.add_recurring(anne, 4, "11:00", NOW)
    assert booked_b[0].standby and booked_b[0].slot.start == at(27, 11)

    # Stopping the rule cancels its future bookings (the 4 December one already was).
    assert await book.stop_recurring(anne, rule.id, NOW) == 5
    assert [b for b in await book.mine(anne.id, NOW) if b.recurring_id == rule.id] == []
    assert [r.start_time for r in await book.recurring_of(anne.id)] == ["11:00"]
