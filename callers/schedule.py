"""Opening hours of the line: weekly hours, French public holidays, closures, emergencies.

The schedule lives in Redis (one JSON document per line) so every process agrees and a
coordinator's change applies at once. Times are Europe/Paris.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator
from redis.asyncio import Redis

from routing.french_holidays import holiday_name

PARIS = ZoneInfo("Europe/Paris")
DAY_NAMES = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"]
# Validation context of a schedule read back from Redis (see Schedule._check_weekly).
STORED = "stored"


class Closure(BaseModel):
    """A coordinator's closure (a training day, a strike...), with what callers hear."""

    start: datetime
    end: datetime
    message: str = Field("", max_length=300)

    @model_validator(mode="after")
    def _ordered(self) -> Closure:
        if self.end <= self.start:
            raise ValueError("la fin de la fermeture doit être après son début")
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("les dates de fermeture doivent avoir un fuseau horaire")
        return self


class Schedule(BaseModel):
    """Weekly hours per weekday (0 = Monday) as [start, end) 'HH:MM' pairs, and exceptions."""

    weekly: dict[int, list[tuple[str, str]]] = Field(
        default_factory=lambda: {d: [("09:00", "18:00")] for d in range(5)}
    )
    public_holidays_closed: bool = True
    closures: list[Closure] = Field(default_factory=list)
    emergency_message: str = Field("", max_length=500)

    @field_validator("weekly")
    @classmethod
    def _check_weekly(
        cls, value: dict[int, list[tuple[str, str]]], info: ValidationInfo
    ) -> dict:
        stored = bool(info.context and info.context.get(STORED))
        for day, ranges in value.items():
            if not 0 <= int(day) <= 6:
                raise ValueError("jour de semaine invalide")
            spans = sorted((_valid_hm(a), _valid_hm(b), a, b) for a, b in ranges)
            for start, end, a, b in spans:
                if start >= end:
                    raise ValueError(f"horaire invalide : {a}–{b}")
            # Slots are cut from each range: ranges that overlap would offer the same hours
            # twice, as slots on top of each other. Sorted by start, neighbours tell.
            overlap = next(((x, y) for x, y in zip(spans, spans[1:], strict=False)
                            if y[0] < x[1]), None)
            if overlap is None:
                continue
            if stored:  # saved before overlaps were refused: the hours they open, merged
                value[day] = _merged([(a, b) for _, _, a, b in spans])
                continue
            (_, _, a1, b1), (_, _, a2, b2) = overlap
            raise ValueError(f"les horaires du {DAY_NAMES[int(day)]} se chevauchent : "
                             f"{a1}–{b1} et {a2}–{b2}")
        return value


def _hm(text: str) -> time:
    hour, minute = text.split(":")
    return time(int(hour), int(minute))


def _merged(ranges: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Ranges sorted by start, overlapping ones joined."""
    merged: list[tuple[str, str]] = []
    for start, end in ranges:
        if merged and _hm(start) < _hm(merged[-1][1]):
            merged[-1] = (merged[-1][0], max(merged[-1][1], end, key=_hm))
        else:
            merged.append((start, end))
    return merged


def _valid_hm(text: str) -> time:
    """``_hm`` with a French error: a time of the day, 00:00 to 23:59 (24:00 is none)."""
    try:
        return _hm(text)
    except ValueError:
        raise ValueError(f"heure invalide : {text} (de 00:00 à 23:59)") from None


class ClosedReason(StrEnum):
    HOURS = "hours"
    HOLIDAY = "holiday"
    CLOSURE = "closure"


@dataclass(frozen=True)
class LineStatus:
    """Whether the line is open now, why not, and when it opens next."""

    open: bool
    reason: ClosedReason | None = None
    message: str = ""  # a closure's own message
    holiday: str = ""
    next_open: datetime | None = None
    emergency_message: str = ""


def status_at(schedule: Schedule, when: datetime) -> LineStatus:
    """The line's status at a moment (any time zone)."""
    local = when.astimezone(PARIS)
    closed = _closed_reason(schedule, local)
    if closed is None:
        return LineStatus(open=True, emergency_message=schedule.emergency_message)
    reason, message, holiday = closed
    return LineStatus(
        open=False,
        reason=reason,
        message=message,
        holiday=holiday,
        next_open=next_opening(schedule, local),
        emergency_message=schedule.emergency_message,
    )


def _closed_reason(schedule: Schedule, local: datetime) -> tuple[ClosedReason, str, str] | None:
    for closure in schedule.closures:
        if closure.start <= local < closure.end:
            return ClosedReason.CLOSURE, closure.message, ""
    if schedule.public_holidays_closed:
        name = holiday_name(local.date())
        if name:
            return ClosedReason.HOLIDAY, "", name
    for start, end in schedule.weekly.get(local.weekday(), []):
        if _hm(start) <= local.time() < _hm(end):
            return None
    return ClosedReason.HOURS, "", ""


def next_opening(schedule: Schedule, local: datetime, horizon_days: int = 60) -> datetime | None:
    """The next moment the line opens after a closed moment (None within the horizon)."""
    candidates: list[datetime] = []
    for offset in range(horizon_days + 1):
        day = local.date() + timedelta(days=offset)
        for start, _end in schedule.weekly.get(day.weekday(), []):
            candidates.append(datetime.combine(day, _hm(start), PARIS))
    candidates += [c.end.astimezone(PARIS) for c in schedule.closures]
    for moment in sorted(candidates):
        if moment > local and _closed_reason(schedule, moment) is None:
            return moment
    return None


@dataclass(frozen=True)
class DayHours:
    """One Paris calendar day of the schedule: its weekly hours and what of them is open.

    The same rules as ``status_at`` (closures, then holidays, then weekly hours), as
    ranges: volunteers' slots are cut from them (through web/), so the line and its
    slots never disagree.
    """

    day: date
    hours: tuple[tuple[datetime, datetime], ...]  # the weekday's hours; none on a closed holiday
    open: tuple[tuple[datetime, datetime], ...]  # those hours minus the closures
    holiday: str = ""  # the public holiday that closes the day ('' if none)
    closure_message: str = ""  # the message of a closure that cuts into the day's hours


def day_hours(schedule: Schedule, day: date) -> DayHours:
    """The day's hours (Europe/Paris, aware) and their open parts."""
    if schedule.public_holidays_closed and (name := holiday_name(day)):
        return DayHours(day, (), (), holiday=name)
    hours = tuple(
        (datetime.combine(day, _hm(a), PARIS), datetime.combine(day, _hm(b), PARIS))
        for a, b in schedule.weekly.get(day.weekday(), [])
    )
    open_: list[tuple[datetime, datetime]] = list(hours)
    message = ""
    for closure in sorted(schedule.closures, key=lambda c: c.start):
        kept: list[tuple[datetime, datetime]] = []
        for start, end in open_:
            if closure.end <= start or end <= closure.start:
                kept.append((start, end))
                continue
            message = message or closure.message
            if start < closure.start:
                kept.append((start, closure.start.astimezone(PARIS)))
            if closure.end < end:
                kept.append((closure.end.astimezone(PARIS), end))
        open_ = kept
    return DayHours(day, hours, tuple(open_), closure_message=message)


def spoken_moment(moment: datetime, now: datetime) -> str:
    """'demain à 9 heures', 'lundi à 9 heures 30' — how a caller hears an opening time."""
    local, today = moment.astimezone(PARIS), now.astimezone(PARIS).date()
    clock = f"{local.hour} heures" + (f" {local.minute}" if local.minute else "")
    if local.date() == today:
        return f"aujourd'hui à {clock}"
    if local.date() == today + timedelta(days=1):
        return f"demain à {clock}"
    if local.date() < today + timedelta(days=7):
        return f"{DAY_NAMES[local.weekday()]} à {clock}"
    return f"le {local.day} {_MONTHS[local.month - 1]} à {clock}"


_MONTHS = [
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
]


class ScheduleStore:
    """The line's schedule in Redis; the default one until a coordinator saves another."""

    def __init__(self, redis: Redis, line: str) -> None:
        self.redis = redis
        self.key = f"perm:callers:{{{line}}}:schedule"

    async def get(self) -> Schedule:
        raw = await self.redis.get(self.key)
        return Schedule.model_validate_json(raw, context={STORED: True}) if raw else Schedule()

    async def save(self, schedule: Schedule) -> None:
        await self.redis.set(self.key, schedule.model_dump_json())

    async def status(self, now_ms: int) -> LineStatus:
        when = datetime.fromtimestamp(now_ms / 1000, PARIS)
        return status_at(await self.get(), when)


def schedule_from_json(text: str) -> Schedule:
    """Parse a schedule a coordinator sent (raises pydantic.ValidationError)."""
    return Schedule.model_validate(json.loads(text))


def _hour(text: str, unit: str) -> str:
    hour, minute = text.split(":")
    return f"{int(hour)} {unit}" + (f" {minute}" if minute != "00" else "")


def opening_summary(schedule: Schedule, *, spoken: bool = False) -> str:
    """The weekly hours in words: 'du lundi au vendredi, de 9 h à 18 h' ('9 heures' spoken)."""
    unit = "heures" if spoken else "h"
    groups: list[tuple[int, int, list[tuple[str, str]]]] = []
    for day in range(7):
        ranges = [tuple(r) for r in schedule.weekly.get(day, [])]
        if not ranges:
            continue
        if groups and groups[-1][1] == day - 1 and groups[-1][2] == ranges:
            groups[-1] = (groups[-1][0], day, groups[-1][2])
        else:
            groups.append((day, day, ranges))
    parts = []
    for first, last, ranges in groups:
        days = (f"le {DAY_NAMES[first]}" if first == last
                else f"du {DAY_NAMES[first]} au {DAY_NAMES[last]}")
        hours = " et ".join(f"de {_hour(a, unit)} à {_hour(b, unit)}" for a, b in ranges)
        parts.append(f"{days}, {hours}")
    return " ; ".join(parts)
