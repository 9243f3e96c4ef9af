"""Slot targets: a coordinator's override, else the forecast need, else the fallback.

The forecast is the real one (web.staffing over this test's database): the reference
trace before there is history, the recorded contacts once there are 14 days of them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlmodel.ext.asyncio.session import AsyncSession

from routing.clock import PARIS
from routing.erlang import ErlangA
from volunteers.bookings import Bookings
from volunteers.settings import VolunteersSettings
from volunteers.targets import SlotGoal, TargetSource, decide
from web.coordination.models import Contact
from web.staffing import DemandCache

NOW = datetime(2026, 11, 23, 8, 0, tzinfo=PARIS)  # Monday morning
MONDAY = date(2026, 11, 23)


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, 0, tzinfo=PARIS).astimezone(UTC)


async def add_history(
    session: AsyncSession, line: str, first: int, last: int, per_day: int = 20
) -> int:
    """``per_day`` ten-minute calls at 9:00–9:30 on each weekday from ``first`` to ``last``
    days back; returns how many days got contacts."""
    seen = 0
    for back in range(first, last + 1):
        day = NOW - timedelta(days=back)
        if day.weekday() >= 5:
            continue
        seen += 1
        for i in range(per_day):
            moment = day.replace(hour=9, minute=0) + timedelta(seconds=80 * i)
            session.add(Contact(
                line=line, task_id=f"h{back}-{i}", day=moment.date().isoformat(),
                created_ms=int(moment.timestamp() * 1000), handle_ms=540_000, wrapup_ms=60_000,
            ))  # fmt: skip
    await session.commit()
    return seen


def cache_for(database, line: str, **kw) -> DemandCache:  # noqa: ANN001
    return DemandCache(database.session, line, lambda: int(NOW.timestamp() * 1000), **kw)


def test_the_rule_override_then_forecast_then_fallback() -> None:
    assert decide(5, 2, 3) == SlotGoal(5, TargetSource.COORDINATOR, 2)
    assert decide(0, 2, 3).target == 0  # a coordinator may ask for nobody
    assert decide(None, 4, 3) == SlotGoal(4, TargetSource.FORECAST, 4)
    assert decide(None, 0, 3) == SlotGoal(1, TargetSource.FORECAST, 0)  # open: someone answers
    assert decide(None, None, 3) == SlotGoal(3, TargetSource.FALLBACK, None)
    assert decide(None, None, 3).source_label == "valeur par défaut"
    assert decide(2, None, 3).source_label == "fixé par un coordinateur"
    assert decide(None, 2, 3).source_label == "prévision"


async def test_before_history_the_trace_sets_the_targets(
    db_session: AsyncSession, database, line: str, vsettings: VolunteersSettings
) -> None:
    cache = cache_for(database, line)
    demand = await cache.get()
    assert demand is not None and demand.source == "trace"
    week = await Bookings(db_session, vsettings, cache).week(MONDAY)
    assert week and all(n.source is TargetSource.FORECAST for n in week)
    for need in week:
        assert need.target == max(1, demand.for_slot(need.slot.start, need.slot.end))
    # The trace's shape at the line's volume: a busy morning, a quieter end of the day,
    # and an ordinary weekday's slots within what a slot can hold (the trace as is, a
    # bank's ~1,900 calls a day, asked for 8-12 volunteers a slot).
    assert demand.forecast[(0, 20)] > demand.forecast[(0, 35)] > 0  # Monday 10:00, 17:30
    slot_max = VolunteersSettings(secret_key="k").slot_max
    weekday = [n.target for n in week if n.slot.start.astimezone(PARIS).weekday() < 5]
    assert weekday and all(1 <= t <= slot_max for t in weekday)
    monday = {n.slot.start: n.target for n in week}
    assert await Bookings(db_session, vsettings, cache).target(at(23, 9)) == monday[at(23, 9)]


async def test_history_takes_over_from_fourteen_days(
    db_session: AsyncSession, database, line: str, vsettings: VolunteersSettings
) -> None:
    # 13 days with contacts: not enough, the trace still speaks.
    assert await add_history(db_session, line, 1, 19) == 13
    cache = cache_for(database, line)
    assert (await cache.get()).source == "trace"
    trace_week = {
        n.slot.start: n.target for n in await Bookings(db_session, vsettings, cache).week(MONDAY)
    }

    # Another weekday of contacts makes 14: the line's own history decides.
    assert await add_history(db_session, line, 20, 20) == 1
    cache.invalidate()
    demand = await cache.get()
    assert demand.source == "history"
    week = await Bookings(db_session, vsettings, cache).week(MONDAY)
    targets = {n.slot.start: n.target for n in week}
    need = targets[at(23, 9)]  # 20 ten-minute calls between 9:00 and 9:30 on Mondays
    assert ErlangA(need, 20 / 1800, 600, 300).service_level(60) >= 0.8
    assert ErlangA(need - 1, 20 / 1800, 600, 300).service_level(60) < 0.8
    assert targets[at(23, 11)] == 1  # no contact at that time: one volunteer still answers
    assert targets != trace_week
    assert all(n.source is TargetSource.FORECAST for n in week)


async def test_a_coordinators_override_wins_and_can_be_undone(
    db_session: AsyncSession, database, line: str, vsettings: VolunteersSettings
) -> None:
    cache = cache_for(database, line)
    book = Bookings(db_session, vsettings, cache)
    forecast = (await cache.get()).for_slot(at(24, 13), at(24, 15))
    await book.set_target(at(24, 13), forecast + 4)
    need = next(n for n in await book.week(MONDAY) if n.slot.start == at(24, 13))
    assert (need.target, need.source) == (forecast + 4, TargetSource.COORDINATOR)
    goal = (await book.goals([need.slot]))[need.slot.start]
    assert goal.forecast == forecast  # the forecast stays visible beside the override
    assert await book.clear_target(at(24, 13))
    assert not await book.clear_target(at(24, 13))
    need = next(n for n in await book.week(MONDAY) if n.slot.start == at(24, 13))
    assert (need.target, need.source) == (max(1, forecast), TargetSource.FORECAST)


async def test_without_forecast_the_configured_fallback(
    db_session: AsyncSession, database, line: str
) -> None:
    settings = VolunteersSettings(secret_key="k", slot_target=4)
    week = await Bookings(db_session, settings).week(MONDAY)
    assert {(n.target, n.source) for n in week} == {(4, TargetSource.FALLBACK)}
    # A forecast that cannot be made (no history, trace missing) falls back too.
    broken = cache_for(database, line, trace=Path("/nonexistent/trace.csv"))
    week = await Bookings(db_session, settings, broken).week(MONDAY)
    assert {(n.target, n.source) for n in week} == {(4, TargetSource.FALLBACK)}
    assert broken.computations == 0


async def test_forecast_is_computed_once_per_refresh_period(database, line: str) -> None:
    now = [0.0]
    cache = cache_for(database, line, ttl_s=300, timer=lambda: now[0])
    first = await cache.get()
    now[0] = 299.0
    assert await cache.get() is first and cache.computations == 1
    now[0] = 301.0
    again = await cache.get()
    assert cache.computations == 2 and again is not first


async def test_capacity_caps_what_a_slot_asks_of_volunteers(
    db_session: AsyncSession, make_account, vsettings: VolunteersSettings
) -> None:
    """A forecast above the slot's maximum: a full slot is complete, not 'urgent'."""
    book = Bookings(db_session, vsettings)  # slot_max = 2
    await book.set_target(at(24, 13), 5)
    for name in ("Anne", "Bruno"):
        await book.book(await make_account(name), at(24, 13), NOW.astimezone(UTC))
    need = next(n for n in await book.week(MONDAY) if n.slot.start == at(24, 13))
    assert (need.target, need.booked, need.missing, need.level) == (5, 2, 0, "complet")


async def test_week_view_shows_where_volunteers_are_needed_most(
    web_client, web_app, make_account, db_session: AsyncSession, line: str
) -> None:
    """The volunteers' page, through the whole app: same targets, in French."""
    from tests.volunteers.test_access import _login
    from web.staffing import demand

    anne = await make_account("Anne")
    settings = web_app.state.volunteers.settings  # slot_max 6 by default
    book = Bookings(db_session, settings)
    await book.set_target(at(24, 11), 2)  # a coordinator's override
    await book.book(await make_account("Bruno"), at(24, 11), NOW.astimezone(UTC))
    await _login(web_client, anne.email)
    page = await web_client.get("/benevole/creneaux", headers={"accept": "text/html"})
    assert page.status_code == 200
    html = page.text

    expected = await demand(db_session, line, datetime(2026, 11, 23, 9, 0, tzinfo=PARIS))
    tuesday_9 = max(1, expected.for_slot(at(24, 9), at(24, 11)))
    assert f"{0} / {tuesday_9} bénévoles" in html  # from the forecast (the trace)
    assert "1 / 2 bénévoles" in html  # the override wins
    assert "Besoin urgent : il manque 1 bénévole<" in html

    section = html[html.index("Où nous avons le plus besoin de vous") :]
    section = section[: section.index("</section>")]
    items = section.count("<li")
    assert items == 3
    # Most short first: the clock says Monday 9 h, so Monday 11 h is the first upcoming
    # slot; nobody booked, it lacks its whole forecast target.
    monday_11 = max(1, expected.for_slot(at(23, 11), at(23, 13)))
    assert 1 <= monday_11 <= settings.slot_max
    first = section[section.index("<li") :]
    assert "lundi 23 novembre, 11 h – 13 h" in first[: first.index("</li>")]
    plural = "s" if monday_11 > 1 else ""
    assert f"il manque {monday_11} bénévole{plural}." in first[: first.index("</li>")]
    assert "mardi 24 novembre, 11 h – 13 h" not in section  # short of only one
