"""The app's lifespan: routing defaults from the settings, the timer loop, the home page."""

from __future__ import annotations

import asyncio
import gc
import logging

import httpx
from fastapi import FastAPI
from redis.asyncio import Redis

from routing.clock import ManualClock
from routing.config import RoutingConfig
from routing.engine import Engine
from routing.models import Channel, Presence, TaskSpec, TaskState, VolunteerProfile
from routing.server_settings import SERVER_SETTINGS
from web.app import create_app
from web.settings import Settings

POLL_LIMIT = 400  # bounded wait for the background loop; never a timing assertion


async def eventually(check, what: str) -> None:
    """Wait for the app's own timer loop to make ``check()`` true."""
    for _ in range(POLL_LIMIT):
        if await check():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"the timer loop never made this happen: {what}")


async def test_the_timer_loop_runs_ring_timeouts_by_itself(
    web_app: FastAPI, clock: ManualClock
) -> None:
    engine: Engine = web_app.state.runtime.engine
    await engine.log_in(VolunteerProfile("v05", "05", name="Vol 05"))
    await engine.set_presence("v05", Presence.AVAILABLE)
    await engine.enqueue(TaskSpec("t1", Channel.VOICE, "05"))
    assert (await engine.require_task("t1")).state is TaskState.RESERVED

    clock.advance((await engine.config()).ring_s)  # nobody answers; nobody calls tick()

    async def ring_timed_out() -> bool:
        return (await engine.require_task("t1")).state is TaskState.WAITING

    await eventually(ring_timed_out, "the unanswered offer ends")
    assert (await engine.volunteer("v05")).misses == 1


async def test_routing_defaults_come_from_settings_without_overwriting(
    app_settings: Settings, redis: Redis, clock: ManualClock
) -> None:
    settings = app_settings.model_copy(update={"routing": RoutingConfig(ring_s=33, wrapup_s=50)})
    # A coordinator already changed the wrap-up time on this line: that choice stays.
    await redis.hset(Engine(redis, line=settings.line).keys.cfg, "wrapup_ms", "75000")
    app = create_app(settings, clock=clock, timers=False)
    async with app.router.lifespan_context(app):
        config = await app.state.runtime.engine.config()
    assert (config.ring_s, config.wrapup_s) == (33, 75)
    async for key in redis.scan_iter(match=Engine(redis, line=settings.line).keys.pattern()):
        await redis.delete(key)


async def test_only_a_served_app_freezes_what_it_allocated_at_start(
    app_settings: Settings, redis: Redis, clock: ManualClock
) -> None:
    gc.unfreeze()
    try:
        for freeze in (False, True):
            app = create_app(app_settings, clock=clock, timers=False, freeze_after_start=freeze)
            async with app.router.lifespan_context(app):
                # Started: a served worker's full collections skip all of it from now on.
                assert (gc.get_freeze_count() > 0) is freeze
    finally:
        gc.unfreeze()  # this test process starts many apps: let their garbage go
    async for key in redis.scan_iter(match=Engine(redis, line=app_settings.line).keys.pattern()):
        await redis.delete(key)


async def test_the_engine_gets_the_groups_stored_in_sql(web_app: FastAPI) -> None:
    from web.territories import save_group

    runtime = web_app.state.runtime
    async with runtime.db.transaction() as session:
        await save_group(session, "cevennes", "Cévennes", ["30", "48"], actor="test")
    await runtime.reload_territories()
    assert runtime.engine.territories.territory("48").groups == ("cevennes",)


async def test_the_home_page_is_in_french(web_client: httpx.AsyncClient) -> None:
    response = await web_client.get("/")
    assert response.status_code == 200
    assert '<html lang="fr">' in response.text
    assert "démarches" in response.text


async def test_the_app_warns_at_start_when_redis_has_other_settings(
    app_settings: Settings, redis: Redis, restored_settings: dict[str, str], caplog
) -> None:
    caplog.set_level(logging.WARNING, logger="web.runtime")
    await redis.config_set("hash-max-ziplist-entries", "128")
    for name, value in SERVER_SETTINGS.items():
        if name != "hash-max-ziplist-entries":
            await redis.config_set(name, value)
    app = create_app(app_settings, timers=False)
    async with app.router.lifespan_context(app):
        pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "Redis has hash-max-ziplist-entries 128; the routing engine runs faster with "
        'hash-max-ziplist-entries 0 (README, "External Redis")'
    ]

    caplog.clear()
    await redis.config_set("hash-max-ziplist-entries", "0")
    async with app.router.lifespan_context(app):
        pass
    assert not [r for r in caplog.records if r.levelno == logging.WARNING]
