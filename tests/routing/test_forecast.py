"""Forecast of contacts per weekday × half hour, and volunteers needed per slot."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from routing.erlang import ErlangA
from routing.forecast import (
    ForecastError,
    StaffingTarget,
    half_hour_counts,
    need_for_slot,
    seasonal_smoothing,
    volunteers_needed,
    weekday_average,
)

MONDAYS = [date(2026, 11, 2), date(2026, 11, 9), date(2026, 11, 16)]


def _day(slot_counts: dict[int, int]) -> list[int]:
    counts = [0] * 48
    for slot, n in slot_counts.items():
        counts[slot] = n
    return counts


def test_weekday_average_per_half_hour() -> None:
    daily = {MONDAYS[0]: _day({18: 10}), MONDAYS[1]: _day({18: 20}), MONDAYS[2]: _day({18: 30}),
             date(2026, 11, 3): _day({18: 7})}  # fmt: skip
    f = weekday_average(daily)
    assert f[(0, 18)] == pytest.approx(20.0)  # Mondays 9:00-9:30
    assert f[(1, 18)] == pytest.approx(7.0)  # the one Tuesday
    assert f[(0, 19)] == 0.0 and f[(6, 18)] == 0.0  # no Sunday seen: zero
    assert len(f) == 7 * 48


def test_seasonal_smoothing_follows_the_newest_weeks() -> None:
    daily = {MONDAYS[0]: _day({18: 10}), MONDAYS[1]: _day({18: 20}), MONDAYS[2]: _day({18: 30})}
    f = seasonal_smoothing(daily, alpha=0.5)
    # 10 -> 0.5*20 + 0.5*10 = 15 -> 0.5*30 + 0.5*15 = 22.5 (above the plain mean of 20)
    assert f[(0, 18)] == pytest.approx(22.5)
    with pytest.raises(ForecastError):
        seasonal_smoothing(daily, alpha=0)


def test_half_hour_counts_from_arrivals() -> None:
    daily = half_hour_counts([datetime(2026, 11, 2, 9, 5), datetime(2026, 11, 2, 9, 29, 59),
                              datetime(2026, 11, 2, 9, 30)])  # fmt: skip
    assert daily[date(2026, 11, 2)][18] == 2 and daily[date(2026, 11, 2)][19] == 1


def test_bad_history_is_refused() -> None:
    with pytest.raises(ForecastError):
        weekday_average({})
    with pytest.raises(ForecastError):
        weekday_average({MONDAYS[0]: [1, 2, 3]})
    with pytest.raises(ForecastError):
        StaffingTarget(service_level=1.2)


def test_volunteers_needed_meet_the_target_and_no_fewer_would() -> None:
    """30 calls in a half hour, 10-minute calls, 5-minute patience, 80 % within 60 s."""
    target = StaffingTarget(aht_s=600, service_level=0.8, threshold_s=60, patience_s=300)
    f = {(wd, s): 0.0 for wd in range(7) for s in range(48)}
    f[(0, 18)] = 30.0
    needs = volunteers_needed(f, target)
    n = needs[(0, 18)]
    rate = 30 / 1800
    assert ErlangA(n, rate, 600, 300).service_level(60) >= 0.8
    assert ErlangA(n - 1, rate, 600, 300).service_level(60) < 0.8
    assert needs[(0, 19)] == 0
    # A two-hour slot from 8:00 to 10:00 must cover its busiest half hour (9:00-9:30).
    assert need_for_slot(needs, datetime(2026, 11, 23, 8, 0), datetime(2026, 11, 23, 10, 0)) == n
    assert need_for_slot(needs, datetime(2026, 11, 23, 10, 0), datetime(2026, 11, 23, 12, 0)) == 0
    assert need_for_slot(needs, datetime(2026, 11, 24, 8, 0), datetime(2026, 11, 24, 10, 0)) == 0
