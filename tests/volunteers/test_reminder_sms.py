"""Reminders by SMS: the official Twilio client into the fake Twilio, and the fallbacks."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import select

from tests.volunteers.conftest import PASSWORD
from volunteers import accounts, jobs
from volunteers.bookings import Bookings
from volunteers.models import Account, OutboxMessage, Role
from volunteers.profile import ProfileInput, clean_profile
from web.app import create_app

PARIS = ZoneInfo("Europe/Paris")
SLOT = datetime(2026, 11, 24, 13, 0, tzinfo=PARIS)  # Tuesday 13 h – 15 h
KEY = SLOT.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")
MOBILE, MOBILE_E164 = "06 12 34 56 78", "+33612345678"
LANDLINE, LANDLINE_E164 = "04 92 52 52 52", "+33492525252"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HTML = {"accept": "text/html"}


async def _app(settings, clock, redis) -> AsyncIterator[FastAPI]:
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        jobs.CONTEXT = app.state.volunteers
        try:
            yield app
        finally:
            jobs.CONTEXT = None
    async for key in redis.scan_iter(match=f"*{{{settings.line}}}*", count=1000):
        await redis.delete(key)


@pytest.fixture
async def sms_app(app_settings, clock, redis) -> AsyncIterator[FastAPI]:
    """The whole app with the built-in fake Twilio answering its REST calls."""
    async for app in _app(app_settings, clock, redis):
        yield app


async def _with_phone(sessions, account: Account, phone: str) -> None:
    async with sessions() as session:
        row = await session.get(Account, account.id)
        profile = clean_profile(
            ProfileInput(name=row.name, postal_code="05000", phone_mode="phone", phone=phone)
        )
        await accounts.save_profile(session, row, profile, jobs.context().sealer)


async def _book(sessions, vol, people: list[Account]) -> None:
    now = jobs.now_of(vol)
    async with sessions() as session:
        for person in people:
            await Bookings(session, vol.settings).book(person, SLOT.astimezone(UTC), now)


async def _outbox(sessions, account: Account) -> list[OutboxMessage]:
    async with sessions() as session:
        rows = await session.exec(
            select(OutboxMessage).where(OutboxMessage.account_id == account.id)
        )
        return list(rows)


async def test_reminder_goes_by_sms_through_the_twilio_client(
    sms_app, make_account, sessions, clock, caplog
):
    caplog.set_level(logging.DEBUG)
    vol = sms_app.state.volunteers
    fake = sms_app.state.callers.fake
    clock.set(datetime(2026, 11, 23, 9, 0, tzinfo=PARIS))
    bruno, anne = await make_account("Bruno"), await make_account("Anne")
    await _with_phone(sessions, bruno, MOBILE)
    await _book(sessions, vol, [bruno, anne])

    clock.set(SLOT - timedelta(hours=1))
    assert await jobs.remind(KEY, 60) == 2
    assert await jobs.remind(KEY, 60) == 0  # a job that runs twice sends nothing twice

    sent = fake.made("/Messages.json")
    assert len(sent) == 1 and sent[0].status == 201
    assert sent[0].path == f"/2010-04-01/Accounts/{fake.account_sid}/Messages.json"
    assert sent[0].form == {
        "To": MOBILE_E164,
        "From": sms_app.state.callers.settings.twilio_number,
        "Body": "Permanence : rappel, votre créneau de bénévolat commence dans 1 heure "
        "(mardi 24 novembre, 13 h – 15 h). Ouvrez la console quelques minutes avant : "
        f"{vol.settings.public_base_url}/benevole/console",
    }
    [by_sms] = await _outbox(sessions, bruno)
    assert (by_sms.channel, by_sms.status, by_sms.error) == ("sms", "sent", "")
    [kept] = await _outbox(sessions, anne)  # no phone number: the outbox, as before
    assert (kept.channel, kept.status) == ("outbox", "pending")
    # The number is only in the request to Twilio: never in a log line, never in clear in SQL.
    assert MOBILE_E164 not in caplog.text and "06 12" not in caplog.text
    async with sessions() as session:
        stored = await session.get(Account, bruno.id)
    assert MOBILE_E164 not in stored.phone_sealed and stored.phone_sealed


async def test_refused_sms_waits_in_the_outbox_for_coordinators(
    sms_app, make_account, sessions, clock, caplog
):
    caplog.set_level(logging.DEBUG)
    vol = sms_app.state.volunteers
    fake = sms_app.state.callers.fake
    clock.set(datetime(2026, 11, 23, 9, 0, tzinfo=PARIS))
    chloe = await make_account("Chloé")
    claire = await make_account("Claire", role=Role.COORDINATOR)
    await _with_phone(sessions, chloe, LANDLINE)  # Twilio refuses SMS to a landline
    await _book(sessions, vol, [chloe])

    clock.set(SLOT - timedelta(hours=24))
    assert await jobs.remind(KEY, 1440) == 1
    [refused] = fake.made("/Messages.json")
    assert refused.status == 400 and refused.form["To"] == LANDLINE_E164
    [row] = await _outbox(sessions, chloe)
    assert (row.channel, row.status) == ("outbox", "pending")
    assert "erreur Twilio 21614" in row.error and "492" not in row.error
    assert LANDLINE_E164 not in caplog.text and "04 92" not in caplog.text

    # The coordinators' page shows it, with why, so someone can pass it on.
    transport = httpx.ASGITransport(app=sms_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        token = CSRF.search((await client.get("/connexion", headers=HTML)).text).group(1)
        await client.post(
            "/connexion", data={"email": claire.email, "password": PASSWORD, "csrf_token": token}
        )
        page = (await client.get("/coordination/benevoles", headers=HTML)).text
    assert "commence demain (mardi 24 novembre, 13 h – 15 h)" in page
    assert "À envoyer" in page and "SMS non envoyé (erreur Twilio 21614)" in page
    assert "Chloé" in page


async def test_sms_only_when_telephony_is_configured(app_settings, clock, redis):
    unconfigured = app_settings.model_copy(update={"twilio_fake": False})
    async for app in _app(unconfigured, clock, redis):
        assert app.state.volunteers.sms is None  # no Twilio account: e-mail or outbox
    real = unconfigured.model_copy(
        update={
            "twilio_account_sid": "AC" + "1" * 32,
            "twilio_auth_token": "secret",
            "twilio_number": "+33800123456",
        }
    )
    async for app in _app(real, clock, redis):
        assert app.state.volunteers.sms is not None
