"""Volunteers needed per slot from the recorded contacts, or from the trace without history."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from routing.clock import PARIS
from routing.erlang import ErlangA
from routing.forecast import StaffingTarget, seasonal_smoothing
from web.coordination.models import Contact
from web.settings import FORECAST_CONTACTS_PER_DAY, Settings
from web.simulation.trace import DEFAULT_TRACE_FILE, daily_counts, load_trace
from web.staffing import demand

NOW = datetime(2026, 11, 23, 7, 0, tzinfo=PARIS)  # a Monday morning
TARGET = StaffingTarget(aht_s=600, service_level=0.8, threshold_s=60, patience_s=300)


async def test_history_drives_the_need_of_each_slot(db_session: AsyncSession, line: str):
    """Three weeks of history: 20 calls every weekday 9:00-9:30, 10-minute calls."""
    n = 0
    for day in range(1, 22):
        when = NOW - timedelta(days=day)
        if when.weekday() >= 5:
            continue
        for i in range(20):
            at = when.replace(hour=9, minute=0) + timedelta(seconds=80 * i)
            n += 1
            db_session.add(Contact(line=line, task_id=f"t{n}", day=at.date().isoformat(),
                                   created_ms=int(at.timestamp() * 1000), handle_ms=540_000,
                                   wrapup_ms=60_000))  # fmt: skip
    await db_session.commit()
    # The trace's daily volume plays no part once the line has its own history.
    d = await demand(db_session, line, NOW, target=TARGET, contacts_per_day=5)
    assert d.source == "history" and d.contacts_per_day is None
    assert d.aht_s == 600
    assert round(d.forecast[(0, 18)], 6) == 20.0  # Monday 9:00-9:30
    need = d.for_slot(NOW.replace(hour=8), NOW.replace(hour=10))
    assert ErlangA(need, 20 / 1800, 600, 300).service_level(60) >= 0.8
    assert ErlangA(need - 1, 20 / 1800, 600, 300).service_level(60) < 0.8
    assert d.for_slot(NOW.replace(hour=14), NOW.replace(hour=16)) == 0
    saturday = NOW + timedelta(days=5)
    assert d.for_slot(saturday.replace(hour=8), saturday.replace(hour=10)) == 0


async def test_without_history_the_trace_gives_the_shape(db_session: AsyncSession, line: str):
    d = await demand(db_session, line, NOW, target=TARGET)
    assert d.source == "trace"
    assert 150 < d.aht_s < 260  # the trace's mean service time
    morning = d.for_slot(NOW.replace(hour=10), NOW.replace(hour=12))
    night = d.for_slot(NOW.replace(hour=3), NOW.replace(hour=5))
    assert morning > night


async def test_the_trace_keeps_its_shape_at_the_lines_daily_volume(
    db_session: AsyncSession, line: str
):
    """The bank's ~1,900 calls a weekday become the line's expected contacts per day."""
    raw = seasonal_smoothing(daily_counts(load_trace(DEFAULT_TRACE_FILE)))
    raw_weekday = sum(raw[(wd, s)] for wd in range(5) for s in range(48)) / 5
    assert raw_weekday > 1500  # as is, the trace is a bank's volume, not a helpline's
    assert Settings.model_fields["forecast_contacts_per_day"].default == FORECAST_CONTACTS_PER_DAY
    for per_day in (FORECAST_CONTACTS_PER_DAY, 40.0, 600.0):
        d = await demand(db_session, line, NOW, target=TARGET, contacts_per_day=per_day)
        assert d.source == "trace" and d.contacts_per_day == per_day
        days = [sum(d.forecast[(wd, s)] for s in range(48)) for wd in range(7)]
        assert sum(days[:5]) / 5 == pytest.approx(per_day, rel=1e-9)
        # Every half hour of the week keeps its share: Mondays stay busier than Fridays,
        # Saturdays quiet, mornings as the trace has them.
        for key, contacts in raw.items():
            assert d.forecast[key] == pytest.approx(contacts * per_day / raw_weekday, abs=1e-9)
        assert days[0] > days[4] > days[5] > days[6]
