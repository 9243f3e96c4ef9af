"""The coordinators' line schedule is the one source of the volunteers' slots.

Through the real app: a coordinator edits hours or adds a closure on /coordination
(session cookie + CSRF), and the volunteers' week view, booking and "mes créneaux"
follow at once; bookings on a slot that closed are kept and flagged for both.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from icalendar import Calendar
from redis.asyncio import Redis
from sqlmodel import select

from routing.clock import PARIS, ManualClock
from tests.coordination.conftest import running_app
from tests.coordination.sessions import Login
from volunteers.models import Booking
from web.settings import Settings

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=PARIS)  # a Tuesday
WEEK = "2026-12-07"  # the next week: Monday 7 to Sunday 13 December


@pytest.fixture
async def app(app_settings: Settings, clock: ManualClock, redis: Redis) -> AsyncIterator[FastAPI]:
    clock.set(NOW)
    async with running_app(app_settings, clock, redis) as application:
        yield application


async def post(client: httpx.AsyncClient, who: Login, path: str, data: dict[str, str],
               *, json: bool = True) -> httpx.Response:
    """A form sent with the session's CSRF token, as the pages send it."""
    headers = {**who.cookies, **({"accept": "application/json"} if json else {})}
    return await client.post(path, data={"csrf_token": who.csrf, **data}, headers=headers)


def key(day: int, hour: int, minute: int = 0) -> str:
    """The slot key of a December 2026 Paris time (UTC in the key)."""
    moment = datetime(2026, 12, day, hour, minute, tzinfo=PARIS).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%MZ")


async def week_view(client: httpx.AsyncClient, who: Login, week: str = WEEK) -> str:
    page = await client.get(f"/benevole/creneaux?semaine={week}", headers=who.cookies)
    assert page.status_code == 200, page.text
    return page.text


def bookable(html: str) -> set[str]:
    """The slot keys the week view offers to book."""
    forms = re.findall(
        r'action="/benevole/creneaux/reserver".*?name="creneau" value="([^"]+)"', html, re.S
    )
    return set(forms)


def day_section(html: str, title: str) -> str:
    """The part of the week view under a day's heading, up to the next day."""
    start = html.index(f"<h3>{title}</h3>")
    end = html.find("<h3>", start + 4)
    return html[start : end if end != -1 else len(html)]


async def book(client: httpx.AsyncClient, who: Login, slot: str) -> httpx.Response:
    return await post(client, who, "/benevole/creneaux/reserver",
                      {"creneau": slot, "semaine": WEEK}, json=False)


async def active_bookings(app: FastAPI) -> list[Booking]:
    async with app.state.runtime.db.session() as session:
        rows = await session.exec(select(Booking).where(Booking.status == "booked"))
        return list(rows)


async def test_hours_edited_by_a_coordinator_are_the_volunteers_slots(
    app: FastAPI, client: httpx.AsyncClient, coordinator: Login, volunteer: Login
) -> None:
    before = await week_view(client, volunteer)
    assert key(7, 9) in bookable(before) and key(7, 17) in bookable(before)
    assert key(7, 8) not in bookable(before)

    # Without the session's CSRF token the change is refused and the slots stay.
    refused = await client.post("/coordination/horaires", data={"jour_0": "08:00-12:00"},
                                headers=coordinator.cookies)
    assert refused.status_code == 403
    assert bookable(await week_view(client, volunteer)) == bookable(before)

    # Mornings only on weekdays, and a Saturday opening.
    hours = {f"jour_{d}": "08:00-12:00" for d in range(5)} | {"jour_5": "10:00-14:00"}
    saved = await post(client, coordinator, "/coordination/horaires",
                       hours | {"feries_fermes": "1"})
    assert saved.status_code == 200, saved.text

    after = await week_view(client, volunteer)
    offered = bookable(after)
    assert {key(7, 8), key(7, 10), key(12, 10), key(12, 12)} <= offered
    assert key(7, 9) not in offered and key(7, 13) not in offered and key(7, 17) not in offered
    assert len(offered) == 5 * 2 + 2
    saturday = day_section(after, "Samedi 12 décembre")
    assert "10 h – 12 h" in saturday and "12 h – 14 h" in saturday

    # Booking follows the same hours: the new slot is taken, the old one does not exist.
    await book(client, volunteer, key(8, 8))
    await book(client, volunteer, key(8, 13))
    starts = [b.slot_start.replace(tzinfo=UTC) if b.slot_start.tzinfo is None else b.slot_start
              for b in await active_bookings(app)]
    assert [s.strftime("%Y-%m-%dT%H:%MZ") for s in starts] == [key(8, 8)]


async def test_a_closure_day_has_no_bookable_slot_and_keeps_its_bookings_flagged(
    app: FastAPI, client: httpx.AsyncClient, coordinator: Login, volunteer: Login
) -> None:
    await book(client, volunteer, key(8, 9))  # booked before the closure
    assert len(await active_bookings(app)) == 1

    closed = await post(client, coordinator, "/coordination/fermetures", {
        "debut": "2026-12-08T00:00", "fin": "2026-12-09T00:00",
        "message": "Formation des bénévoles",
    })
    assert closed.status_code == 200, closed.text

    view = await week_view(client, volunteer)
    tuesday = day_section(view, "Mardi 8 décembre")
    assert "Ligne fermée : fermeture exceptionnelle — Formation des bénévoles" in tuesday
    assert not any(k.startswith("2026-12-08") for k in bookable(view))
    assert key(9, 9) in bookable(view)  # the next day opens as usual
    r = await book(client, volunteer, key(8, 11))
    assert r.status_code == 303
    assert len(await active_bookings(app)) == 1  # refused: the slot does not exist

    # The booking made before is kept, and shown closed to the volunteer and coordinators.
    mine = view[: view.index('<h2 id="semaine">')]
    assert "mardi 8 décembre, 9 h – 11 h" in mine
    assert "Créneau fermé (fermeture exceptionnelle — Formation des bénévoles)" in mine
    home = await client.get("/benevole", headers=volunteer.cookies)
    assert "Créneau fermé" in home.text
    coverage = await client.get(f"/coordination/creneaux?semaine={WEEK}",
                                headers=coordinator.cookies)
    assert coverage.status_code == 200
    flagged = coverage.text[coverage.text.index("Réservations sur des créneaux fermés"):]
    assert "Vincent Bene" in flagged and "Mardi 8 décembre, 9 h – 11 h" in flagged

    feed = await client.get(f"/benevole/agenda/{volunteer.account.ical_token}.ics")
    [event] = Calendar.from_ical(feed.content).walk("VEVENT")
    assert (str(event["summary"]), str(event["status"])) == (
        "Permanence — créneau fermé", "CANCELLED")

    # Lifting the closure makes the same booking valid again, nothing lost.
    removed = await post(client, coordinator, "/coordination/fermetures/0/supprimer", {
        "debut": "2026-12-08T00:00:00+01:00", "fin": "2026-12-09T00:00:00+01:00"})
    assert removed.status_code == 200, removed.text
    view = await week_view(client, volunteer)
    assert "Créneau fermé" not in view and key(8, 11) in bookable(view)
    coverage = await client.get(f"/coordination/creneaux?semaine={WEEK}",
                                headers=coordinator.cookies)
    assert "Réservations sur des créneaux fermés" not in coverage.text


async def test_french_public_holidays_follow_the_coordinators_setting(
    app: FastAPI, client: httpx.AsyncClient, coordinator: Login, volunteer: Login
) -> None:
    christmas_week = "2026-12-21"  # Friday 25 December is Noël
    view = await week_view(client, volunteer, christmas_week)
    assert "Ligne fermée : férié (Noël)" in day_section(view, "Vendredi 25 décembre")
    assert not any(k.startswith("2026-12-25") for k in bookable(view))
    assert key(24, 9) in bookable(view)

    # A coordinator opens on public holidays: the slots appear that day.
    hours = {f"jour_{d}": "09:00-18:00" for d in range(5)}  # feries_fermes left unticked
    saved = await post(client, coordinator, "/coordination/horaires", hours)
    assert saved.status_code == 200, saved.text
    view = await week_view(client, volunteer, christmas_week)
    assert key(25, 9) in bookable(view) and "férié" not in view


async def test_closing_the_line_now_flags_todays_booked_slots_on_the_dashboard(
    app: FastAPI, client: httpx.AsyncClient, coordinator: Login, volunteer: Login
) -> None:
    await book(client, volunteer, key(1, 15))  # today, later on
    assert len(await active_bookings(app)) == 1

    def today(state: dict) -> dict[int, dict]:
        return {s["start_ms"]: s for s in state["slots"]["day"]}

    start_ms = int(datetime(2026, 12, 1, 15, tzinfo=PARIS).timestamp() * 1000)
    before = (await client.get("/coordination/etat", headers=coordinator.cookies)).json()
    assert today(before)[start_ms]["closed"] is False
    closed = await post(client, coordinator, "/coordination/ligne/fermer",
                        {"message": "Panne du standard.", "jusqu_a": ""})
    assert closed.status_code == 200, closed.text
    after = (await client.get("/coordination/etat", headers=coordinator.cookies)).json()
    slot = today(after)[start_ms]
    assert slot["closed"] is True and slot["booked"] == 1
    view = await week_view(client, volunteer, "2026-11-30")
    assert "Créneau fermé (fermeture exceptionnelle — Panne du standard.)" in view


async def test_a_volunteer_books_then_cancels_a_slot_from_the_week_view(
    app: FastAPI, client: httpx.AsyncClient, volunteer: Login
) -> None:
    booked = await book(client, volunteer, key(7, 9))
    assert booked.status_code == 303
    assert booked.headers["location"] == f"/benevole/creneaux?semaine={WEEK}#semaine"
    starts = [b.slot_start.replace(tzinfo=UTC) if b.slot_start.tzinfo is None else b.slot_start
              for b in await active_bookings(app)]
    assert [s.strftime("%Y-%m-%dT%H:%MZ") for s in starts] == [key(7, 9)]

    cancelled = await post(client, volunteer, "/benevole/creneaux/annuler",
                           {"creneau": key(7, 9), "semaine": WEEK}, json=False)
    assert cancelled.status_code == 303
    assert await active_bookings(app) == []
    assert "Créneau annulé." in await next_page(client, cancelled)

    # A slot key nobody can book: said so, nothing changes, back to the same week.
    bad = await post(client, volunteer, "/benevole/creneaux/annuler",
                     {"creneau": "pas-un-creneau", "semaine": WEEK}, json=False)
    assert bad.headers["location"] == f"/benevole/creneaux?semaine={WEEK}#semaine"
    assert "Ce créneau n&#39;existe pas." in await next_page(client, bad)


async def next_page(client: httpx.AsyncClient, response: httpx.Response) -> str:
    """The page a form's redirect leads to, with the session it left (its flash message)."""
    cookie = response.headers["set-cookie"].split(";", 1)[0]
    page = await client.get(response.headers["location"], headers={"cookie": cookie})
    assert page.status_code == 200, page.text
    return page.text
