"""FastAPI dependencies: how a route reaches the process's runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from redis.asyncio import Redis
from sqlmodel.ext.asyncio.session import AsyncSession

from routing.engine import Engine
from web.runtime import Runtime
from web.settings import Settings


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_engine(request: Request) -> Engine:
    return request.app.state.runtime.engine


def get_redis(request: Request) -> Redis:
    return request.app.state.runtime.redis


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """A database session for one request; commit explicitly, it rolls back otherwise."""
    async with request.app.state.runtime.db.session() as session:
        yield session
