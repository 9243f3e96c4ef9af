"""The `permanence` command, run as a real process against the test Redis and database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from redis.asyncio import Redis

from routing.engine import Engine
from routing.models import Channel, Presence, TaskSpec, VolunteerProfile
from web.migrate import current, heads
from web.settings import Settings


def permanence(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would (`python -m web.cli` is the `permanence` entry point)."""
    return subprocess.run(
        [sys.executable, "-m", "web.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def cli_env(settings: Settings) -> dict[str, str]:
    return {
        "REDIS_URL": settings.redis_url,
        "DATABASE_URL": settings.database_url,
        "DATABASE_SCHEMA": settings.database_schema,
        "DATA_DIR": str(settings.data_dir),
        "LINE": settings.line,
        "SECRET_KEY": settings.secret_key,
    }


async def test_check_invariants_says_ok_on_a_sound_line(
    engine: Engine, app_settings: Settings
) -> None:
    await engine.log_in(VolunteerProfile("v05", "05", name="Vol"))
    await engine.set_presence("v05", Presence.AVAILABLE)
    await engine.enqueue(TaskSpec("t1", Channel.VOICE, "05"))
    await engine.enqueue(TaskSpec("t2", Channel.CHAT, "75"))

    result = permanence("check-invariants", env=cli_env(app_settings))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK")


async def test_check_invariants_names_each_problem_and_exits_1(
    engine: Engine, redis: Redis, app_settings: Settings
) -> None:
    await engine.enqueue(TaskSpec("t1", Channel.VOICE, "05"))
    # Damage the live state behind the engine's back: a task in no known state.
    await redis.hset(engine.keys.task("ghost"), mapping={"state": "lost-in-space"})
    await redis.sadd(engine.keys.live, "ghost")

    result = permanence("check-invariants", env=cli_env(app_settings))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "task ghost is live with state 'lost-in-space'" in result.stdout
    assert "problem(s)" in result.stderr


async def test_check_invariants_reads_the_line_option(
    engine: Engine, redis: Redis, app_settings: Settings
) -> None:
    await redis.hset(engine.keys.task("ghost"), mapping={"state": "lost-in-space"})
    await redis.sadd(engine.keys.live, "ghost")
    env = {**cli_env(app_settings), "LINE": "some-other-line"}
    assert permanence("check-invariants", env=env).returncode == 0
    assert permanence("check-invariants", "--line", engine.keys.line, env=env).returncode == 1


def test_check_invariants_says_when_redis_is_unreachable(tmp_path: Path) -> None:
    env = {"REDIS_URL": "redis://127.0.0.1:1/0", "DATA_DIR": str(tmp_path)}
    result = permanence("check-invariants", env=env)
    assert result.returncode == 2
    assert "cannot reach Redis" in result.stderr


def test_migrate_brings_an_empty_sqlite_file_to_head(tmp_path: Path) -> None:
    db = tmp_path / "cli.db"
    env = {"DATABASE_URL": f"sqlite:///{db}", "DATA_DIR": str(tmp_path), "REDIS_URL": ""}
    result = permanence("migrate", env=env)
    assert result.returncode == 0, result.stderr
    assert f"at revision {heads()[0]}" in result.stdout
    settings = Settings(_env_file=None, data_dir=tmp_path, database_url=f"sqlite:///{db}")
    assert current(settings) == set(heads())


def test_help_lists_the_commands() -> None:
    result = permanence("--help", env={})
    assert result.returncode == 0
    for command in ("serve", "demo", "check-invariants", "migrate", "revision"):
        assert command in result.stdout


def test_serve_spawns_workers_without_rerunning_the_cli(tmp_path: Path) -> None:
    """Workers are spawned: multiprocessing would re-run the `permanence` script in each."""
    script = tmp_path / "permanence"
    script.write_text(
        "import multiprocessing.spawn\n"
        "from web.cli import _lighten_workers\n"
        "def rerun(): return sorted(k for k in multiprocessing.spawn.get_preparation_data('w')"
        " if k.startswith('init_main'))\n"
        "before = rerun()\n"
        "_lighten_workers()\n"
        "print(before, rerun())\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == "['init_main_from_path'] []"


def test_the_app_does_not_load_command_line_tools() -> None:
    """httpx's own CLI (rich, pygments) and typer stay out of the workers."""
    code = (
        "import sys, web.ws_protocol, web.app, callers.web, volunteers.web, web.coordination.web;"
        "print(sorted(m for m in ('rich', 'pygments', 'typer', 'httpx') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "['httpx']"
