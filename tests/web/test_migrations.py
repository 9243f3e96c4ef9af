"""Alembic migrations: one head, they apply from scratch, and they match the models."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from tests.conftest import make_settings
from web.db import create_sync_engine
from web.migrate import current, downgrade, heads, import_models, upgrade
from web.settings import Settings

FOUNDATION_TABLES = {"territory_group", "audit_log"}


@pytest.fixture
def empty_database(tmp_path: Path) -> Iterator[Settings]:
    """Settings on a database with no tables: a new SQLite file, or a new PostgreSQL schema."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        yield make_settings(tmp_path, database_url=f"sqlite:///{tmp_path / 'fresh.db'}")
        return
    schema = "mig_" + uuid.uuid4().hex[:16]
    settings = make_settings(tmp_path, database_url=url, database_schema=schema)
    admin = create_sync_engine(make_settings(tmp_path, database_url=url))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield settings
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def tables_of(settings: Settings) -> set[str]:
    engine = create_sync_engine(settings)
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_there_is_exactly_one_head() -> None:
    assert len(heads()) == 1, f"several migration heads {heads()}: see README, 'Migrations'"


def test_migrations_apply_from_scratch(empty_database: Settings) -> None:
    assert tables_of(empty_database) == set()
    upgrade(empty_database)
    assert current(empty_database) == set(heads())
    assert FOUNDATION_TABLES <= tables_of(empty_database)
    upgrade(empty_database)  # at every start: nothing left to do, no error
    assert current(empty_database) == set(heads())


def test_migrations_go_down_to_nothing_and_up_again(empty_database: Settings) -> None:
    upgrade(empty_database)
    downgrade(empty_database, "base")
    assert tables_of(empty_database) <= {"alembic_version"}
    upgrade(empty_database)
    assert FOUNDATION_TABLES <= tables_of(empty_database)


def test_every_model_table_has_its_migration(empty_database: Settings) -> None:
    """Tables or columns added to a models.py need a migration (`permanence revision`)."""
    modules = import_models()
    assert "web.models" in modules
    upgrade(empty_database)
    engine = create_sync_engine(empty_database)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    finally:
        engine.dispose()
    assert diff == [], "models and migrations differ: run `permanence revision '...'`"


def test_the_database_is_a_real_one(empty_database: Settings) -> None:
    expected = "postgresql" if os.environ.get("DATABASE_URL") else "sqlite"
    assert empty_database.database_backend == expected
    engine = create_sync_engine(empty_database)
    try:
        with engine.connect() as conn:
            assert conn.dialect.name == expected
    finally:
        engine.dispose()
