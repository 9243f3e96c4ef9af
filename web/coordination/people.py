"""What the volunteers' tables tell coordinators: today's slots, bookings, wrap-ups."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from routing.territory import Territories
from volunteers.models import Account, Booking, BookingStatus, WrapUp
from volunteers.slots import Slot as VolunteerSlot
from volunteers.slots import SlotPlan
from volunteers.targets import ForecastProvider, slot_goals
from web.coordination.history import run
from web.coordination.live import Slots, day_end_ms, day_start_ms
from web.coordination.reports import Period, VolunteerInfo


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _ms(moment: datetime) -> int:
    if moment.tzinfo is None:  # SQLite gives naive datetimes back: they were stored in UTC
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


async def load_slots(
    session: AsyncSession,
    now_ms: int,
    day: str,
    plan: SlotPlan,
    fallback: int,
    forecast: ForecastProvider | None = None,
) -> Slots:
    """Today's slots, booked vs target each, and who is booked in the current one.

    Every slot of the day's opening hours is listed, booked or not (an empty slot is
    what a coordinator most needs to see); targets come from volunteers.targets.
    """
    start, end = _dt(day_start_ms(day)), _dt(day_end_ms(day))
    rows = (
        await run(session,
            select(Booking.slot_start, Booking.slot_end, Account.public_id, Account.name)
            .join(Account, Account.id == Booking.account_id)
            .where(
                Booking.slot_start >= start,
                Booking.slot_start < end,
                Booking.status == BookingStatus.BOOKED.value,
            )
        )
    ).all()
    planned = {
        s.start: s for s in await plan.slots_on(datetime.strptime(day, "%Y-%m-%d").date())
    }
    open_starts = set(planned)
    booked: Counter[datetime] = Counter()
    people: dict[datetime, dict[str, str]] = defaultdict(dict)
    for slot_start, slot_end, public_id, name in rows:
        s = _dt(_ms(slot_start))
        # Bookings outside today's plan (hours changed or a closure since) still show,
        # flagged « créneau fermé », so coordinators can tell those volunteers.
        planned.setdefault(s, VolunteerSlot(s, _dt(_ms(slot_end))))
        booked[s] += 1
        people[s][public_id] = name
    slots = [planned[s] for s in sorted(planned)]
    goals = await slot_goals(session, slots, fallback, forecast)  # type: ignore[arg-type]
    day_slots = [
        {
            "start_ms": _ms(s.start),
            "end_ms": _ms(s.end),
            "booked": booked[s.start],
            "target": goals[s.start].target,
            "target_source": goals[s.start].source.value,
            "target_source_label": goals[s.start].source_label,
            "forecast": goals[s.start].forecast,
            "closed": s.start not in open_starts,
        }
        for s in slots
    ]
    current = next((x for x in day_slots if x["start_ms"] <= now_ms < x["end_ms"]), None)
    if current is None:
        upcoming = [x["start_ms"] for x in day_slots if x["start_ms"] > now_ms]
        return Slots(None, min(upcoming) if upcoming else None, 0, 0, {}, day_slots)
    return Slots(
        current["start_ms"], current["end_ms"], current["booked"], current["target"],
        people[_dt(current["start_ms"])], day_slots,
        target_source=current["target_source"],
        target_source_label=current["target_source_label"],
    )


async def volunteer_info(
    session: AsyncSession, period: Period, territories: Territories, now_ms: int
) -> VolunteerInfo:
    """Names and territories of volunteers, their bookings and the wrap-ups of a period."""
    info = VolunteerInfo()
    for public_id, name, dep in (
        await run(session, select(Account.public_id, Account.name, Account.departement))
    ).all():
        info.names[public_id] = name
        info.departements[public_id] = dep
        if dep in territories.departements:
            info.regions[public_id] = territories.departements[dep].region
    start, end = _dt(day_start_ms(period.days()[0])), _dt(day_end_ms(period.days()[-1]))
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for public_id, slot_start, present_at, no_show_at in (
        await run(session, 
            select(Account.public_id, Booking.slot_start, Booking.present_at, Booking.no_show_at)
            .join(Account, Account.id == Booking.account_id)
            .where(
                Booking.slot_start >= start,
                Booking.slot_start < end,
                Booking.status == BookingStatus.BOOKED.value,
            )
        )
    ).all():
        if _ms(slot_start) > now_ms:
            continue  # adherence is about slots that have started
        c = counts[public_id]
        c["booked"] += 1
        c["attended"] += present_at is not None
        c["no_show"] += no_show_at is not None
    info.bookings = {vid: (c["booked"], c["attended"], c["no_show"]) for vid, c in counts.items()}
    margin = timedelta(days=1)
    info.wrapup_rows = [
        (task_id, outcome, referral)
        for task_id, outcome, referral in (
            await run(session, 
                select(WrapUp.task_id, WrapUp.outcome, WrapUp.referral).where(
                    WrapUp.created_at >= start - margin, WrapUp.created_at < end + margin
                )
            )
        ).all()
    ]
    return info
