"""The ``permanence`` command: serve, demo, check-invariants, migrate, revision.

Other packages add their commands here with ``@cli.command()`` (e.g. ``scheduler``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
import uvicorn
from redis.exceptions import RedisError

from web.settings import Settings, get_settings

# Uvicorn's own WebSocket implementation, minus compression on the consoles' sockets.
WS_PROTOCOL = "web.ws_protocol:WebSocketProtocol"

HostOption = Annotated[str | None, typer.Option(help="address to listen on (default HOST)")]
PortOption = Annotated[int | None, typer.Option(help="port to listen on (default PORT)")]

cli = typer.Typer(
    help="Permanence: a helpline platform for help with online procedures.",
    no_args_is_help=True,
    add_completion=False,
)


def _exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so ``finally`` blocks run (and stop embedded Redis).

    Uvicorn handles SIGTERM while it serves, then re-raises it once it has stopped; with
    the default handler that would kill the process before our clean-up.
    """

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # APScheduler logs every job added and every run at INFO: dozens of lines per slot.
    # Missed jobs and errors are warnings, so they still show.
    if logging.getLogger().level > logging.DEBUG:
        for name in ("apscheduler.scheduler", "apscheduler.executors.default"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _lighten_workers() -> None:
    """Spare each worker process what it never uses (measured in bench/README.md, RSS).

    Uvicorn starts workers with multiprocessing's "spawn": a fresh interpreter that first
    re-runs the parent's ``__main__``, found by its ``__spec__`` or its ``__file__`` —
    here this whole CLI (typer, the simulator's command and its rich and httpx imports,
    ~2 MB per worker) although uvicorn hands the app over by name ("web.app:create_served_app").
    A ``__main__`` with neither is left alone. Nothing of ``__main__`` is sent to a worker.
    """
    main = sys.modules["__main__"]
    main.__spec__ = None
    with contextlib.suppress(AttributeError):
        del main.__file__
    # glibc gives each thread that allocates a malloc arena of its own, up to 8 per core,
    # and keeps it: the short-lived threads of a worker (aiosqlite runs each SQLite
    # connection in one, asyncio.to_thread) had left it 15 arenas holding 5-6 MB after
    # 500 consoles and some calls. Its Python work runs on one thread, so two arenas
    # suffice: 1-4 MB less per worker, latency unchanged. Read by glibc as a process
    # starts, so it applies to the workers started after this, not to this process.
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")


@cli.command()
def serve(
    host: HostOption = None,
    port: PortOption = None,
    workers: Annotated[int | None, typer.Option(help="app processes (default WORKERS)")] = None,
) -> None:
    """Run the web app: migrate the database, start Redis if embedded, serve HTTP."""
    # Workers are separate processes that read the environment: pass overrides through it.
    for name, value in (("HOST", host), ("PORT", port), ("WORKERS", workers)):
        if value is not None:
            os.environ[name] = str(value)
    get_settings.cache_clear()
    settings = get_settings()
    setup_logging(settings.log_level)
    from web.migrate import upgrade
    from web.redis import ensure_redis

    upgrade(settings)
    # Started here, before the workers, so that they all share one embedded server.
    target = ensure_redis(settings)
    _exit_on_sigterm()
    _lighten_workers()
    try:
        uvicorn.run(
            "web.app:create_served_app",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level=settings.log_level,
            proxy_headers=True,
            ws=WS_PROTOCOL,
        )
    finally:
        target.close()


@cli.command()
def demo(
    host: HostOption = None,
    port: PortOption = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="where demo data lives (default DATA_DIR)")
    ] = None,
) -> None:
    """Start everything with the embedded defaults, add demo data, print what to open."""
    ignored = [name for name in ("REDIS_URL", "DATABASE_URL") if os.environ.get(name)]
    overrides: dict[str, object] = {"redis_url": "", "database_url": "", "database_schema": ""}
    # No Twilio account configured: the demo's telephony goes to the built-in fake Twilio.
    overrides["twilio_fake"] = not os.environ.get("TWILIO_ACCOUNT_SID")
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    settings = Settings(**overrides)  # type: ignore[arg-type]
    setup_logging(settings.log_level)
    if ignored:
        typer.echo(f"demo: ignoring {' and '.join(ignored)}: the demo runs on embedded data")
    from web.app import create_app
    from web.demo import banner, run_seeds
    from web.migrate import upgrade
    from web.redis import ensure_redis

    upgrade(settings)
    target = ensure_redis(settings)
    _exit_on_sigterm()
    try:
        report = asyncio.run(run_seeds(settings))
        typer.echo(banner(settings, report))
        uvicorn.run(
            create_app(settings, freeze_after_start=True),
            host=settings.host,
            port=settings.port,
            log_level="info",
            ws=WS_PROTOCOL,
        )
    finally:
        target.close()


@cli.command("check-invariants")
def check_invariants_command(
    line: Annotated[str | None, typer.Option(help="routing line (default LINE)")] = None,
) -> None:
    """Check the live routing state; print each problem and exit 1 if there is any."""
    settings = get_settings()
    if line is not None:
        settings = settings.model_copy(update={"line": line})
    try:
        problems = asyncio.run(_invariant_problems(settings))
    except (RedisError, OSError) as exc:
        typer.echo(f"cannot reach Redis: {exc}", err=True)
        raise typer.Exit(2) from None
    for problem in problems:
        typer.echo(problem)
    if problems:
        typer.echo(f"{len(problems)} problem(s) on line {settings.line}", err=True)
        raise typer.Exit(1)
    typer.echo(f"OK: line {settings.line} satisfies every invariant")


async def _invariant_problems(settings: Settings) -> list[str]:
    from routing.engine import Engine
    from routing.invariants import check_invariants
    from web.redis import connect, ensure_redis

    target = await asyncio.to_thread(ensure_redis, settings)
    client = connect(target.url)
    try:
        return await check_invariants(Engine(client, line=settings.line))
    finally:
        await client.aclose()
        await asyncio.to_thread(target.close)


@cli.command()
def migrate(
    revision: Annotated[str, typer.Option(help="target revision")] = "head",
) -> None:
    """Bring the database schema up to date (what serve and demo do at start)."""
    from web.migrate import current, upgrade

    settings = get_settings()
    setup_logging(settings.log_level)
    upgrade(settings, revision)
    at = ", ".join(sorted(current(settings))) or "base"
    typer.echo(f"database ({settings.database_backend}) at revision {at}")


@cli.command()
def scheduler() -> None:
    """Run the shift scheduler (reminders, no-shows, slot ends); one leads among many."""
    import asyncio

    from web.shift_scheduler import run_scheduler

    settings = get_settings()
    setup_logging(settings.log_level)
    asyncio.run(run_scheduler(settings))


@cli.command()
def revision(message: Annotated[str, typer.Argument(help="what the migration does")]) -> None:
    """Write a new migration from the difference between the models and the migrations."""
    from web.migrate import new_revision

    for path in new_revision(message):
        typer.echo(f"wrote {path} - review it before committing")


def _add_simulate() -> None:
    from web.simulation.command import simulate_command

    cli.command("simulate")(simulate_command)


_add_simulate()


def main() -> None:
    """Entry point of the ``permanence`` script."""
    cli()


if __name__ == "__main__":
    main()
