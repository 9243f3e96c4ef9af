"""The line's opening hours cut into slots (default Mon–Fri 9h–18h, 2 h slots, holidays closed).

Slots are computed, never stored: a slot is identified by its start (UTC). Opening
ranges are cut from their start; a shorter last piece (17h–18h) is a slot too.

The hours are the coordinators' (web/ installs an ``OpeningProvider`` reading the line's
schedule, closures and holidays included); the settings' weekly hours are only the
fallback when none is installed, e.g. for the volunteers package's own tests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from routing.french_holidays import holiday_name
from volunteers.settings import VolunteersSettings

PARIS = ZoneInfo("Europe/Paris")
DAY_NAMES = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"]
MONTH_NAMES = [
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
]  # fmt: skip


def _hm(text: str) -> time:
    hour, minute = text.split(":")
    return time(int(hour), int(minute))


def paris(moment: datetime) -> datetime:
    return moment.astimezone(PARIS)


def hour_label(moment: datetime) -> str:
    """'14 h' or '14 h 30' in Paris time."""
    local = paris(moment)
    return f"{local.hour} h" + (f" {local.minute:02d}" if local.minute else "")


def day_label(moment: datetime | date) -> str:
    """'mardi 24 novembre' in Paris time."""
    local = paris(moment) if isinstance(moment, datetime) else moment
    return f"{DAY_NAMES[local.weekday()]} {local.day} {MONTH_NAMES[local.month - 1]}"


@dataclass(frozen=True)
class Slot:
    start: datetime  # UTC, aware
    end: datetime

    @property
    def key(self) -> str:
        """A stable text id: the start in UTC, e.g. '2026-11-24T13:00Z'."""
        return self.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")

    @property
    def label(self) -> str:
        """'mardi 24 novembre, 14 h – 16 h'."""
        return f"{day_label(self.start)}, {hour_label(self.start)} – {hour_label(self.end)}"

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start < end and start < self.end


def parse_slot_key(key: str) -> datetime:
    """The UTC start of a slot key; ValueError if malformed."""
    return datetime.strptime(key, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC)


@dataclass(frozen=True)
class OpeningDay:
    """One Paris calendar day of the line's opening, as the slots are cut from it.

    ``hours`` are the day's regular hours: the slot grid starts at each of them, so a
    closure of one hour does not shift every slot of the day. ``open`` are the parts of
    those hours the line is really open (closures cut out): a slot is what of a grid
    piece lies in them. ``closed`` says why the line does not open at all that day.
    """

    day: date
    hours: tuple[tuple[datetime, datetime], ...] = ()  # aware
    open: tuple[tuple[datetime, datetime], ...] = ()  # aware, within ``hours``
    closed: str = ""  # '' | 'fermé' | 'férié (Noël)' | 'fermeture exceptionnelle — …'
    closure: str = ""  # a closure cutting into the day's hours, as volunteers read it


# web/ installs one backed by the coordinators' schedule (holidays and closures included);
# without it the slots follow the volunteers' own settings (``settings_opening``).
OpeningProvider = Callable[[date, date], Awaitable[list[OpeningDay]]]


def _ranges(day: date, pairs: list[tuple[str, str]]) -> tuple[tuple[datetime, datetime], ...]:
    return tuple(
        (datetime.combine(day, _hm(a), PARIS), datetime.combine(day, _hm(b), PARIS))
        for a, b in pairs
    )


def settings_opening(settings: VolunteersSettings) -> OpeningProvider:
    """The fallback: weekly hours and holidays from the volunteers' settings, no closures."""

    async def opening(first: date, last: date) -> list[OpeningDay]:
        out = []
        for offset in range((last - first).days + 1):
            day = first + timedelta(days=offset)
            if settings.holidays_closed and (name := holiday_name(day)):
                out.append(OpeningDay(day, closed=f"férié ({name})"))
                continue
            hours = _ranges(day, settings.weekly_hours.get(day.weekday(), []))
            out.append(OpeningDay(day, hours, hours, "" if hours else "fermé"))
        return out

    return opening


class SlotPlan:
    """Which slots exist: the line's opening (from the provider web/ installs, else the
    settings) cut into ``slot_minutes`` pieces from the start of each day's hours."""

    def __init__(
        self, settings: VolunteersSettings, opening: OpeningProvider | None = None
    ) -> None:
        self.settings = settings
        self.length = timedelta(minutes=settings.slot_minutes)
        self.opening = opening or settings_opening(settings)

    async def days(self, first: date, last: date) -> list[OpeningDay]:
        if last < first:
            return []
        return await self.opening(first, last)

    async def closed_reason(self, day: date) -> str:
        """Why the line is closed all day ('' if it opens)."""
        (opening,) = await self.days(day, day)
        return opening.closed

    def cut(self, opening: OpeningDay) -> list[Slot]:
        """The slots of one day: the grid of its hours, each piece clipped to the open parts."""
        if opening.closed:
            return []
        slots: list[Slot] = []
        for start, close in opening.hours:
            piece = start
            while piece < close:
                end = min(piece + self.length, close)
                for a, b in opening.open:
                    lo, hi = max(piece, a), min(end, b)
                    if lo < hi:
                        slots.append(Slot(lo.astimezone(UTC), hi.astimezone(UTC)))
                piece = end
        return sorted(slots, key=lambda s: s.start)

    async def slots_on(self, day: date) -> list[Slot]:
        """The slots of one day (Paris calendar day), in order."""
        return await self.slots_between(day, day)

    async def slots_between(self, first: date, last: date) -> list[Slot]:
        """Every slot from day ``first`` to day ``last`` included."""
        return [slot for opening in await self.days(first, last) for slot in self.cut(opening)]

    async def slot_at(self, start: datetime) -> Slot | None:
        """The slot starting exactly at this moment, or None (closed, holiday, misaligned)."""
        for slot in await self.slots_on(paris(start).date()):
            if slot.start == start.astimezone(UTC):
                return slot
        return None

    async def open_at(self, moment: datetime) -> bool:
        """Whether the line is open at this moment."""
        (opening,) = await self.days(paris(moment).date(), paris(moment).date())
        return any(a <= moment < b for a, b in opening.open)

    async def weekly_starts(self, first: date) -> dict[int, list[str]]:
        """The 'HH:MM' starts of each weekday's slots over the booking horizon from ``first``
        (for recurring bookings): the hours as coordinators set them for the coming weeks."""
        last = first + timedelta(days=max(6, self.settings.booking_horizon_days))
        starts: dict[int, set[str]] = {}
        for slot in await self.slots_between(first, last):
            local = paris(slot.start)
            starts.setdefault(local.weekday(), set()).add(local.strftime("%H:%M"))
        return {day: sorted(values) for day, values in sorted(starts.items())}


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())
