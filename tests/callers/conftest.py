"""Fixtures of the callers tests: a real database, the fake Twilio, the app's routers."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from callers.context import Callers
from callers.fake_twilio import FakeTwilio, fake_twilio_app
from callers.reach import ReachMode, VolunteerReach
from callers.settings import CallersSettings
from callers.twilio_rest import build_twilio_client, close_twilio_client
from callers.voice.bridge import Bridge
from callers.voice.flow import VoiceFlow
from callers.voice.router import voice_router
from routing.engine import Engine
from tests.callers.twilio_sim import PhoneCall, Webhooks
from web.db import Database

PUBLIC = "https://permanence.example.org"
LINE_NUMBER = "+33800123456"


@pytest.fixture
def sessions(database: Database):
    """Sessions on this test's database, migrated to head (SQLite, or PostgreSQL in CI)."""
    return database.session


@pytest.fixture
def settings() -> CallersSettings:
    return CallersSettings(
        secret_key="test-secret-key-not-for-production",
        public_base_url=PUBLIC,
        twilio_account_sid="AC" + "1" * 32,
        twilio_auth_token="test-auth-token",
        twilio_number=LINE_NUMBER,
        twilio_api_base="http://fake-twilio.test",
        hold_music_url="https://permanence.example.org/static/attente.mp3",
    )


@pytest.fixture
def fake(settings: CallersSettings) -> FakeTwilio:
    return FakeTwilio(settings.twilio_account_sid, settings.twilio_auth_token)


@pytest.fixture
def reach_book() -> dict[str, VolunteerReach]:
    """How each test volunteer takes calls (tests fill it); default: softphone."""
    return {}


@pytest.fixture
async def ctx(settings, engine: Engine, fake: FakeTwilio, sessions, reach_book):
    twilio = build_twilio_client(settings, transport=httpx.ASGITransport(app=fake_twilio_app(fake)))

    async def reach(vid: str) -> VolunteerReach:
        return reach_book.get(vid) or VolunteerReach(vid, ReachMode.SOFTPHONE, identity=vid)

    context = Callers(settings=settings, engine=engine, twilio=twilio, sessions=sessions,
                      reach=reach)
    yield context
    await close_twilio_client(twilio)
    async for key in engine.redis.scan_iter(match=context.keys.base.replace("{", "\\{")
                                            .replace("}", "\\}") + "*", count=1000):
        await engine.redis.delete(key)


@pytest.fixture
async def bridge(ctx: Callers) -> Bridge:
    b = Bridge(ctx)
    await b.ensure_group(start="0")
    return b


@pytest.fixture
def app(ctx: Callers, bridge: Bridge) -> FastAPI:
    application = FastAPI()
    flow = VoiceFlow(ctx)
    application.include_router(voice_router(ctx.settings, lambda: flow, lambda: bridge))
    return application


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC) as c:
        yield c


@pytest.fixture
def hooks(http: httpx.AsyncClient, settings: CallersSettings) -> Webhooks:
    return Webhooks(http, settings.twilio_auth_token, settings.twilio_account_sid)


@pytest.fixture
def phone(hooks: Webhooks, fake: FakeTwilio):
    """Place a call on the line from a number (registered with the fake Twilio)."""

    def place(from_: str = "+33612345678") -> PhoneCall:
        sid = fake.incoming_call(from_, LINE_NUMBER)
        return PhoneCall(hooks, PUBLIC, sid, from_, LINE_NUMBER)

    return place
