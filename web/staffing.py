"""Volunteers needed per half hour, from the line's recorded contacts or, before there is
enough history, from the reference trace.

Reads the ``contact`` history table (one row per call, chat or callback) and hands the
half-hour counts to ``routing.forecast``. Callers (slot targets, the dashboard's
coverage view) take ``Demand.for_slot``; a coordinator's SlotTarget still overrides it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from routing.clock import PARIS
from routing.forecast import (
    Forecast,
    StaffingTarget,
    half_hour_counts,
    need_for_slot,
    seasonal_smoothing,
    volunteers_needed,
)
from web.coordination.models import Contact
from web.simulation.trace import DEFAULT_TRACE_FILE, daily_counts, load_trace

MIN_HISTORY_DAYS = 14  # two weeks: every weekday seen twice


@dataclass(frozen=True)
class Demand:
    """Forecast contacts and volunteers needed per (weekday, half hour), and their source."""

    source: str  # "history" or "trace"
    forecast: Forecast
    needs: dict[tuple[int, int], int]
    aht_s: float

    def for_slot(self, start: datetime, end: datetime) -> int:
        """Volunteers a booking slot needs (its busiest half hour), times in any zone."""
        return need_for_slot(self.needs, start.astimezone(PARIS), end.astimezone(PARIS))


async def history_counts(
    session: AsyncSession, line: str, since: datetime, until: datetime
) -> dict[date, list[int]]:
    """Contacts that arrived on the line in [since, until), per Paris day and half hour."""
    rows = await session.exec(  # type: ignore[call-overload]
        select(Contact.created_ms).where(
            Contact.line == line,
            Contact.created_ms >= int(since.timestamp() * 1000),
            Contact.created_ms < int(until.timestamp() * 1000),
        )
    )
    arrivals = [
        datetime.fromtimestamp(ms / 1000, UTC).astimezone(PARIS).replace(tzinfo=None)
        for (ms,) in rows
        if ms is not None
    ]
    return half_hour_counts(arrivals)


async def history_aht_s(session: AsyncSession, line: str, since: datetime) -> float | None:
    """Mean handle time including wrap-up of contacts completed since then, if any."""
    row = await session.exec(  # type: ignore[call-overload]
        select(func.avg(Contact.handle_ms + func.coalesce(Contact.wrapup_ms, 0))).where(
            Contact.line == line,
            Contact.handle_ms.is_not(None),
            Contact.created_ms >= int(since.timestamp() * 1000),
        )
    )
    value = row.one()[0]
    return float(value) / 1000 if value else None


async def demand(
    session: AsyncSession,
    line: str,
    now: datetime,
    *,
    target: StaffingTarget | None = None,
    weeks: int = 8,
    trace: Path = DEFAULT_TRACE_FILE,
) -> Demand:
    """The forecast and needs from the last weeks of history, or the trace without it."""
    since = now - timedelta(weeks=weeks)
    daily = await history_counts(session, line, since, now)
    target = target or StaffingTarget()
    if len(daily) >= MIN_HISTORY_DAYS:
        aht = await history_aht_s(session, line, since) or target.aht_s
        # Days without any contact since the first recorded one count (as zeros).
        day, last = min(daily), now.astimezone(PARIS).date()
        while day < last:
            daily.setdefault(day, [0] * 48)
            day += timedelta(days=1)
        source = "history"
    else:
        days = load_trace(trace)
        daily = daily_counts(days)
        answered = [c.service_s for d in days.values() for c in d.calls if c.answered]
        aht = sum(answered) / len(answered)
        source = "trace"
    forecast = seasonal_smoothing(daily)
    sized = StaffingTarget(
        aht_s=aht,
        service_level=target.service_level,
        threshold_s=target.threshold_s,
        patience_s=target.patience_s,
    )
    needs = volunteers_needed(forecast, sized)
    return Demand(source=source, forecast=forecast, needs=needs, aht_s=aht)
