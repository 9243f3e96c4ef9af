"""Glue that hands volunteers/ the line's opening hours (volunteers/ cannot import callers/):
slots are cut from the schedule coordinators edit on /coordination/horaires, holidays and
closures included, so the line and its slots never disagree."""

from __future__ import annotations

from datetime import date, timedelta

from fastapi import FastAPI
from redis.asyncio import Redis

from callers.schedule import DayHours, ScheduleStore, day_hours
from volunteers.slots import OpeningDay, OpeningProvider


def _closure(hours: DayHours) -> str:
    """A closure cutting into the day's hours, as volunteers read it ('' if none)."""
    if hours.open == hours.hours:
        return ""
    label = "fermeture exceptionnelle"
    return f"{label} — {hours.closure_message}" if hours.closure_message else label


def _closed(hours: DayHours) -> str:
    """Why the line does not open at all that day, as volunteers read it ('' if it opens)."""
    if hours.holiday:
        return f"férié ({hours.holiday})"
    if not hours.hours:
        return "fermé"
    if not hours.open:
        return _closure(hours)
    return ""


def opening_days(store: ScheduleStore) -> OpeningProvider:
    """An OpeningProvider reading the line's schedule (one Redis read per call)."""

    async def opening(first: date, last: date) -> list[OpeningDay]:
        schedule = await store.get()
        out = []
        for offset in range((last - first).days + 1):
            hours = day_hours(schedule, first + timedelta(days=offset))
            out.append(
                OpeningDay(hours.day, hours.hours, hours.open, _closed(hours), _closure(hours))
            )
        return out

    return opening


def line_opening(redis: Redis, line: str) -> OpeningProvider:
    return opening_days(ScheduleStore(redis, line))


def install_slot_hours(app: FastAPI) -> None:
    """Give volunteers/ ``app.state.slot_opening``; resolved at each call because the
    runtime (and its Redis) opens in the app's lifespan, after the app is assembled."""

    async def opening(first: date, last: date) -> list[OpeningDay]:
        runtime = app.state.runtime
        return await line_opening(runtime.redis, runtime.settings.line)(first, last)

    app.state.slot_opening = opening
