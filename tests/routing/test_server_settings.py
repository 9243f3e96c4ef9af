"""The recommended Redis settings: reported when a server has others, carried by the deployment."""

from __future__ import annotations

import uuid
from pathlib import Path

import yaml
from redis.asyncio import Redis

from routing.server_settings import SERVER_SETTINGS, settings_differences

ROOT = Path(__file__).resolve().parents[2]


async def test_a_server_with_other_values_is_reported_with_them(
    redis: Redis, restored_settings: dict[str, str]
) -> None:
    for name in SERVER_SETTINGS:
        await redis.config_set(name, "128")
    assert await settings_differences(redis) == {name: "128" for name in SERVER_SETTINGS}

    for name, value in SERVER_SETTINGS.items():
        await redis.config_set(name, value)
    assert await settings_differences(redis) == {}


async def test_a_server_that_refuses_config_is_not_reported(redis: Redis, redis_url: str) -> None:
    user, password = f"noconfig{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    await redis.acl_setuser(
        user, enabled=True, passwords=[f"+{password}"], keys=["*"], commands=["+@all", "-config"]
    )
    limited = Redis.from_url(redis_url, username=user, password=password, decode_responses=True)
    try:
        assert await limited.ping()
        assert await settings_differences(limited) is None
    finally:
        await limited.aclose()
        await redis.acl_deluser(user)


def test_docker_compose_gives_its_redis_the_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    command = compose["services"]["redis"]["command"]
    given = dict(zip(command[1::2], command[2::2], strict=False))
    for name, value in SERVER_SETTINGS.items():
        assert given.get(f"--{name}") == value, name
