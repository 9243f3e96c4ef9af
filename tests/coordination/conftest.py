"""A real database for the coordination tests: SQLite file, or PostgreSQL with DATABASE_URL."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from web.coordination.models import Contact, RoutingEvent


def async_url(url: str) -> str:
    """The async-driver spelling of a database URL."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url


@pytest.fixture
async def history_db(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on a database holding the history tables (each test uses its own line)."""
    url = os.environ.get("DATABASE_URL")
    if url:
        db = create_async_engine(async_url(url))
    else:
        db = create_async_engine(
            f"sqlite+aiosqlite:///{tmp_path / 'history.db'}", connect_args={"timeout": 30}
        )
    tables = [RoutingEvent.__table__, Contact.__table__]  # type: ignore[attr-defined]
    async with db.begin() as conn:
        await conn.run_sync(lambda c: RoutingEvent.metadata.create_all(c, tables=tables))
    yield db
    await db.dispose()
