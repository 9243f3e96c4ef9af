"""A job for the scheduler tests: counts its runs in Redis (referenced by text, as jobs are)."""

from __future__ import annotations

from volunteers import jobs


async def record(counter_key: str, name: str) -> None:
    await jobs.context().redis.hincrby(counter_key, name, 1)
