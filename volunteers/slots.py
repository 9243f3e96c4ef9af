"""The line's opening hours cut into slots (default Mon–Fri 9h–18h, 2 h slots, holidays closed).

Slots are computed, never stored: a slot is identified by its start (UTC). Opening
ranges are cut from their start; a shorter last piece (17h–18h) is a slot too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

from volunteers.settings import VolunteersSettings

PARIS = ZoneInfo("Europe/Paris")
DAY_NAMES = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"]
MONTH_NAMES = [
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
]  # fmt: skip


@lru_cache(maxsize=16)
def _french_holidays(year: int) -> dict[date, str]:
    return dict(holidays.France(years=year, language="fr"))


def holiday_name(day: date) -> str:
    """The French public holiday on this day ('' if none)."""
    return _french_holidays(day.year).get(day, "")


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


class SlotPlan:
    """Which slots exist, from the opening hours and French public holidays."""

    def __init__(self, settings: VolunteersSettings) -> None:
        self.settings = settings
        self.length = timedelta(minutes=settings.slot_minutes)

    def closed_reason(self, day: date) -> str:
        """Why the line is closed all day ('' if it opens)."""
        if self.settings.holidays_closed and (name := holiday_name(day)):
            return f"férié ({name})"
        if not self.settings.weekly_hours.get(day.weekday()):
            return "fermé"
        return ""

    def slots_on(self, day: date) -> list[Slot]:
        """The slots of one day (Paris calendar day), in order."""
        if self.closed_reason(day):
            return []
        slots: list[Slot] = []
        for start_text, end_text in self.settings.weekly_hours.get(day.weekday(), []):
            start = datetime.combine(day, _hm(start_text), PARIS)
            close = datetime.combine(day, _hm(end_text), PARIS)
            while start < close:
                end = min(start + self.length, close)
                slots.append(Slot(start.astimezone(UTC), end.astimezone(UTC)))
                start = end
        return slots

    def slots_between(self, first: date, last: date) -> list[Slot]:
        """Every slot from day ``first`` to day ``last`` included."""
        out: list[Slot] = []
        day = first
        while day <= last:
            out.extend(self.slots_on(day))
            day += timedelta(days=1)
        return out

    def slot_at(self, start: datetime) -> Slot | None:
        """The slot starting exactly at this moment, or None (closed, holiday, misaligned)."""
        for slot in self.slots_on(paris(start).date()):
            if slot.start == start.astimezone(UTC):
                return slot
        return None

    def slot_containing(self, moment: datetime) -> Slot | None:
        for slot in self.slots_on(paris(moment).date()):
            if slot.start <= moment < slot.end:
                return slot
        return None

    def weekly_starts(self, weekday: int) -> list[str]:
        """The 'HH:MM' starts of a weekday's slots (for recurring bookings)."""
        starts: list[str] = []
        for start_text, end_text in self.settings.weekly_hours.get(weekday, []):
            start = datetime.combine(date(2000, 1, 3), _hm(start_text))
            close = datetime.combine(date(2000, 1, 3), _hm(end_text))
            while start < close:
                starts.append(start.strftime("%H:%M"))
                start += self.length
        return starts

    def opening_ranges(self, day: date) -> list[tuple[datetime, datetime]]:
        """The line's open ranges of one day (UTC), none on holidays."""
        if self.closed_reason(day):
            return []
        return [
            (
                datetime.combine(day, _hm(a), PARIS).astimezone(UTC),
                datetime.combine(day, _hm(b), PARIS).astimezone(UTC),
            )
            for a, b in self.settings.weekly_hours.get(day.weekday(), [])
        ]


def monday_of(day: date) -> date:
    return day - timedelta(days=day.weekday())
