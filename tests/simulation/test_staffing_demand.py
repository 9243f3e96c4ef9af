"""Volunteers needed per slot from the recorded contacts, or from the trace without history."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel.ext.asyncio.session import AsyncSession

from routing.clock import PARIS
from routing.erlang import ErlangA
from routing.forecast import StaffingTarget
from web.coordination.models import Contact
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
    d = await demand(db_session, line, NOW, target=TARGET)
    assert d.source == "history"
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
