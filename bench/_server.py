"""Shared plumbing of the end-to-end benchmarks: a real server, seeded accounts, figures.

- ``running_server``: ``permanence serve`` with N worker processes in a temporary
  DATA_DIR (embedded Redis and SQLite unless REDIS_URL / DATABASE_URL are set), on a
  fresh routing line, the fake Twilio on, every territorial ring open at once (so the
  event that makes a match possible is the contact's arrival or a volunteer freeing
  up, never a widening timer), and the callers' line open around the clock.
- ``seed_accounts``: volunteer and coordinator accounts written straight to SQL (one
  transaction, one password hash), and a signed session cookie for each, made with the
  server's own SECRET_KEY the way web/auth.py signs them (no 2,000 logins).
- ``RssSampler``: resident memory of every server process, sampled in the background.
- ``Pacer``: a fixed-rate schedule that reports how far behind the client fell.
- ``summary``: percentiles.

Not a test helper: nothing here asserts on speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

AUTH_TOKEN = "bench-auth-token"
ACCOUNT_SID = "AC" + "b" * 32
STARTUP_TIMEOUT_S = 180.0


def clock() -> float:
    """The one clock every timestamp of a benchmark is taken with (seconds)."""
    return time.perf_counter()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{platform.node()} ({platform.machine()}, {psutil.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, load average {load})"
    )


# Percentiles ------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None when empty."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def summary(values_s: list[float]) -> dict[str, Any]:
    """Count, mean and percentiles of durations given in seconds, reported in ms."""

    def ms(x: float | None) -> float | None:
        return None if x is None else round(x * 1000, 2)

    return {
        "n": len(values_s),
        "mean_ms": ms(sum(values_s) / len(values_s)) if values_s else None,
        "p50_ms": ms(percentile(values_s, 50)),
        "p90_ms": ms(percentile(values_s, 90)),
        "p99_ms": ms(percentile(values_s, 99)),
        "max_ms": ms(max(values_s)) if values_s else None,
    }


def fmt_summary(s: dict[str, Any]) -> str:
    if not s["n"]:
        return "no sample"
    return (
        f"p50 {s['p50_ms']:.1f} ms, p90 {s['p90_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, "
        f"max {s['max_ms']:.1f} ms (n={s['n']:,})"
    )


# The server --------------------------------------------------------------------------------


@dataclass
class Server:
    """A running ``permanence serve`` and what the benchmark needs to talk to it."""

    proc: subprocess.Popen[bytes]
    base_url: str
    ws_url: str
    env: dict[str, str]
    data_dir: Path
    log_path: Path
    workers: int
    line: str

    def settings(self) -> Any:
        """The server's Settings, read from the same environment (for seeding in-process)."""
        from web.settings import Settings

        overrides = {k.lower(): v for k, v in self.env.items() if k in SETTING_NAMES}
        return Settings(**overrides)

    def processes(self) -> dict[str, psutil.Process]:
        """The app processes by role: 'main', 'worker-1'..., 'redis' (embedded only)."""
        main = psutil.Process(self.proc.pid)
        found: dict[str, psutil.Process] = {"main": main}
        n = 0
        for child in sorted(main.children(recursive=True), key=lambda p: p.pid):
            try:
                cmd = " ".join(child.cmdline())
            except psutil.Error:
                continue
            if "redis-server" in cmd:
                found["redis"] = child
            elif "resource_tracker" in cmd:
                continue
            elif "multiprocessing" in cmd or "spawn_main" in cmd:
                n += 1
                found[f"worker-{n}"] = child
        return found

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def log_counts(self) -> dict[str, int]:
        """How many log lines of each level the server wrote (warnings and errors matter)."""
        counts = {"WARNING": 0, "ERROR": 0, "Traceback": 0}
        try:
            with self.log_path.open(errors="replace") as f:
                for line in f:
                    for key in counts:
                        if key in line:
                            counts[key] += 1
        except OSError:
            pass
        return counts


SETTING_NAMES = {
    "DATA_DIR",
    "REDIS_URL",
    "DATABASE_URL",
    "DATABASE_SCHEMA",
    "SECRET_KEY",
    "PUBLIC_BASE_URL",
    "LINE",
    "HOST",
    "PORT",
    "WORKERS",
    "LOG_LEVEL",
    "TWILIO_FAKE",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_NUMBER",
    "TWILIO_API_BASE",
}


@contextlib.asynccontextmanager
async def running_server(
    workers: int, *, log_level: str = "warning", extra_env: dict[str, str] | None = None
) -> AsyncIterator[Server]:
    """Start ``permanence serve`` on a free port; stop it (SIGTERM) and clean up after."""
    with tempfile.TemporaryDirectory(prefix="perm-bench-srv-") as folder:
        data_dir = Path(folder)
        port = free_port()
        line = "bench" + uuid.uuid4().hex[:10]
        base = f"http://127.0.0.1:{port}"
        env = {
            **{k: v for k, v in os.environ.items() if k not in SETTING_NAMES},
            "DATA_DIR": str(data_dir),
            "REDIS_URL": os.environ.get("REDIS_URL", ""),
            "DATABASE_URL": os.environ.get("DATABASE_URL", ""),
            "DATABASE_SCHEMA": os.environ.get("DATABASE_SCHEMA", ""),
            "SECRET_KEY": secrets.token_urlsafe(48),
            "PUBLIC_BASE_URL": base,
            "LINE": line,
            "HOST": "127.0.0.1",
            "PORT": str(port),
            "WORKERS": str(workers),
            "LOG_LEVEL": log_level,
            "TWILIO_FAKE": "true",
            "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "TWILIO_NUMBER": "+33800000000",
            # Every ring open at once: a contact may go to any idle volunteer at arrival.
            "ROUTING__WIDEN_GROUP_S": "0",
            "ROUTING__WIDEN_REGION_S": "0",
            "ROUTING__WIDEN_NATIONAL_S": "0",
            **(extra_env or {}),
        }
        schema = ""
        if env["DATABASE_URL"].startswith("postgres") and not env["DATABASE_SCHEMA"]:
            # A schema of our own on a shared server, dropped afterwards.
            schema = env["DATABASE_SCHEMA"] = "bench_" + uuid.uuid4().hex[:10]
            _pg(env["DATABASE_URL"], f"CREATE SCHEMA {schema}")
        log_path = data_dir / "server.log"
        exe = Path(sys.executable).parent / "permanence"
        command = [str(exe)] if exe.exists() else [sys.executable, "-m", "web.cli"]
        with log_path.open("wb") as log:
            # Blocking is fine here: once, before any load.
            proc = subprocess.Popen(  # noqa: ASYNC220
                [*command, "serve"],
                env=env,
                cwd=data_dir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = Server(
            proc, base, base.replace("http", "ws", 1), env, data_dir, log_path, workers, line
        )
        try:
            await _wait_healthy(server)
            yield server
        finally:
            await _stop(server)
            keep = os.environ.get("BENCH_KEEP_LOG")
            if keep:  # the temporary DATA_DIR goes away: copy the server's log out first
                Path(keep).write_bytes(log_path.read_bytes())  # noqa: ASYNC240 - once, at exit
            if env["REDIS_URL"]:
                await _delete_line_keys(env["REDIS_URL"], line)
            if schema:
                _pg(env["DATABASE_URL"], f"DROP SCHEMA {schema} CASCADE")


def _pg(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(
        url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as c:
        c.execute(sql)  # type: ignore[arg-type]


async def _wait_healthy(server: Server) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            if server.proc.poll() is not None:
                raise RuntimeError(f"server exited at start:\n{server.log_tail(40)}")
            try:
                if (await client.get(server.base_url + "/healthz")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not healthy in time:\n{server.log_tail(40)}")
            await asyncio.sleep(0.3)
        # Every worker must be serving (its hubs running) before consoles connect.
        while len([k for k in server.processes() if k.startswith("worker")]) < (
            server.workers if server.workers > 1 else 0
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not start in time")
            await asyncio.sleep(0.3)
        for _ in range(4 * server.workers):
            await client.get(server.base_url + "/healthz")
    await asyncio.sleep(1.0)


async def _stop(server: Server) -> None:
    proc = server.proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        for _ in range(300):
            if proc.poll() is not None:
                break
            await asyncio.sleep(0.1)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # our own process group (start_new_session)
        proc.wait()


async def _delete_line_keys(url: str, line: str) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(url, decode_responses=True)
    try:
        async for key in redis.scan_iter(match=f"*{{{line}}}*", count=1000):
            await redis.unlink(key)
    finally:
        await redis.aclose()


# Accounts ----------------------------------------------------------------------------------


@dataclass
class Seeded:
    """Accounts written for the run, each with its session cookie."""

    volunteers: list[tuple[str, str, str]]  # (public id, département, cookie header)
    coordinators: list[tuple[str, str]]  # (public id, cookie header)


def session_cookie(secret_key: str, account_id: int, version: int = 0) -> str:
    """A session cookie for this account, signed as web/auth.py signs them."""
    from itsdangerous import URLSafeTimedSerializer

    from volunteers.access import new_session_data
    from web.auth import COOKIE_NAME

    serializer = URLSafeTimedSerializer(secret_key, salt="permanence-session")
    return f"{COOKIE_NAME}={serializer.dumps(new_session_data(account_id, version))}"


async def open_all_day(redis: Any, line: str) -> None:
    """The callers' line open every day, all day, holidays included: a benchmark's calls
    never meet a closed line."""
    from callers.schedule import Schedule, ScheduleStore

    await ScheduleStore(redis, line).save(
        Schedule(weekly={d: [("00:00", "23:59")] for d in range(7)}, public_holidays_closed=False)
    )


async def seed_accounts(server: Server, volunteers: int, coordinators: int) -> Seeded:
    """Approved volunteers spread evenly over the départements, with every skill; coordinators.

    Written straight to SQL in one transaction (the app's own models), and the callers'
    opening hours set to every day, all day, so that calls are queued whatever the hour.
    """
    from routing.skills import SKILLS
    from routing.territory import load_territories
    from volunteers.credentials import hash_password
    from volunteers.models import Account, AccountStatus, Role
    from web.runtime import open_runtime

    settings = server.settings()
    departements = sorted(load_territories().departements)
    password = hash_password(secrets.token_urlsafe(16))  # nobody logs in with it
    skills = ",".join(sorted(SKILLS))
    rows: list[tuple[Any, str]] = []
    async with open_runtime(settings) as runtime:
        await open_all_day(runtime.redis, settings.line)
        async with runtime.db.session() as session:
            for i in range(volunteers):
                dep = departements[i % len(departements)]
                account = Account(
                    public_id=f"vb{i:05d}",
                    email=f"benevole{i}@bench.invalid",
                    password_hash=password,
                    name=f"Bénévole {i}",
                    role=Role.VOLUNTEER.value,
                    status=AccountStatus.APPROVED.value,
                    departement=dep,
                    postal_code=(dep + "000")[:5] if dep.isdigit() else "",
                    skills=skills,
                    languages="fr",
                    ical_token=secrets.token_urlsafe(24),
                )
                session.add(account)
                rows.append((account, dep))
            for i in range(coordinators):
                account = Account(
                    public_id=f"cb{i:05d}",
                    email=f"coordination{i}@bench.invalid",
                    password_hash=password,
                    name=f"Coordination {i}",
                    role=Role.COORDINATOR.value,
                    status=AccountStatus.APPROVED.value,
                    departement="75",
                    postal_code="75001",
                    ical_token=secrets.token_urlsafe(24),
                )
                session.add(account)
                rows.append((account, ""))
            await session.commit()
            ids = [(a.id, a.public_id, a.role, dep) for a, dep in rows]
    vols, coords = [], []
    for account_id, public_id, role, dep in ids:
        cookie = session_cookie(settings.secret_key, int(account_id))
        if role == Role.VOLUNTEER.value:
            vols.append((public_id, dep, cookie))
        else:
            coords.append((public_id, cookie))
    return Seeded(vols, coords)


# Memory ------------------------------------------------------------------------------------


@dataclass
class RssSampler:
    """Samples the resident set size of every server process every `every_s` seconds."""

    server: Server
    every_s: float = 0.5
    samples: dict[str, list[int]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        for role, proc in self.server.processes().items():
            try:
                self.samples.setdefault(role, []).append(proc.memory_info().rss)
            except psutil.Error:
                pass

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(self.every_s):
                self.sample()

        self.sample()
        self._thread = threading.Thread(target=loop, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> dict[str, dict[str, float]]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.sample()
        mb = 1024 * 1024
        return {
            role: {
                "start_mb": round(v[0] / mb, 1),
                "max_mb": round(max(v) / mb, 1),
                "end_mb": round(v[-1] / mb, 1),
            }
            for role, v in sorted(self.samples.items())
        }


def cpu_times(server: Server) -> dict[str, float]:
    """User + system CPU seconds used so far by each server process."""
    out = {}
    for role, proc in server.processes().items():
        with contextlib.suppress(psutil.Error):
            t = proc.cpu_times()
            out[role] = t.user + t.system
    return out


# Load --------------------------------------------------------------------------------------


@dataclass
class Pacer:
    """Starts `action(i)` at `rate` per second for `duration_s`, on an absolute schedule.

    Each start is a task of its own, so a slow reply never delays the next arrival; the
    lag between the scheduled and the actual start shows whether the client kept up.
    """

    rate: float
    duration_s: float
    lags_s: list[float] = field(default_factory=list)
    tasks: set[asyncio.Task[Any]] = field(default_factory=set)

    async def run(self, action: Callable[[int], Awaitable[Any]]) -> int:
        n = int(self.rate * self.duration_s)
        start = clock()
        for i in range(n):
            due = start + i / self.rate
            delay = due - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            self.lags_s.append(max(0.0, clock() - due))
            task = asyncio.create_task(action(i))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return n

    async def drain(self, timeout_s: float) -> int:
        """Wait for the started actions; returns how many were still running at the end."""
        if not self.tasks:
            return 0
        _, pending = await asyncio.wait(set(self.tasks), timeout=timeout_s)
        for task in pending:
            task.cancel()
        return len(pending)


def install_uvloop() -> str:
    """The client's event loop: uvloop when installed (the server uses it too)."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"
