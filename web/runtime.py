"""What one process holds while it runs: settings, Redis, the database and the engine.

The app's lifespan, the CLI and the scheduler all open one with ``open_runtime``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from routing.clock import Clock
from routing.engine import Engine
from routing.server_settings import SERVER_SETTINGS, describe, settings_differences
from web.db import Database
from web.redis import RedisTarget, connect, ensure_redis
from web.settings import Settings
from web.territories import load_group_territories

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    """The live connections of a process."""

    settings: Settings
    redis_target: RedisTarget
    redis: Redis
    db: Database
    engine: Engine
    configured: bool = False

    async def configure_engine(self) -> None:
        """Write the routing defaults the line does not have yet (never overwrites)."""
        await self.engine.configure(self.settings.routing, overwrite=False)
        self.configured = True

    async def reload_territories(self) -> None:
        """Give the engine the territory groups currently stored in SQL."""
        async with self.db.session() as session:
            self.engine.territories = await load_group_territories(session)


async def check_server_settings(redis: Redis) -> None:
    """Warn when Redis runs the engine slower than it could (routing.server_settings)."""
    differences = await settings_differences(redis)
    if differences:
        log.warning(
            "Redis has %s; the routing engine runs faster with %s (README, \"External Redis\")",
            describe(differences),
            describe({name: SERVER_SETTINGS[name] for name in differences}),
        )


@asynccontextmanager
async def open_runtime(settings: Settings, *, clock: Clock | None = None) -> AsyncIterator[Runtime]:
    """Connect to Redis (starting the embedded one if needed) and the database.

    A Redis or database that is down at start is logged, not fatal: /healthz reports it
    and the timer loop keeps retrying, so the process recovers when the server returns.
    """
    target = await asyncio.to_thread(ensure_redis, settings)
    client = connect(target.url)
    db = Database(settings)
    engine = Engine(client, line=settings.line, clock=clock)
    runtime = Runtime(settings, target, client, db, engine)
    try:
        try:
            await runtime.reload_territories()
        except Exception:
            log.exception("could not load territory groups; routing without groups for now")
        try:
            await runtime.configure_engine()
        except (RedisError, OSError):
            log.exception("could not configure the routing line; will retry")
        yield runtime
    finally:
        await client.aclose()
        await db.dispose()
        await asyncio.to_thread(target.close)
