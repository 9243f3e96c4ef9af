"""Coordination tests: the history database (the test's, migrated to head) and the running app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from routing.clock import ManualClock
from tests.coordination.sessions import Login, ensure_auth, login
from volunteers.models import Role
from web.app import create_app
from web.db import Database
from web.settings import Settings


@pytest.fixture
def history_db(database: Database) -> AsyncEngine:
    """SQLite by default, PostgreSQL with DATABASE_URL; tables made by the migrations."""
    return database.engine


@asynccontextmanager
async def running_app(
    settings: Settings, clock: ManualClock, redis: Redis
) -> AsyncIterator[FastAPI]:
    """The whole app (sessions installed), running on the test's clock and line; its keys
    are deleted afterwards."""
    application = create_app(settings, clock=clock, timers=False)
    sessions_db = Database(settings)
    ensure_auth(application, settings.secret_key, sessions_db.session)
    async with application.router.lifespan_context(application):
        await application.state.runtime.configure_engine()
        yield application
    await sessions_db.dispose()
    async for key in redis.scan_iter(match=f"*{{{settings.line}}}*", count=1000):
        await redis.delete(key)


@pytest.fixture
async def app(app_settings: Settings, clock: ManualClock, redis: Redis) -> AsyncIterator[FastAPI]:
    """The whole app (sessions installed), running, on the test's clock and line (a module
    that needs another clock or settings defines its own)."""
    async with running_app(app_settings, clock, redis) as application:
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the module's ``app`` in-process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


# Logged-in users of whichever ``app`` the test module runs.
@pytest.fixture
async def coordinator(app: FastAPI, app_settings: Settings) -> Login:
    return await login(app.state.runtime.db, app_settings.secret_key, "Claire Coord",
                       Role.COORDINATOR)


@pytest.fixture
async def volunteer(app: FastAPI, app_settings: Settings) -> Login:
    return await login(app.state.runtime.db, app_settings.secret_key, "Vincent Bene",
                       Role.VOLUNTEER)
