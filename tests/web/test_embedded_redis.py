"""The embedded redis-server: append-only persistence, one server shared per DATA_DIR."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from routing.server_settings import SERVER_SETTINGS
from web.redis import EmbeddedRedis, ensure_redis, redis_executable, socket_path_for
from web.settings import Settings


@pytest.fixture
def server(tmp_path: Path):
    embedded = EmbeddedRedis(tmp_path / "data")
    yield embedded
    embedded.stop()


def client_of(embedded: EmbeddedRedis) -> redis.Redis:
    return redis.Redis.from_url(embedded.url, decode_responses=True)


def test_starts_with_append_only_file_and_socket_in_data_dir(server: EmbeddedRedis) -> None:
    assert server.start() is True
    client = client_of(server)
    assert client.config_get("appendonly") == {"appendonly": "yes"}
    assert client.config_get("port") == {"port": "0"}  # no TCP: only the unix socket
    client.set("probe", "1")
    client.close()
    assert server.socket_path == server.data_dir / "redis.sock"
    assert (server.folder / "appendonly.aof").exists()
    assert server.pidfile.read_text().strip() == str(server._process.pid)  # type: ignore[union-attr]


def test_starts_with_the_settings_the_engine_is_laid_out_for(server: EmbeddedRedis) -> None:
    server.start()
    client = client_of(server)
    for name, value in SERVER_SETTINGS.items():
        assert client.config_get(name) == {name: value}
    client.hset("perm:{main}:vol:v1", "presence", "available")
    assert client.object("encoding", "perm:{main}:vol:v1") == "hashtable"
    client.close()


def test_a_scratch_server_runs_the_binary_given_and_keeps_nothing_on_disk(tmp_path: Path) -> None:
    """What a benchmark starts (bench/routing_throughput.py --redis-server)."""
    binary = str(Path(redis_executable()).resolve())
    with EmbeddedRedis(tmp_path, executable=binary, append_only=False) as scratch:
        assert scratch.owned
        client = client_of(scratch)
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.info("server")["executable"] == binary
        client.close()
    assert not (scratch.folder / "appendonly.aof").exists()


def test_data_survives_a_restart(server: EmbeddedRedis) -> None:
    server.start()
    client = client_of(server)
    client.hset("perm:{main}:task:42", mapping={"state": "waiting", "dept": "05"})
    client.xadd("perm:{main}:events", {"type": "task_created", "task": "42"})
    client.close()
    server.stop()
    assert not server.answers()

    again = EmbeddedRedis(server.data_dir)
    try:
        assert again.start() is True
        client = client_of(again)
        assert client.hgetall("perm:{main}:task:42") == {"state": "waiting", "dept": "05"}
        assert client.xlen("perm:{main}:events") == 1
        client.close()
    finally:
        again.stop()


def test_a_running_server_is_reused_and_left_running(server: EmbeddedRedis) -> None:
    server.start()
    other = EmbeddedRedis(server.data_dir)
    assert other.start() is False
    assert other.owned is False
    other.stop()  # not its server: must not stop it
    assert server.answers()


def test_several_processes_starting_at_once_share_one_server(tmp_path: Path) -> None:
    data_dir = tmp_path / "shared"
    script = (
        "import sys, redis\n"
        "from pathlib import Path\n"
        "from web.redis import EmbeddedRedis\n"
        "e = EmbeddedRedis(Path(sys.argv[1]))\n"
        "e.start()\n"
        "print(redis.Redis.from_url(e.url).info('server')['process_id'])\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(data_dir)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    try:
        assert len(set(outputs)) == 1, outputs
    finally:
        # The processes that started it have exited; shut it down as an owner would.
        for pid in set(outputs):
            os.kill(int(pid), signal.SIGTERM)


def test_a_stale_socket_file_does_not_block_a_start(server: EmbeddedRedis) -> None:
    server.data_dir.mkdir(parents=True)
    server.socket_path.write_text("left by a crash")
    assert server.answers() is False
    assert server.start() is True
    assert server.answers()


def test_deep_data_dirs_get_a_short_socket_path(tmp_path: Path) -> None:
    deep = tmp_path.joinpath(*["a-long-folder-name"] * 8)
    path = socket_path_for(deep)
    assert len(str(path)) < 100
    assert path == socket_path_for(deep)  # every process finds the same one
    embedded = EmbeddedRedis(deep)
    try:
        assert embedded.start() is True
        assert client_of(embedded).ping()
    finally:
        embedded.stop()


def test_ensure_redis_uses_redis_url_when_set(tmp_path: Path) -> None:
    target = ensure_redis(
        Settings(_env_file=None, data_dir=tmp_path, redis_url="redis://127.0.0.1:6379/5")
    )
    assert (target.backend, target.url, target.embedded) == (
        "url",
        "redis://127.0.0.1:6379/5",
        None,
    )
    assert not (tmp_path / "redis").exists()
