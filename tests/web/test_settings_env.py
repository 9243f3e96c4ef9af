"""Settings come from the environment, typed and validated; the secret key persists."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from routing.config import RoutingConfig
from web.db import async_url, sync_url
from web.settings import SECRET_KEY_FILE, Settings

ENV_NAMES = (
    "REDIS_URL", "DATABASE_URL", "DATABASE_SCHEMA", "DATA_DIR", "SECRET_KEY", "PUBLIC_BASE_URL",
    "LINE", "HOST", "PORT", "WORKERS", "LOG_LEVEL", "ROUTING__RING_S", "ROUTING__WIDEN_REGION_S",
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """A clean environment with DATA_DIR in the test's folder."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    return monkeypatch


def test_defaults_use_embedded_redis_and_sqlite(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = Settings()
    assert settings.data_dir == (tmp_path / "data").resolve()
    assert settings.redis_backend == "embedded"
    assert settings.database_backend == "sqlite"
    assert async_url(settings) == f"sqlite+aiosqlite:///{tmp_path.resolve() / 'data/permanence.db'}"
    assert settings.line == "main"
    assert settings.public_base_url == "http://localhost:8000"
    assert settings.routing.ring_s == 20


def test_values_are_read_from_prefix_free_names(env: pytest.MonkeyPatch) -> None:
    env.setenv("REDIS_URL", "redis://cache.internal:6379/3")
    env.setenv("DATABASE_URL", "postgresql://app:pw@db.internal:5432/permanence")
    env.setenv("SECRET_KEY", "from-the-environment")
    env.setenv("PUBLIC_BASE_URL", "https://aide.example.org/")
    env.setenv("LINE", "alpes")
    env.setenv("PORT", "9000")
    env.setenv("WORKERS", "4")
    env.setenv("ROUTING__RING_S", "25")
    env.setenv("ROUTING__WIDEN_REGION_S", "45")
    settings = Settings()
    assert settings.redis_url == "redis://cache.internal:6379/3"
    assert settings.redis_backend == "url"
    assert settings.database_backend == "postgresql"
    assert async_url(settings) == "postgresql+psycopg://app:pw@db.internal:5432/permanence"
    assert sync_url(settings) == "postgresql+psycopg://app:pw@db.internal:5432/permanence"
    assert settings.secret_key == "from-the-environment"
    assert settings.public_base_url == "https://aide.example.org"
    assert (settings.line, settings.port, settings.workers) == ("alpes", 9000, 4)
    assert settings.routing.ring_s == 25
    assert settings.routing.widen_region_s == 45
    assert settings.routing.widen_national_s == RoutingConfig().widen_national_s  # untouched
    assert not (settings.data_dir / SECRET_KEY_FILE).exists()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:////srv/p.db", "sqlite+aiosqlite:////srv/p.db"),
        ("sqlite+aiosqlite:////srv/p.db", "sqlite+aiosqlite:////srv/p.db"),
    ],
)
def test_database_urls_get_the_drivers_we_ship(
    env: pytest.MonkeyPatch, given: str, expected: str
) -> None:
    env.setenv("DATABASE_URL", given)
    assert async_url(Settings()) == expected


def test_generated_secret_key_is_kept_private_and_reused(env: pytest.MonkeyPatch) -> None:
    first = Settings()
    path = first.data_dir / SECRET_KEY_FILE
    assert len(first.secret_key) >= 40
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Settings().secret_key == first.secret_key  # another process, the same key


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LINE", "bad:line"),
        ("LINE", "{x}"),
        ("PORT", "0"),
        ("PORT", "not-a-number"),
        ("ROUTING__RING_S", "0"),
        ("ROUTING__MAX_NO_ANSWER", "0"),
        ("LOG_LEVEL", "chatty"),
    ],
)
def test_bad_values_are_refused_with_the_name(
    env: pytest.MonkeyPatch, name: str, value: str
) -> None:
    env.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    field = name.lower().split("__")[-1]
    assert field in str(info.value)


def test_a_dotenv_file_is_read(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("LINE=depuis-env\nROUTING__WRAPUP_S=90\n", encoding="utf-8")
    settings = Settings()
    assert settings.line == "depuis-env"
    assert settings.routing.wrapup_s == 90
