"""The SQL database: an async SQLAlchemy engine and sessions (SQLModel).

SQLite file ``DATA_DIR/permanence.db`` by default (aiosqlite); PostgreSQL when
``DATABASE_URL`` says so (psycopg 3, used both async by the app and sync by Alembic).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from web.settings import Settings

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg2": "postgresql+psycopg",
    "postgresql+asyncpg": "postgresql+psycopg",
}
_SYNC_DRIVERS = {"sqlite+aiosqlite": "sqlite"}


def async_url(settings: Settings) -> str:
    """The URL the app connects with: the right async driver for each backend."""
    url = settings.database_url or f"sqlite:///{settings.data_dir / 'permanence.db'}"
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("DATABASE_URL must look like postgresql://user@host:5432/name")
    return f"{_ASYNC_DRIVERS.get(scheme, scheme)}://{rest}"


def sync_url(settings: Settings) -> str:
    """The same database through a blocking driver (for Alembic and scripts)."""
    scheme, _, rest = async_url(settings).partition("://")
    return f"{_SYNC_DRIVERS.get(scheme, scheme)}://{rest}"


def backend_of(url: str) -> str:
    """'sqlite' or 'postgresql' for a database URL."""
    return make_url(url).get_backend_name()


def _engine_options(settings: Settings, url: str) -> dict[str, Any]:
    backend = backend_of(url)
    if backend == "sqlite":
        path = make_url(url).database
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return {"connect_args": {"timeout": 30}}
    options: dict[str, Any] = {"pool_pre_ping": True}
    if settings.database_schema:
        if not _SCHEMA_NAME.match(settings.database_schema):
            raise ValueError("DATABASE_SCHEMA must be a plain identifier")
        options["connect_args"] = {"options": f"-csearch_path={settings.database_schema}"}
    return options


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the app, the scheduler and the CLI read while one of them writes.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_sync_engine(settings: Settings) -> Engine:
    """A blocking engine on the configured database (migrations, CLI scripts)."""
    url = sync_url(settings)
    engine = create_engine(url, **_engine_options(settings, url))
    if backend_of(url) == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Database:
    """The async engine and session factory of one process."""

    def __init__(self, settings: Settings) -> None:
        self.url = async_url(settings)
        self.backend = backend_of(self.url)
        self.engine: AsyncEngine = create_async_engine(
            self.url, **_engine_options(settings, self.url)
        )
        if self.backend == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)

    def session(self) -> AsyncSession:
        """A new session; use as ``async with db.session() as session:``."""
        return self.sessions()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work is committed on success and rolled back on error."""
        async with self.sessions() as session, session.begin():
            yield session

    async def ping(self) -> None:
        """Raise unless the database answers a trivial query."""
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
