"""The history database of the coordination tests: the test's database, migrated to head."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from web.db import Database


@pytest.fixture
def history_db(database: Database) -> AsyncEngine:
    """SQLite by default, PostgreSQL with DATABASE_URL; tables made by the migrations."""
    return database.engine
