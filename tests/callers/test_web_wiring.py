"""callers/ mounted in the whole app (web.app.create_app): routes, lifespan, bridge loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from callers.reach import softphone_by_id
from routing.models import TaskState
from tests.callers.helpers import volunteer_on_duty
from tests.callers.twilio_sim import PhoneCall, Webhooks
from tests.conftest import make_settings
from web.app import create_app

PUBLIC = "https://ligne.example.org"


@pytest.fixture
async def app(tmp_path, redis_url, line, sql_database, clock, engine) -> AsyncIterator[FastAPI]:
    settings = make_settings(
        tmp_path / "data", redis_url=redis_url, line=line, public_base_url=PUBLIC,
        twilio_fake=True, twilio_auth_token="wiring-token",
        twilio_account_sid="AC" + "2" * 32, twilio_number="+33800999999", **sql_database,
    )
    application = create_app(settings, clock=clock)
    # Volunteers here are engine-only (no account): ring them on the softphone by id.
    application.state.volunteer_reach = softphone_by_id
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC) as c:
        yield c


async def test_pages_and_links(http):
    home = await http.get("/")
    assert "/aide" in home.text
    page = await http.get("/aide")
    assert page.status_code == 200 and 'lang="fr"' in page.text
    assert '<label for="postal_code">' in page.text
    assert (await http.get("/aide/static/aide.js")).status_code == 200


async def test_a_call_through_the_whole_app_reaches_the_fake_twilio(app, http, engine):
    await volunteer_on_duty(engine, "anne", "05")
    fake = app.state.callers.fake
    hooks = Webhooks(http, "wiring-token", "AC" + "2" * 32)
    sid = fake.incoming_call("+33612345678", "+33800999999")
    call = PhoneCall(hooks, PUBLIC, sid, "+33612345678", "+33800999999")

    forged = await hooks.post(PUBLIC + "/twilio/voice/incoming", call.params(), signature="x")
    assert forged.status_code == 403

    await call.start()
    await call.press("4")
    await call.press("05")
    twiml = await call.press("1")
    assert twiml.first("Enqueue") is not None
    await call.wait_in_queue(fake.enter_queue(sid, "permanence"))
    task = (await engine.live_tasks())[0]
    assert task.state is TaskState.RESERVED
    await engine.accept("anne", task.id)

    for _ in range(100):  # the app's bridge loop runs in the background
        if fake.made(f"/Members/{sid}.json"):
            break
        await asyncio.sleep(0.05)
    assert [r.form["To"] for r in fake.made("/Calls.json")] == ["client:anne"]
    assert fake.made(f"/Members/{sid}.json")[0].form["Url"] == (
        f"{PUBLIC}/twilio/voice/join?task={task.id}")
    assert (await http.get("/fake-twilio/_fake/requests")).status_code == 401
    recorded = await http.get("/fake-twilio/_fake/requests",
                              auth=("AC" + "2" * 32, "wiring-token"))
    assert len(recorded.json()) == 2


async def test_demo_telephone_walks_the_line_like_twilio(app, http, engine):
    await volunteer_on_duty(engine, "anne", "05")
    auth = ("AC" + "2" * 32, "wiring-token")
    assert (await http.get("/fake-twilio/telephone")).status_code == 401
    assert (await http.get("/fake-twilio/telephone", auth=auth)).status_code == 200

    async def act(action: str, **body: str) -> dict:
        reply = await http.post(f"/fake-twilio/telephone/api/{action}", json=body, auth=auth)
        assert reply.status_code == 200, reply.text
        return reply.json()

    view = await act("call", **{"from": "+33612345678"})
    assert view["keys"] and any("bienvenue" in s for s in view["said"])
    view = await act("press", call=view["call"], digits="4")
    view = await act("press", call=view["call"], digits="05#")
    assert any("Hautes-Alpes" in s for s in view["said"])
    view = await act("press", call=view["call"], digits="1")
    assert view["waiting"]
    view = await act("wait", call=view["call"])
    assert any("prochaine personne" in s or "dans un instant" in s for s in view["said"])
    task = (await engine.live_tasks())[0]
    await engine.accept("anne", task.id)
    for _ in range(100):
        view = await act("wait", call=view["call"])
        if view["connected"]:
            break
        await asyncio.sleep(0.05)
    assert view["connected"] and not view["waiting"]
    view = await act("hangup", call=view["call"])
    assert (await engine.require_task(task.id)).state is TaskState.WRAPUP
