"""The Redis server settings the engine's data is laid out for: recommended, not required.

Redis keeps a small hash or sorted set as one packed array (ziplist; listpack in Redis 7)
and finds a field by walking it. Tasks (21-27 fields) and volunteers (17) are hashes that
every transition reads and writes field by field, and the free and waiting sets change on
every offer: walking and re-packing them was the largest single cost of a task's life
cycle inside Redis. With these settings every hash and sorted set is a hash table (and a
skip list): 17 % fewer instructions per life cycle in Redis, for ~2.4 KB more memory per
task kept (ended tasks stay `ended_ttl_s`, 48 h by default) and ~1.5 KB per volunteer
(bench/README.md, "Hash tables instead of packed arrays").

The embedded server, the tests' and the benchmarks' servers start with them; an operator's
server (REDIS_URL) should set them too (redis.conf, or docker-compose.yml's command line).
The engine behaves the same either way, only slower.
"""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import RedisError

# Redis 7 and Valkey still accept these names (aliases of hash-max-listpack-entries...).
SERVER_SETTINGS: dict[str, str] = {
    "hash-max-ziplist-entries": "0",
    "zset-max-ziplist-entries": "0",
}


async def settings_differences(redis: Redis) -> dict[str, str] | None:
    """Each recommended setting the server has otherwise, with its value there.

    None when the server does not say (CONFIG refused, as managed services may do)."""
    found: dict[str, str] = {}
    try:
        for name in SERVER_SETTINGS:
            found.update(await redis.config_get(name))
    except RedisError:
        return None
    return {
        name: found.get(name, "")
        for name, value in SERVER_SETTINGS.items()
        if found.get(name) != value
    }


def describe(settings: dict[str, str]) -> str:
    """Settings as one reads them in a message: 'hash-max-ziplist-entries 0, ...'."""
    return ", ".join(f"{name} {value}" for name, value in settings.items())
