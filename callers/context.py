"""Everything the callers package needs at run time, injected by web/ (or a test)."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from twilio.rest import Client

from callers.identity import CallerIdentity
from callers.keys import CallerKeys
from callers.reach import ReachResolver, softphone_by_id
from callers.schedule import ScheduleStore
from callers.settings import CallersSettings
from callers.twilio_api import TwilioApi
from routing.clock import buckets
from routing.engine import Engine

SessionFactory = Callable[[], AbstractAsyncContextManager[Any]]
DEFAULT_HANDLE_S = 8 * 60  # before the day has any completed call to measure


@dataclass
class Callers:
    """The callers package's services for one line."""

    settings: CallersSettings
    engine: Engine
    twilio: Client
    sessions: SessionFactory  # () -> async context manager yielding an AsyncSession
    reach: ReachResolver = softphone_by_id
    rest: TwilioApi = field(init=False)  # the REST requests the bridge makes, over twilio
    identity: CallerIdentity = field(init=False)
    keys: CallerKeys = field(init=False)
    schedule: ScheduleStore = field(init=False)

    def __post_init__(self) -> None:
        self.rest = TwilioApi(self.twilio)
        self.identity = CallerIdentity(self.settings.secret_key)
        self.keys = CallerKeys(self.engine.keys.line)
        self.schedule = ScheduleStore(self.redis, self.engine.keys.line)

    @property
    def redis(self) -> Redis:
        return self.engine.redis

    def now_ms(self) -> int:
        return self.engine.clock.now_ms()

    async def on_duty(self) -> int:
        """How many volunteers are logged in (available, busy or paused)."""
        return (await self.engine.staffing()).logged_in

    async def expected_wait_minutes(self, position: int, channel_class: str) -> int | None:
        """A rough wait from live figures: place x mean handling time / volunteers working.

        None when nobody can take this channel now (we say nothing rather than guess).
        """
        staff = await self.engine.staffing()
        if not staff.working:
            return None
        today = await self.engine.counts(buckets(self.now_ms())[0])
        handle_s = today.handle_ms / 1000 / today.completed if today.completed else DEFAULT_HANDLE_S
        if channel_class == "chat":
            lanes = staff.chat_lanes
        else:
            lanes = staff.working
        return max(1, math.ceil(position * handle_s / lanes / 60))


async def national_departement(ctx: Callers) -> str:
    """A département to route a caller whose own is unknown (the national fallback).

    The engine needs a département for every task; using the one of the volunteer free for
    a call who has waited longest means the call is offered at once to them, and the rings
    widen from there as usual (read from the engine's index, not from every volunteer).
    """
    free = await ctx.engine.longest_idle("voice")
    if free is not None:
        return free.departement
    deps = ctx.engine.territories.departements.values()
    return max(deps, key=lambda d: (d.population, d.code)).code
