"""Today's slots on the dashboard and the week's coverage page: booked vs target, where
each target comes from (forecast or a coordinator), and the override control."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI

from routing.clock import PARIS, ManualClock
from tests.coordination.sessions import Login
from tests.coordination.test_coordination_web import audit_entries, post
from volunteers.bookings import Bookings
from volunteers.web import settings_from
from web.coordination.models import Contact
from web.staffing import demand

SLOT_9H = "2026-11-23T08:00Z"  # Monday 9 h – 11 h in Paris, the ManualClock's first slot


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def etat(http: httpx.AsyncClient, who: Login) -> dict:
    reply = await http.get("/coordination/etat", headers=who.cookies)
    assert reply.status_code == 200
    return reply.json()


async def wait_for_slot(http, who, start_ms: int, predicate, timeout_s: float = 30.0):  # noqa: ANN001
    """The day's slot once the hub has reloaded it (a notice travels through Redis)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        state = await etat(http, who)
        slot = next(d for d in state["slots"]["day"] if d["start_ms"] == start_ms)
        if predicate(slot) or loop.time() > deadline:
            return state, slot
        await asyncio.sleep(0.1)


async def test_dashboard_targets_come_from_the_forecast_then_a_coordinator(
    app: FastAPI,
    client: httpx.AsyncClient,
    coordinator: Login,
    clock: ManualClock,
) -> None:
    now = datetime.fromtimestamp(clock.now_ms() / 1000, UTC)
    runtime = app.state.runtime
    async with runtime.db.session() as session:
        expected = await demand(session, runtime.settings.line, now)
    assert expected.source == "trace"  # a new line: no history yet

    state = await etat(client, coordinator)
    day = state["slots"]["day"]
    # Every slot of the day is listed, booked or not: 9-11, 11-13, 13-15, 15-17, 17-18.
    assert len(day) == 5 and all(d["booked"] == 0 for d in day)
    for d in day:
        start = datetime.fromtimestamp(d["start_ms"] / 1000, UTC)
        end = datetime.fromtimestamp(d["end_ms"] / 1000, UTC)
        assert d["target"] == max(1, expected.for_slot(start, end))
        assert (d["target_source"], d["target_source_label"]) == ("forecast", "prévision")
    current = state["slots"]
    assert current["current_start_ms"] == day[0]["start_ms"]
    assert (current["target"], current["target_source_label"]) == (day[0]["target"], "prévision")

    forecast = day[0]["target"]
    # Without the CSRF token: refused, nothing changes.
    refused = await post(
        client,
        coordinator,
        "/coordination/creneaux/objectif",
        {"creneau": SLOT_9H, "objectif": "7"},
        token=False,
    )
    assert refused.status_code == 403
    # A coordinator's override wins, is audited, and reaches every dashboard.
    done = await post(
        client,
        coordinator,
        "/coordination/creneaux/objectif",
        {"creneau": SLOT_9H, "objectif": str(forecast + 3)},
    )
    assert done.status_code == 200 and done.json()["ok"], done.text
    state, slot = await wait_for_slot(
        client, coordinator, day[0]["start_ms"], lambda s: s["target_source"] == "coordinator"
    )
    assert slot["target"] == forecast + 3
    assert slot["target_source_label"] == "fixé par un coordinateur"
    assert slot["forecast"] == expected.for_slot(
        datetime.fromtimestamp(slot["start_ms"] / 1000, UTC),
        datetime.fromtimestamp(slot["end_ms"] / 1000, UTC),
    )
    assert state["slots"]["target"] == forecast + 3
    assert state["slots"]["target_source_label"] == "fixé par un coordinateur"
    entries = [e for e in await audit_entries(app) if e.action.startswith("slot.")]
    assert [(e.action, e.target, e.details["target"], e.details["by"]) for e in entries] == [
        ("slot.target", SLOT_9H, forecast + 3, "Claire Coord")
    ]

    # Bad values are refused in French; handing the slot back restores the forecast.
    bad = await post(
        client,
        coordinator,
        "/coordination/creneaux/objectif",
        {"creneau": SLOT_9H, "objectif": "beaucoup"},
    )
    assert bad.status_code == 400 and "nombre entier" in bad.json()["message"]
    closed = await post(
        client,
        coordinator,
        "/coordination/creneaux/objectif",
        {"creneau": "2026-11-28T08:00Z", "objectif": "2"},
    )  # a Saturday
    assert closed.status_code == 400 and "n'existe pas" in closed.json()["message"]
    back = await post(
        client, coordinator, "/coordination/creneaux/objectif", {"creneau": SLOT_9H, "objectif": ""}
    )
    assert back.status_code == 200 and "prévision" in back.json()["message"]
    _, slot = await wait_for_slot(
        client, coordinator, day[0]["start_ms"], lambda s: s["target_source"] == "forecast"
    )
    assert (slot["target"], slot["target_source"]) == (forecast, "forecast")
    actions = [e.action for e in await audit_entries(app) if e.action.startswith("slot.")]
    assert actions == ["slot.target", "slot.target_cleared"]


async def test_dashboard_follows_the_history_once_there_are_two_weeks(
    app: FastAPI,
    client: httpx.AsyncClient,
    coordinator: Login,
    clock: ManualClock,
) -> None:
    runtime = app.state.runtime
    now = datetime.fromtimestamp(clock.now_ms() / 1000, PARIS)
    # Three weeks of 30 calls every weekday between 13:00 and 13:30, nothing else.
    async with runtime.db.session() as session:
        for back in range(1, 22):
            day = now - timedelta(days=back)
            if day.weekday() >= 5:
                continue
            for i in range(30):
                at = day.replace(hour=13, minute=0) + timedelta(seconds=55 * i)
                session.add(Contact(line=runtime.settings.line, task_id=f"c{back}-{i}",
                                    day=at.date().isoformat(), created_ms=ms(at),
                                    handle_ms=500_000, wrapup_ms=100_000))  # fmt: skip
        await session.commit()
    await etat(client, coordinator)  # the forecast from before (the trace) is cached...
    app.state.demand_cache.invalidate()  # ...until its refresh period ends
    await app.state.coordination.hub.refresh(reload=True)
    state = await etat(client, coordinator)
    by_hour = {
        datetime.fromtimestamp(d["start_ms"] / 1000, PARIS).hour: d for d in state["slots"]["day"]
    }
    assert (await app.state.demand_cache.get()).source == "history"
    assert by_hour[13]["target"] > 1 and by_hour[13]["target_source"] == "forecast"
    assert by_hour[9]["target"] == by_hour[11]["target"] == 1  # quiet: one to answer


async def test_coverage_page_shows_the_week_and_the_sources(
    app: FastAPI,
    client: httpx.AsyncClient,
    coordinator: Login,
    volunteer: Login,
) -> None:
    settings = settings_from(app.state.runtime.settings)
    async with app.state.runtime.db.session() as session:
        await Bookings(session, settings).set_target(
            datetime(2026, 11, 24, 13, 0, tzinfo=PARIS).astimezone(UTC), 9
        )
    page = await client.get(
        "/coordination/creneaux?semaine=2026-11-23",
        headers={"accept": "text/html", **coordinator.cookies},
    )
    assert page.status_code == 200
    html = page.text
    assert "Semaine du lundi 23 novembre" in html
    assert "Mardi 24 novembre" in html and "Samedi" not in html
    row = html[html.index('data-creneau="2026-11-24T12:00Z"') :]
    row = row[: row.index("</tr>")]
    assert '<td class="objectif">9</td>' in row and "fixé par un coordinateur" in row
    assert "Revenir à la prévision" in row
    other = html[html.index('data-creneau="2026-11-24T08:00Z"') :]
    other = other[: other.index("</tr>")]
    assert '<td class="source">prévision</td>' in other and "Revenir" not in other
    assert "trace de référence" in html  # what the forecast is based on
    assert "ramené à 120 contacts par jour de semaine" in html  # FORECAST_CONTACTS_PER_DAY
    refused = await client.get("/coordination/creneaux", headers=volunteer.cookies)
    assert refused.status_code == 403
