"""A volunteer whose booked slot closes hears of it once, by the reminders' channels.

Through the real app: a coordinator (session cookie + CSRF) adds a closure or changes
the hours; the built-in fake Twilio receives the SMS the official client sends.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlmodel import select

from routing.clock import PARIS, ManualClock
from tests.coordination.conftest import running_app
from tests.coordination.sessions import Login, login
from volunteers import accounts
from volunteers.models import Account, Booking, OutboxMessage, Role
from volunteers.profile import ProfileInput, clean_profile
from web.closed_slot_notices import closed_slot_notices
from web.settings import Settings

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=PARIS)  # a Tuesday
WEEK = "2026-12-07"
MOBILE, MOBILE_E164 = "06 12 34 56 78", "+33612345678"
OTHER, OTHER_E164 = "06 98 76 54 32", "+33698765432"


@pytest.fixture
async def app(app_settings: Settings, clock: ManualClock, redis: Redis) -> AsyncIterator[FastAPI]:
    clock.set(NOW)
    async with running_app(app_settings, clock, redis) as application:
        yield application


async def person(app: FastAPI, settings: Settings, name: str, role: Role, phone: str) -> Login:
    who = await login(app.state.runtime.db, settings.secret_key, name, role)
    if phone:
        async with app.state.runtime.db.session() as session:
            row = await session.get(Account, who.account.id)
            profile = clean_profile(
                ProfileInput(name=name, postal_code="05000", phone_mode="phone", phone=phone)
            )
            await accounts.save_profile(session, row, profile, app.state.volunteers.sealer)
    return who


async def post(
    client: httpx.AsyncClient, who: Login, path: str, data: dict[str, str], *, json: bool = True
) -> httpx.Response:
    headers = {**who.cookies, **({"accept": "application/json"} if json else {})}
    return await client.post(path, data={"csrf_token": who.csrf, **data}, headers=headers)


def key(day: int, hour: int) -> str:
    moment = datetime(2026, 12, day, hour, tzinfo=PARIS).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%MZ")


async def book(client: httpx.AsyncClient, who: Login, slot: str) -> None:
    r = await post(
        client, who, "/benevole/creneaux/reserver", {"creneau": slot, "semaine": WEEK}, json=False
    )
    assert r.status_code == 303, r.text


async def booked(app: FastAPI) -> int:
    async with app.state.runtime.db.session() as session:
        return len(list(await session.exec(select(Booking).where(Booking.status == "booked"))))


async def outbox(app: FastAPI, who: Login) -> list[OutboxMessage]:
    async with app.state.runtime.db.session() as session:
        rows = await session.exec(
            select(OutboxMessage).where(OutboxMessage.account_id == who.account.id)
        )
        return list(rows)


def texts(app: FastAPI, to: str) -> list[str]:
    sent = app.state.callers.fake.made("/Messages.json")
    return [m.form["Body"] for m in sent if m.form["To"] == to]


WEEKDAYS = {f"jour_{d}": "09:00-18:00" for d in range(5)} | {"feries_fermes": "1"}


async def test_a_closure_over_a_booked_slot_tells_its_volunteer_once(
    app: FastAPI, client: httpx.AsyncClient, app_settings: Settings, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    claire = await person(app, app_settings, "Claire Coord", Role.COORDINATOR, "")
    vincent = await person(app, app_settings, "Vincent Bene", Role.VOLUNTEER, MOBILE)
    odile = await person(app, app_settings, "Odile Bene", Role.VOLUNTEER, OTHER)
    await book(client, vincent, key(8, 9))  # Tuesday 8, closed below
    await book(client, odile, key(9, 9))  # Wednesday 9, stays open
    assert await booked(app) == 2

    closure = {
        "debut": "2026-12-08T00:00",
        "fin": "2026-12-09T00:00",
        "message": "Formation des bénévoles",
    }
    r = await post(client, claire, "/coordination/fermetures", closure)
    assert r.status_code == 200, r.text
    await closed_slot_notices(app).wait()

    assert texts(app, MOBILE_E164) == [
        "Permanence : votre créneau du mardi 8 décembre, 9 h – 11 h, est fermé "
        "(fermeture exceptionnelle — Formation des bénévoles). Vous n'avez rien à faire."
    ]
    [row] = await outbox(app, vincent)
    assert (row.kind, row.channel, row.status) == ("creneau_ferme", "sms", "sent")
    assert texts(app, OTHER_E164) == [] and await outbox(app, odile) == []

    # Saving the same hours, or the same closure again, tells nobody anything new.
    r = await post(client, claire, "/coordination/horaires", WEEKDAYS)
    assert r.status_code == 200, r.text
    r = await post(client, claire, "/coordination/fermetures", closure)
    assert r.status_code == 200, r.text
    await closed_slot_notices(app).wait()
    assert len(app.state.callers.fake.made("/Messages.json")) == 1
    assert len(await outbox(app, vincent)) == 1 and await outbox(app, odile) == []
    assert await booked(app) == 2  # the booking is kept, only flagged

    # The numbers went to Twilio only, never to a log line.
    for number in (MOBILE_E164, OTHER_E164, "06 12", "06 98", "612345678"):
        assert number not in caplog.text


async def test_hours_that_no_longer_cover_a_booking_tell_its_volunteer(
    app: FastAPI, client: httpx.AsyncClient, app_settings: Settings
) -> None:
    claire = await person(app, app_settings, "Claire Coord", Role.COORDINATOR, "")
    vincent = await person(app, app_settings, "Vincent Bene", Role.VOLUNTEER, MOBILE)
    odile = await person(app, app_settings, "Odile Bene", Role.VOLUNTEER, "")  # no phone
    await book(client, vincent, key(8, 9))  # mornings stay open
    await book(client, odile, key(8, 15))  # afternoons close below

    mornings = {f"jour_{d}": "09:00-13:00" for d in range(5)} | {"feries_fermes": "1"}
    r = await post(client, claire, "/coordination/horaires", mornings)
    assert r.status_code == 200, r.text
    await closed_slot_notices(app).wait()
    r = await post(client, claire, "/coordination/horaires", mornings)  # saved twice
    assert r.status_code == 200, r.text
    await closed_slot_notices(app).wait()

    assert texts(app, MOBILE_E164) == [] and await outbox(app, vincent) == []
    # No phone and no SMTP: the same fallback as reminders, the coordinators' outbox.
    [row] = await outbox(app, odile)
    assert (row.channel, row.status) == ("outbox", "pending")
    assert row.body == (
        "Permanence : votre créneau du mardi 8 décembre, 15 h – 17 h, est fermé "
        "(les horaires ont changé). Vous n'avez rien à faire."
    )


async def test_closing_the_line_now_tells_those_booked_later_today(
    app: FastAPI, client: httpx.AsyncClient, app_settings: Settings
) -> None:
    claire = await person(app, app_settings, "Claire Coord", Role.COORDINATOR, "")
    vincent = await person(app, app_settings, "Vincent Bene", Role.VOLUNTEER, MOBILE)
    await book(client, vincent, key(1, 15))  # today, later on

    r = await post(
        client, claire, "/coordination/ligne/fermer",
        {"message": "Panne du standard.", "jusqu_a": ""},
    )  # fmt: skip
    assert r.status_code == 200, r.text
    await closed_slot_notices(app).wait()
    assert texts(app, MOBILE_E164) == [
        "Permanence : votre créneau du mardi 1 décembre, 15 h – 17 h, est fermé "
        "(fermeture exceptionnelle — Panne du standard.). Vous n'avez rien à faire."
    ]
