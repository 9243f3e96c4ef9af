"""Schema migrations (Alembic), run in code: at `serve`/`demo` start, in tests, by the CLI."""

from __future__ import annotations

import importlib
import importlib.util
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from web.db import create_sync_engine
from web.settings import Settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
FILE_TEMPLATE = "%%(rev)s_%%(slug)s"
# Any constant shared by all processes: the PostgreSQL advisory lock held while migrating.
MIGRATION_LOCK_ID = 7_310_415_926

# The packages whose tables Alembic manages: every module named ``models`` in them
# (``callers/models.py``, ``web/coordination/models.py``...) is imported before
# comparing or migrating. Put tables in such a module, or list it in EXTRA_MODEL_MODULES.
MODEL_PACKAGES: tuple[str, ...] = ("web", "callers", "volunteers")
EXTRA_MODEL_MODULES: tuple[str, ...] = ()


def model_modules() -> list[str]:
    """Names of the table modules that exist, in a stable order."""
    names: list[str] = []
    for package in MODEL_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        for root in spec.submodule_search_locations:
            base = Path(root)
            for path in sorted(base.rglob("models.py")):
                parts = path.relative_to(base).with_suffix("").parts
                if "migrations" in parts or any(not p.isidentifier() for p in parts):
                    continue
                names.append(".".join((package, *parts)))
    return names + [m for m in EXTRA_MODEL_MODULES if m not in names]


def import_models() -> list[str]:
    """Import every table module so SQLModel.metadata knows all tables; returns their names.

    A module that exists but fails to import raises: no table is ever silently left out.
    """
    names = model_modules()
    for name in names:
        importlib.import_module(name)
    return names


def alembic_config(settings: Settings) -> Config:
    """An Alembic configuration for these settings (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", FILE_TEMPLATE)
    config.attributes["settings"] = settings
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Bring the database up to date (idempotent; safe to run at every start)."""
    command.upgrade(alembic_config(settings), revision)


def downgrade(settings: Settings, revision: str) -> None:
    """Step the schema back to an older revision ("base" drops everything)."""
    command.downgrade(alembic_config(settings), revision)


def heads() -> list[str]:
    """The head revisions of the migration scripts (there must be exactly one)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return list(ScriptDirectory.from_config(config).get_heads())


def current(settings: Settings) -> set[str]:
    """The revisions the database is at (empty before the first migration)."""
    engine = create_sync_engine(settings)
    try:
        with engine.connect() as connection:
            return set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()


def new_revision(message: str) -> list[Path]:
    """Write a migration for the difference between the models and the latest migration.

    The comparison runs against a scratch SQLite database brought to head, so it never
    depends on (or touches) anyone's data. Review the file: autogenerate misses renames.
    """
    if len(heads()) > 1:
        raise RuntimeError("several migration heads: merge them first (alembic merge heads)")
    with tempfile.TemporaryDirectory() as scratch:
        settings = Settings(
            data_dir=Path(scratch),
            database_url=f"sqlite:///{Path(scratch) / 'scratch.db'}",
            redis_url="redis://unused",
            secret_key="scratch",
        )
        config = alembic_config(settings)
        command.upgrade(config, "head")
        # Time-stamped ids sort the files by creation and rarely collide between authors.
        rev_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        scripts = command.revision(config, message=message, autogenerate=True, rev_id=rev_id)
    items = scripts if isinstance(scripts, list) else [scripts]
    return [Path(s.path) for s in items if s is not None]
