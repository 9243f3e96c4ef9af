"""Per-call and per-task state of the voice line in Redis (fast to read in a webhook)."""

from __future__ import annotations

import secrets

from callers.context import Callers

TTL_S = 2 * 24 * 3600


def new_id(prefix: str) -> str:
    """An opaque identifier (tasks, conferences, legs): reveals nothing about the caller."""
    return prefix + secrets.token_hex(8)


async def get_call(ctx: Callers, call_sid: str) -> dict[str, str]:
    return await ctx.redis.hgetall(ctx.keys.call(call_sid))


async def set_call(ctx: Callers, call_sid: str, **fields: str) -> None:
    key = ctx.keys.call(call_sid)
    async with ctx.redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping=fields)
        pipe.expire(key, TTL_S)
        await pipe.execute()


async def update_call(ctx: Callers, call_sid: str, **fields: str) -> dict[str, str]:
    """set_call, then the whole state as it is after the write (one round trip)."""
    key = ctx.keys.call(call_sid)
    async with ctx.redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping=fields)
        pipe.expire(key, TTL_S)
        pipe.hgetall(key)
        *_, state = await pipe.execute()
    return state


async def claim_call_field(ctx: Callers, call_sid: str, field: str, value: str) -> str:
    """Set a field only once (Twilio retries); returns the value that won."""
    key = ctx.keys.call(call_sid)
    # One MULTI rather than three round trips: every webhook's CPU is mostly Redis calls.
    async with ctx.redis.pipeline(transaction=True) as pipe:
        pipe.hsetnx(key, field, value)
        pipe.expire(key, TTL_S)
        pipe.hget(key, field)
        *_, won = await pipe.execute()
    return won or value


async def get_task(ctx: Callers, task_id: str) -> dict[str, str]:
    return await ctx.redis.hgetall(ctx.keys.task(task_id))


async def set_task(
    ctx: Callers, task_id: str, *, first: dict[str, str] | None = None, **fields: str
) -> None:
    """Write a task's fields; those in ``first`` only if the task has none yet: a retried
    webhook must not give a task a second conference while somebody already waits in it."""
    key = ctx.keys.task(task_id)
    async with ctx.redis.pipeline(transaction=True) as pipe:
        pipe.hset(key, mapping=fields)
        for field, value in (first or {}).items():
            pipe.hsetnx(key, field, value)
        pipe.expire(key, TTL_S)
        await pipe.execute()


async def once(ctx: Callers, what: str) -> bool:
    """True the first time an effect is claimed (e.g. one bridge per assignment)."""
    return bool(await ctx.redis.set(ctx.keys.once(what), "1", nx=True, ex=TTL_S))


def _caller_off(call_sid: str) -> str:
    return f"caller-off:{call_sid}"


async def caller_off(ctx: Callers, call_sid: str) -> bool:
    """True for the first to know a caller's call is over (their hang-up, or ours)."""
    return await once(ctx, _caller_off(call_sid))


async def call_is_over(ctx: Callers, call_sid: str) -> bool:
    """Whether somebody already knows this call is over (see caller_off)."""
    return bool(await ctx.redis.exists(ctx.keys.once(_caller_off(call_sid))))
