"""Slots cut from an installed opening provider (web/ installs the coordinators' schedule;
here a plain async function stands for it, so volunteers/ is tested on its own)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from volunteers import jobs
from volunteers.bookings import Bookings
from volunteers.errors import VolunteerError
from volunteers.models import BookingStatus, ShiftLog
from volunteers.scheduler import plan_into
from volunteers.settings import VolunteersSettings
from volunteers.slots import OpeningDay, SlotPlan

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=PARIS).astimezone(UTC)  # a Friday


def hm(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=PARIS)


class Line:
    """A line schedule a coordinator would edit: daily hours, closures as (start, end)."""

    def __init__(self, open_h: int = 9, close_h: int = 18) -> None:
        self.open_h, self.close_h = open_h, close_h
        self.closures: list[tuple[datetime, datetime, str]] = []

    async def __call__(self, first: date, last: date) -> list[OpeningDay]:
        out = []
        for n in range((last - first).days + 1):
            day = first + timedelta(days=n)
            if day.weekday() >= 5:
                out.append(OpeningDay(day, closed="fermé"))
                continue
            hours = ((hm(day, self.open_h), hm(day, self.close_h)),)
            open_ = list(hours)
            for start, end, _why in self.closures:
                open_ = [p for a, b in open_ for p in ((a, min(b, start)), (max(a, end), b))
                         if p[0] < p[1]]
            closed = "" if open_ else f"fermeture exceptionnelle — {self.closures[0][2]}"
            out.append(OpeningDay(day, hours, tuple(open_), closed))
        return out


TUESDAY = date(2026, 11, 24)


async def _closings(vol) -> list[str]:
    async with vol.sessions() as session:
        rows = await session.exec(select(ShiftLog).where(ShiftLog.kind == "line_close"))
        return [r.job_key for r in rows]


def at(hour: int, minute: int = 0, day: date = TUESDAY) -> datetime:
    return hm(day, hour, minute).astimezone(UTC)


async def test_the_provider_decides_the_slots_over_the_settings(
    vsettings: VolunteersSettings,
) -> None:
    line = Line(8, 12)
    plan = SlotPlan(vsettings, line)
    assert [s.label for s in await plan.slots_on(TUESDAY)] == [
        "mardi 24 novembre, 8 h – 10 h",
        "mardi 24 novembre, 10 h – 12 h",
    ]
    assert await plan.slot_at(at(9)) is None  # the settings' 9 h slot does not exist
    assert (await plan.weekly_starts(TUESDAY))[1] == ["08:00", "10:00"]
    # Without a provider, the settings' own hours (the fallback).
    assert (await SlotPlan(vsettings).slot_at(at(9))) is not None


async def test_a_partial_closure_clips_the_grid_without_shifting_it(
    vsettings: VolunteersSettings,
) -> None:
    line = Line()
    line.closures.append((hm(TUESDAY, 9), hm(TUESDAY, 10), "réunion"))
    slots = await SlotPlan(vsettings, line).slots_on(TUESDAY)
    assert [(s.start, s.end) for s in slots] == [
        (at(10), at(11)), (at(11), at(13)), (at(13), at(15)), (at(15), at(17)), (at(17), at(18)),
    ]


async def test_a_booking_on_a_slot_that_closed_is_kept_flagged_and_can_be_left(
    db_session: AsyncSession, vsettings: VolunteersSettings, make_account
) -> None:
    line = Line()
    anne, bruno = await make_account("Anne"), await make_account("Bruno")
    book = Bookings(db_session, vsettings, opening=line)
    await book.book(anne, at(13), NOW)
    await book.book(bruno, at(13), NOW)
    assert await book.closed_reasons(await book.mine(anne.id, NOW)) == {}

    line.closures.append((hm(TUESDAY, 0), hm(TUESDAY + timedelta(days=1), 0), "formation"))
    mine = await book.mine(anne.id, NOW)
    assert [b.status for b in mine] == [BookingStatus.BOOKED.value]  # not cancelled behind her
    assert await book.closed_reasons(mine) == {at(13): "fermeture exceptionnelle — formation"}
    flagged = await book.closed_between(at(0), at(0, day=TUESDAY + timedelta(days=1)))
    assert sorted(b.account_id for b, _ in flagged) == sorted([anne.id, bruno.id])
    try:
        await book.book(anne, at(15), NOW)
    except VolunteerError as exc:
        assert exc.code == "no_such_slot"
    else:
        raise AssertionError("a closed day's slot was booked")

    # Within the cut-off a closed slot can still be left: nobody is needed then.
    late = at(12)
    await book.cancel(anne, at(13), late)
    assert await book.mine(anne.id, NOW) == []
    try:
        await Bookings(db_session, vsettings).cancel(bruno, at(13), late)  # open there
    except VolunteerError as exc:
        assert exc.code == "cancel_too_late"
    else:
        raise AssertionError("the cut-off did not apply to an open slot")


async def test_shift_jobs_follow_the_provider(vol, clock) -> None:
    line = Line(9, 20)
    line.closures.append((hm(TUESDAY, 12), hm(TUESDAY, 14), "déjeuner"))
    vol.opening = line
    now = at(6)
    clock.set(now)
    planner = AsyncIOScheduler(timezone=UTC)
    ids = await plan_into(planner, vol, now)
    runs = {j.id: j.trigger.run_date for j in planner.get_jobs()}
    assert runs["line:2026-11-24T0900:open"] == hm(TUESDAY, 9)
    assert runs["line:2026-11-24T1200:close"] == hm(TUESDAY, 12)
    assert runs["line:2026-11-24T1400:open"] == hm(TUESDAY, 14)
    assert runs["line:2026-11-24T2000:close"] == hm(TUESDAY, 20)
    assert "slot:2026-11-24T18:00Z:start" in ids  # 19 h – 20 h, past the settings' 18 h
    assert "slot:2026-11-24T13:00Z:start" in ids  # 13 h – 15 h clipped to 14 h – 15 h
    assert "slot:2026-11-24T12:00Z:start" not in ids

    # A close planned before the hours were extended does nothing at its time.
    jobs.CONTEXT = vol
    try:
        line.close_h = 21
        clock.set(hm(TUESDAY, 20))
        assert await jobs.line_close() == []
        assert await _closings(vol) == []
        clock.set(hm(TUESDAY, 21))  # the new closing time: the line closes
        await jobs.line_close()
        assert await _closings(vol) == ["line:2026-11-24:2100:close"]
        assert await jobs.slot_start("2026-11-24T12:00Z") == {}  # closed slot: no job work
    finally:
        jobs.CONTEXT = None
