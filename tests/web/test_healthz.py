"""/healthz checks Redis and the database for real, and names what fails."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from routing.clock import ManualClock
from web.app import create_app
from web.redis import EmbeddedRedis
from web.settings import Settings


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(settings, clock=ManualClock())
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield app, client


async def test_both_parts_fine(web_client: httpx.AsyncClient, app_settings: Settings) -> None:
    response = await web_client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "failing": [],
        "redis": {"ok": True, "backend": "url"},
        "database": {"ok": True, "backend": app_settings.database_backend},
    }


async def test_a_redis_that_refuses_is_named(app_settings: Settings) -> None:
    settings = app_settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    async with running(settings) as (_, client):
        response = await client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "error"
    assert body["failing"] == ["redis"]
    assert body["redis"] == {"ok": False, "backend": "url", "error": "ConnectionError"}
    assert body["database"]["ok"] is True
    assert "127.0.0.1" not in response.text  # no addresses leak


async def test_a_database_that_refuses_is_named(app_settings: Settings) -> None:
    settings = app_settings.model_copy(
        update={"database_url": "postgresql://postgres@127.0.0.1:1/none", "database_schema": ""}
    )
    async with running(settings) as (_, client):
        response = await client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["database"]
    assert body["database"]["ok"] is False
    assert body["database"]["backend"] == "postgresql"
    assert body["redis"]["ok"] is True


async def test_embedded_redis_is_reported_and_its_loss_seen(app_settings: Settings) -> None:
    settings = app_settings.model_copy(update={"redis_url": ""})
    async with running(settings) as (app, client):
        response = await client.get("/healthz")
        assert response.status_code == 200
        assert response.json()["redis"] == {"ok": True, "backend": "embedded"}

        app.state.runtime.redis_target.embedded.stop()  # the server goes away
        response = await client.get("/healthz")
        assert response.status_code == 503
        assert response.json()["failing"] == ["redis"]
        assert response.json()["redis"]["backend"] == "embedded"

        with EmbeddedRedis(settings.data_dir):  # and comes back: the app recovers
            response = await client.get("/healthz")
            assert response.status_code == 200
