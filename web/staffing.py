"""Volunteers needed per half hour, from the line's recorded contacts or, before there is
enough history, from the reference trace.

Reads the ``contact`` history table (one row per call, chat or callback) and hands the
half-hour counts to ``routing.forecast``. The trace is a bank's call centre (~1,900
calls a weekday): only its shape over the week is kept, scaled to the line's expected
daily volume (``FORECAST_CONTACTS_PER_DAY``). Callers (slot targets, the dashboard's
coverage view) take ``Demand.for_slot``; a coordinator's SlotTarget still overrides it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
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
from web.settings import FORECAST_CONTACTS_PER_DAY
from web.simulation.trace import DEFAULT_TRACE_FILE, daily_counts, load_trace

log = logging.getLogger(__name__)

MIN_HISTORY_DAYS = 14  # two weeks: every weekday seen twice
RETRY_AFTER_FAILURE_S = 30.0  # a failing computation is retried this soon, not on every page


@dataclass(frozen=True)
class Demand:
    """Forecast contacts and volunteers needed per (weekday, half hour), and their source."""

    source: str  # "history" or "trace"
    forecast: Forecast
    needs: dict[tuple[int, int], int]
    aht_s: float
    contacts_per_day: float | None = None  # what the trace was scaled to (source "trace")

    def for_slot(self, start: datetime, end: datetime) -> int:
        """Volunteers a booking slot needs (its busiest half hour), times in any zone."""
        return need_for_slot(self.needs, start.astimezone(PARIS), end.astimezone(PARIS))


@lru_cache(maxsize=4)
def _trace_shape(trace: Path) -> tuple[dict[date, list[int]], float]:
    """The trace's daily counts and mean service time, parsed once per process (read-only)."""
    days = load_trace(trace)
    answered = [c.service_s for d in days.values() for c in d.calls if c.answered]
    return daily_counts(days), sum(answered) / len(answered)


def ordinary_weekday_total(forecast: Forecast) -> float:
    """Mean forecast contacts of a Monday-to-Friday day."""
    return sum(v for (wd, _), v in forecast.items() if wd < 5) / 5


def scaled_to(forecast: Forecast, contacts_per_day: float) -> Forecast:
    """The forecast's shape over the week, with an ordinary weekday totalling that many.

    One factor for the whole week: busier Mondays, quiet Saturdays and each day's curve
    stay as the trace has them.
    """
    total = ordinary_weekday_total(forecast)
    if total <= 0:
        return forecast
    factor = contacts_per_day / total
    return {key: v * factor for key, v in forecast.items()}


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
    contacts_per_day: float = FORECAST_CONTACTS_PER_DAY,
) -> Demand:
    """The forecast and needs from the last weeks of history, or, without it, the trace's
    shape scaled to ``contacts_per_day`` on an ordinary weekday."""
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
        daily, aht = await asyncio.to_thread(_trace_shape, trace)
        source = "trace"
    scale = contacts_per_day if source == "trace" else None
    sized = StaffingTarget(
        aht_s=aht,
        service_level=target.service_level,
        threshold_s=target.threshold_s,
        patience_s=target.patience_s,
    )
    # Erlang sizing of a whole week is ~0.3 s of pure Python: off the event loop, so the
    # process's sockets keep being served meanwhile (the GIL is handed back regularly).
    forecast, needs = await asyncio.to_thread(_size, daily, sized, scale)
    return Demand(source=source, forecast=forecast, needs=needs, aht_s=aht, contacts_per_day=scale)


def _size(
    daily: dict[date, list[int]], target: StaffingTarget, contacts_per_day: float | None
) -> tuple[Forecast, dict[tuple[int, int], int]]:
    forecast = seasonal_smoothing(daily)
    if contacts_per_day is not None:
        forecast = scaled_to(forecast, contacts_per_day)
    return forecast, volunteers_needed(forecast, target)


class DemandCache:
    """The line's Demand, recomputed at most every ``ttl_s`` in this process.

    Computing it reads weeks of contact history (or parses the trace) and runs Erlang
    sizing, about half a second: far too much for every page view and dashboard
    refresh, while the forecast moves by the day, not the minute. Concurrent callers
    share one computation (a lock, checked again inside). A failure keeps the last good
    forecast (or None: targets fall back) and is retried after RETRY_AFTER_FAILURE_S.
    """

    def __init__(
        self,
        sessions: Callable[[], AbstractAsyncContextManager[AsyncSession]],
        line: str,
        now_ms: Callable[[], int],
        *,
        ttl_s: float = 300.0,
        target: StaffingTarget | None = None,
        trace: Path = DEFAULT_TRACE_FILE,
        contacts_per_day: float = FORECAST_CONTACTS_PER_DAY,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sessions = sessions
        self.line = line
        self.now_ms = now_ms
        self.ttl_s = ttl_s
        self.target = target
        self.trace = trace
        self.contacts_per_day = contacts_per_day
        self.timer = timer
        self.computations = 0  # how many times the history was read (tests, logs)
        self._value: Demand | None = None
        self._next_at = float("-inf")
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        """Recompute on the next read (e.g. after a bulk import of history)."""
        self._next_at = float("-inf")

    async def get(self) -> Demand | None:
        if self.timer() < self._next_at:
            return self._value
        async with self._lock:
            if self.timer() < self._next_at:  # another caller computed it meanwhile
                return self._value
            now = datetime.fromtimestamp(self.now_ms() / 1000, UTC)
            try:
                async with self.sessions() as session:
                    value = await demand(
                        session,
                        self.line,
                        now,
                        target=self.target,
                        trace=self.trace,
                        contacts_per_day=self.contacts_per_day,
                    )
            except Exception:
                log.exception("could not compute the staffing forecast; keeping the last one")
                self._next_at = self.timer() + min(self.ttl_s, RETRY_AFTER_FAILURE_S)
                return self._value
            self.computations += 1
            self._value, self._next_at = value, self.timer() + self.ttl_s
            return value

    async def __call__(self) -> Demand | None:
        """So the cache itself is the ForecastProvider volunteers/ expects."""
        return await self.get()
