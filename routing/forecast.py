"""Forecast of contacts per half hour, and the volunteers needed to answer them.

Pure functions over counts: the callers of this module read history (SQL, a trace)
and hand over, for each past day, its 48 half-hour counts. The forecast is per
weekday × half hour — the shape of a helpline's week — either the plain average of
past weeks or an exponentially smoothed one that follows a trend (Holt-Winters'
seasonal part without trend, the usual workforce-management choice for short series).
Needs come from Erlang A (callers hang up) or Erlang C.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from routing.erlang import servers_needed

SLOTS_PER_DAY = 48
HALF_HOUR_S = 1800

# (weekday 0 = Monday, half-hour index 0..47) -> expected contacts
Forecast = dict[tuple[int, int], float]


class ForecastError(ValueError):
    """The history or the parameters cannot give a forecast."""


def _check_days(daily: Mapping[date, list[int]]) -> None:
    for day, counts in daily.items():
        if len(counts) != SLOTS_PER_DAY:
            raise ForecastError(f"{day}: expected 48 half-hour counts, got {len(counts)}")
        if any(c < 0 for c in counts):
            raise ForecastError(f"{day}: counts cannot be negative")


def weekday_average(daily: Mapping[date, list[int]]) -> Forecast:
    """Mean contacts per weekday × half hour over the days given (days absent = unknown)."""
    _check_days(daily)
    if not daily:
        raise ForecastError("no history to forecast from")
    sums: dict[tuple[int, int], float] = defaultdict(float)
    days_per_weekday: dict[int, int] = defaultdict(int)
    for day, counts in daily.items():
        wd = day.weekday()
        days_per_weekday[wd] += 1
        for slot, n in enumerate(counts):
            sums[(wd, slot)] += n
    return {
        (wd, slot): sums[(wd, slot)] / days_per_weekday[wd] if days_per_weekday[wd] else 0.0
        for wd in range(7)
        for slot in range(SLOTS_PER_DAY)
    }


def seasonal_smoothing(daily: Mapping[date, list[int]], alpha: float = 0.3) -> Forecast:
    """Exponential smoothing of each weekday × half hour across weeks, oldest first.

    Recent weeks weigh more (alpha is the weight of the newest); a weekday never seen
    forecasts zero.
    """
    if not 0 < alpha <= 1:
        raise ForecastError("alpha must be in (0, 1]")
    _check_days(daily)
    if not daily:
        raise ForecastError("no history to forecast from")
    level: dict[tuple[int, int], float] = {}
    for day in sorted(daily):
        wd = day.weekday()
        for slot, n in enumerate(daily[day]):
            key = (wd, slot)
            level[key] = n if key not in level else alpha * n + (1 - alpha) * level[key]
    return {(wd, s): level.get((wd, s), 0.0) for wd in range(7) for s in range(SLOTS_PER_DAY)}


def half_hour_counts(arrivals: list[datetime] | list[tuple[date, int]]) -> dict[date, list[int]]:
    """Daily 48-slot counts from arrival times (local time) or (day, seconds since midnight)."""
    daily: dict[date, list[int]] = {}
    for item in arrivals:
        if isinstance(item, datetime):
            day, secs = item.date(), item.hour * 3600 + item.minute * 60 + item.second
        else:
            day, secs = item
        if not 0 <= secs < 24 * 3600:
            raise ForecastError("time of day out of range")
        daily.setdefault(day, [0] * SLOTS_PER_DAY)[int(secs // HALF_HOUR_S)] += 1
    return daily


@dataclass(frozen=True)
class StaffingTarget:
    """What the volunteers must achieve and what a contact costs them."""

    aht_s: float = 600.0  # handle time incl. wrap-up; procedures take long (trace: ~200 s)
    service_level: float = 0.8  # share answered within threshold_s
    threshold_s: float = 60.0  # DESIGN.md's T
    patience_s: float | None = 300.0  # mean patience for Erlang A (None: Erlang C)

    def __post_init__(self) -> None:
        if self.aht_s <= 0 or self.threshold_s < 0:
            raise ForecastError("handle time must be > 0 and threshold >= 0")
        if not 0 < self.service_level < 1:
            raise ForecastError("service level must be between 0 and 1 (exclusive)")
        if self.patience_s is not None and self.patience_s <= 0:
            raise ForecastError("patience must be > 0")


def volunteers_needed(forecast: Forecast, target: StaffingTarget) -> dict[tuple[int, int], int]:
    """Volunteers needed on duty in each weekday × half hour to meet the target."""
    cache: dict[float, int] = {}
    out: dict[tuple[int, int], int] = {}
    for key, contacts in forecast.items():
        # A forecast is not precise to half a contact: rounding lets half hours share work.
        rate = round(contacts * 2) / 2 / HALF_HOUR_S
        if rate not in cache:
            cache[rate] = servers_needed(
                rate,
                target.aht_s,
                target_sl=target.service_level,
                t_s=target.threshold_s,
                patience_s=target.patience_s,
            )
        out[key] = cache[rate]
    return out


def need_for_slot(needs: Mapping[tuple[int, int], int], start: datetime, end: datetime) -> int:
    """Volunteers a booking slot needs: the most any of its half hours needs.

    start and end are local (Europe/Paris) times; a volunteer books the whole slot, so
    the slot must cover its busiest half hour.
    """
    if end <= start:
        raise ForecastError("a slot must end after it starts")
    best, t = 0, start.replace(minute=start.minute - start.minute % 30, second=0, microsecond=0)
    while t < end:
        best = max(best, needs.get((t.weekday(), (t.hour * 60 + t.minute) // 30), 0))
        t += timedelta(minutes=30)
    return best
