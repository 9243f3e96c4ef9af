"""The shift life cycle's jobs (run by APScheduler through ``volunteers.scheduler``).

Jobs are module-level coroutines referenced by text (``volunteers.jobs:slot_start``) so
the SQL job store can keep them; their arguments are plain strings. They find the
process's services in ``CONTEXT`` (set by the scheduler when it starts) and read the
time from the engine's clock, so tests drive them with a ManualClock. Each job is
idempotent: messages carry dedup keys, log rows a unique job key.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from routing.errors import RoutingError
from routing.models import Presence
from volunteers.models import Account, Booking, BookingStatus, ShiftLog
from volunteers.notify import Notifier
from volunteers.runtime import Volunteers
from volunteers.slots import Slot, paris, parse_slot_key

log = logging.getLogger(__name__)

CONTEXT: Volunteers | None = None
END_REASON = "fin de créneau"
CLOSE_REASON = "ligne fermée"


def context() -> Volunteers:
    if CONTEXT is None:
        raise RuntimeError("volunteers.jobs.CONTEXT is not set: start the shift scheduler")
    return CONTEXT


def now_of(vol: Volunteers) -> datetime:
    return datetime.fromtimestamp(vol.now_ms() / 1000, UTC)


async def _log(vol: Volunteers, job_key: str, kind: str, slot: Slot | None, **detail: Any) -> bool:
    """Record that a job did its work; False if it was already recorded (ran before)."""
    async with vol.sessions() as session:
        session.add(
            ShiftLog(
                job_key=job_key,
                kind=kind,
                slot_start=slot.start if slot else None,
                detail=json.dumps(detail, ensure_ascii=False),
                at=now_of(vol),
            )
        )
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()
            return False
    return True


async def _booked(session: Any, slot: Slot, status: BookingStatus) -> list[tuple[Booking, Account]]:
    rows = await session.exec(
        select(Booking, Account)
        .where(Booking.account_id == Account.id)
        .where(Booking.slot_start == slot.start, Booking.status == status.value)
        .order_by(Booking.changed_at, Booking.id)
    )
    return list(rows)


async def _slot(vol: Volunteers, slot_key: str) -> Slot | None:
    """The slot as the line's hours have it now (None once hours or a closure removed it)."""
    return await vol.plan.slot_at(parse_slot_key(slot_key))


async def _on_duty(vol: Volunteers, public_id: str) -> bool:
    volunteer = await vol.engine.volunteer(public_id)
    return volunteer is not None and volunteer.presence is not Presence.LOGGED_OUT


# Jobs ----------------------------------------------------------------------------------


async def remind(slot_key: str, minutes: int) -> int:
    """Remind everyone booked in the slot (24 h and 1 h before by default)."""
    vol = context()
    slot = await _slot(vol, slot_key)
    if slot is None:
        return 0
    now = now_of(vol)
    sent = 0
    async with vol.sessions() as session:
        notifier = Notifier(vol)
        for booking, account in await _booked(session, slot, BookingStatus.BOOKED):
            sent += (
                await notifier.reminder(session, booking, account, int(minutes), now) is not None
            )
    return sent


async def slot_start(slot_key: str) -> dict[str, int]:
    """At the start: who was expected, who is there (adherence)."""
    vol = context()
    slot = await _slot(vol, slot_key)
    if slot is None:
        return {}
    now = now_of(vol)
    present = 0
    async with vol.sessions() as session:
        booked = await _booked(session, slot, BookingStatus.BOOKED)
        for booking, account in booked:
            if await _on_duty(vol, account.public_id):
                booking.present_at = booking.present_at or now
                present += 1
        await session.commit()
    figures = {"expected": len(booked), "present": present}
    await _log(vol, f"slot:{slot_key}:start", "slot_start", slot, **figures)
    return figures


async def no_show(slot_key: str) -> list[str]:
    """At start + 10 min: nudge the missing, alert coordinators, ask the standby list."""
    vol = context()
    slot = await _slot(vol, slot_key)
    if slot is None:
        return []
    now = now_of(vol)
    missing: list[str] = []
    async with vol.sessions() as session:
        notifier = Notifier(vol)
        for booking, account in await _booked(session, slot, BookingStatus.BOOKED):
            if await _on_duty(vol, account.public_id):
                booking.present_at = booking.present_at or now
                continue
            booking.no_show_at = booking.no_show_at or now
            missing.append(account.name)
            await session.commit()
            await notifier.nudge(session, booking, account, now)
        await session.commit()
        if missing:
            await notifier.alert_coordinators(session, slot, missing, now)
            standby = await _booked(session, slot, BookingStatus.STANDBY)
            for booking, account in standby[: len(missing)]:
                await notifier.ask_standby(session, booking, account, now)
    await _log(vol, f"slot:{slot_key}:noshow", "no_show", slot, missing=missing)
    return missing


async def slot_end(slot_key: str) -> list[str]:
    """At the end: those not booked next go off duty — after their current task."""
    vol = context()
    slot = await _slot(vol, slot_key)
    if slot is None:
        return []
    async with vol.sessions() as session:
        here = {a.public_id for _b, a in await _booked(session, slot, BookingStatus.BOOKED)}
        following = await vol.plan.slot_at(slot.end)
        staying: set[str] = set()
        if following is not None:
            staying = {
                a.public_id for _b, a in await _booked(session, following, BookingStatus.BOOKED)
            }
    ended = []
    for vid in sorted(here - staying):
        if await _off_duty_after_task(vol, vid, END_REASON):
            ended.append(vid)
    await _log(vol, f"slot:{slot_key}:end", "slot_end", slot, ended=ended)
    return ended


async def end_sweep(reason: str) -> list[str]:
    """After the grace: log out those paused for that reason whose task is now done."""
    vol = context()
    out = []
    for v in await vol.engine.volunteers():
        if (
            v.presence is Presence.PAUSED
            and v.reason == reason
            and not (v.load_voice or v.load_chat)
        ):
            try:
                await vol.engine.set_presence(v.id, Presence.LOGGED_OUT, reason)
            except RoutingError:
                continue
            out.append(v.id)
    return out


async def _forget_lost_presence(vol: Volunteers, *vids: str) -> None:
    # Their connection may have dropped just before: coming back after their duty ended,
    # the console must not make them available again (it gives back a lost presence).
    if vids:
        await vol.redis.delete(*(vol.lost_key(vid) for vid in vids))


async def _off_duty_after_task(vol: Volunteers, vid: str, reason: str) -> bool:
    """Idle: logged out now. Busy: paused (no new offers) until the sweep logs them out."""
    volunteer = await vol.engine.volunteer(vid)
    if volunteer is None:
        return False
    if volunteer.presence is Presence.LOGGED_OUT:
        await _forget_lost_presence(vol, vid)
        return False
    busy = bool(volunteer.load_voice or volunteer.load_chat or volunteer.reserved)
    try:
        await vol.engine.set_presence(vid, Presence.PAUSED if busy else Presence.LOGGED_OUT, reason)
    except RoutingError:
        return False
    return True


async def line_open() -> bool:
    """The line opens (per opening hours, not on holidays): recorded for the day.

    Planned ahead from the hours of the time; checked again now, since coordinators may
    have changed the hours or closed the line since.
    """
    vol = context()
    today = paris(now_of(vol)).date()
    if not await vol.plan.open_at(now_of(vol)):
        return False
    return await _log(vol, f"line:{today}:{paris(now_of(vol)):%H%M}:open", "line_open", None)


async def line_close() -> list[str]:
    """The line closes: everyone still on duty goes off after their current task."""
    vol = context()
    today = paris(now_of(vol)).date()
    if await vol.plan.open_at(now_of(vol)):
        return []  # the hours were extended since this job was planned
    ended, away = [], []
    for v in await vol.engine.volunteers():
        if v.presence is Presence.LOGGED_OUT:
            away.append(v.id)
        elif await _off_duty_after_task(vol, v.id, CLOSE_REASON):
            ended.append(v.id)
    await _forget_lost_presence(vol, *away)
    await _log(
        vol, f"line:{today}:{paris(now_of(vol)):%H%M}:close", "line_close", None, ended=ended
    )
    return ended


def slot_jobs(vol: Volunteers, slot: Slot) -> list[tuple[str, str, datetime, list[Any]]]:
    """The jobs of one slot: (id, function reference, run date, args)."""
    s = vol.settings
    key = slot.key
    jobs = [
        (
            f"slot:{key}:remind{m}",
            "volunteers.jobs:remind",
            slot.start - timedelta(minutes=m),
            [key, m],
        )
        for m in s.reminders_before_min
    ]
    jobs += [
        (f"slot:{key}:start", "volunteers.jobs:slot_start", slot.start, [key]),
        (
            f"slot:{key}:noshow",
            "volunteers.jobs:no_show",
            slot.start + timedelta(minutes=s.no_show_after_min),
            [key],
        ),
        (f"slot:{key}:end", "volunteers.jobs:slot_end", slot.end, [key]),
        (
            f"slot:{key}:sweep",
            "volunteers.jobs:end_sweep",
            slot.end + timedelta(minutes=s.end_grace_min),
            [f"{END_REASON};{CLOSE_REASON}"],
        ),
    ]
    return jobs


__all__ = [
    "CONTEXT",
    "end_sweep",
    "line_close",
    "line_open",
    "no_show",
    "remind",
    "slot_end",
    "slot_jobs",
    "slot_start",
]
