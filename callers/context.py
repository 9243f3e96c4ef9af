"""Everything the callers package needs at run time, injected by web/ (or a test)."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from twilio.rest import Client

from callers.identity import CallerIdentity
from callers.keys import CallerKeys
from callers.reach import ReachResolver, softphone_by_id
from callers.schedule import ScheduleStore
from callers.settings import CallersSettings
from routing.clock import buckets
from routing.engine import Engine
from routing.models import Presence

SessionFactory = Callable[[], AbstractAsyncContextManager[Any]]
DEFAULT_HANDLE_S = 8 * 60  # before the day has any completed call to measure


@dataclass(frozen=True)
class Staffing:
    """Volunteers of the line right now, as the voice and chat paths need them."""

    logged_in: int  # available, busy or paused
    working: int  # available, or paused with a conversation still in hand
    chat_lanes: int  # the chat capacity of those working


# KEYS[1]: the line's set of volunteer ids; ARGV[1]: the prefix of a volunteer's hash
# (same hash tag, so the same slot as KEYS[1], as the engine's own scripts do).
_STAFFING = """
local logged_in, working, lanes = 0, 0, 0
for _, vid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('HMGET', ARGV[1] .. vid, 'presence', 'load_voice', 'load_chat', 'chat_cap')
  local presence = v[1]
  if presence and presence ~= 'logged_out' then
    logged_in = logged_in + 1
    local busy = tonumber(v[2] or '0') > 0 or tonumber(v[3] or '0') > 0
    if presence == 'available' or (presence == 'paused' and busy) then
      working = working + 1
      lanes = lanes + tonumber(v[4] or '0')
    end
  end
end
return {logged_in, working, lanes}
"""


@dataclass
class Callers:
    """The callers package's services for one line."""

    settings: CallersSettings
    engine: Engine
    twilio: Client
    sessions: SessionFactory  # () -> async context manager yielding an AsyncSession
    reach: ReachResolver = softphone_by_id
    identity: CallerIdentity = field(init=False)
    keys: CallerKeys = field(init=False)
    schedule: ScheduleStore = field(init=False)
    _staffing: AsyncScript = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._staffing = self.engine.redis.register_script(_STAFFING)
        self.identity = CallerIdentity(self.settings.secret_key)
        self.keys = CallerKeys(self.engine.keys.line)
        self.schedule = ScheduleStore(self.redis, self.engine.keys.line)

    @property
    def redis(self) -> Redis:
        return self.engine.redis

    def now_ms(self) -> int:
        return self.engine.clock.now_ms()

    async def staffing(self) -> Staffing:
        """Who is logged in and who is working, counted inside Redis in one script.

        Every incoming call and hold announcement asks: reading each volunteer's hash
        into Python cost about a tenth of a millisecond per volunteer per webhook, most
        of the server's CPU per call (bench/voice_cpu.py); the script reads the same
        hashes as the engine left them, at one instant.
        """
        keys = self.engine.keys
        logged_in, working, chat_lanes = await self._staffing(keys=[keys.vols], args=[keys.vol("")])
        return Staffing(int(logged_in), int(working), int(chat_lanes))

    async def on_duty(self) -> int:
        """How many volunteers are logged in (available, busy or paused)."""
        return (await self.staffing()).logged_in

    async def expected_wait_minutes(self, position: int, channel_class: str) -> int | None:
        """A rough wait from live figures: place x mean handling time / volunteers working.

        None when nobody can take this channel now (we say nothing rather than guess).
        """
        staff = await self.staffing()
        if not staff.working:
            return None
        day, _ = buckets(self.now_ms())
        stats = await self.redis.hgetall(self.engine.keys.stats(day))
        completed = int(stats.get("completed", 0))
        handle_s = (
            int(stats.get("handle_ms", 0)) / 1000 / completed if completed else DEFAULT_HANDLE_S
        )
        if channel_class == "chat":
            lanes = staff.chat_lanes
        else:
            lanes = staff.working
        return max(1, math.ceil(position * handle_s / lanes / 60))


async def national_departement(ctx: Callers) -> str:
    """A département to route a caller whose own is unknown (the national fallback).

    The engine needs a département for every task; using the one of the volunteer who
    has waited longest means the call is offered at once to whoever is free, and the
    rings widen from there as usual.
    """
    available = [v for v in await ctx.engine.volunteers() if v.presence is Presence.AVAILABLE]
    if available:
        return min(available, key=lambda v: (v.idle_since_ms, v.id)).departement
    deps = ctx.engine.territories.departements.values()
    return max(deps, key=lambda d: (d.population, d.code)).code
