"""Helpers for the engine's behavioural tests: a desk that staffs volunteers and places calls."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest
from redis.asyncio import Redis

from routing.clock import ManualClock
from routing.config import RoutingConfig
from routing.engine import Engine
from routing.events import Event, read_range
from routing.invariants import check_invariants
from routing.models import Channel, Presence, Task, TaskSpec, TaskState, VolunteerProfile

# The behavioural tests are written against widening thresholds of 15 s (group), 30 s (région)
# and 90 s (national): the rings are what they test, whatever RoutingConfig's defaults are
# (0/0/0 since the policy study of 2026-11-30, bench/README.md).
WIDEN_S = (15, 30, 90)
TEST_CONFIG = RoutingConfig(
    widen_group_s=WIDEN_S[0], widen_region_s=WIDEN_S[1], widen_national_s=WIDEN_S[2]
)


@pytest.fixture
async def engine(redis: Redis, line: str, clock: ManualClock, territories) -> AsyncIterator[Engine]:
    """The shared fixture's engine, with the thresholds these tests are written against."""
    eng = Engine(redis, line=line, territories=territories, clock=clock)
    await eng.configure(TEST_CONFIG)
    yield eng
    async for key in redis.scan_iter(match=eng.keys.pattern(), count=1000):
        await redis.delete(key)


class Desk:
    """Short verbs over the engine so each test reads like the scenario it checks."""

    def __init__(self, engine: Engine, clock: ManualClock) -> None:
        self.engine = engine
        self.clock = clock

    async def volunteer(
        self,
        vid: str,
        dept: str,
        *,
        skills: Iterable[str] = (),
        languages: Iterable[str] = (),
        chat_capacity: int = 2,
        available: bool = True,
    ) -> None:
        """Log a volunteer in and, by default, make them available."""
        await self.engine.log_in(
            VolunteerProfile(
                vid, dept, frozenset(skills), frozenset(languages), chat_capacity, name=vid
            )
        )
        if available:
            await self.engine.set_presence(vid, Presence.AVAILABLE)

    async def call(self, tid: str, dept: str, **kwargs: Any) -> Task:
        return await self.engine.enqueue(TaskSpec(tid, Channel.VOICE, dept, **kwargs))

    async def chat(self, tid: str, dept: str, **kwargs: Any) -> Task:
        return await self.engine.enqueue(TaskSpec(tid, Channel.CHAT, dept, **kwargs))

    async def busy(self, vid: str, dept: str, tid: str | None = None) -> str:
        """A volunteer on duty but on a call (their own département's), so not free."""
        tid = tid or f"busy-{vid}"
        await self.volunteer(vid, dept)
        await self.call(tid, dept)
        assert await self.offered_to(tid) == vid, "setup: the call should ring for them"
        await self.engine.accept(vid, tid)
        return tid

    async def wait(self, seconds: float) -> int:
        """Let time pass, then run the timers that fell due (as the app's tick loop does)."""
        self.clock.advance(seconds)
        return await self.engine.tick()

    async def task(self, tid: str) -> Task:
        return await self.engine.require_task(tid)

    async def state(self, tid: str) -> TaskState:
        return (await self.task(tid)).state

    async def offered_to(self, tid: str) -> str | None:
        """The volunteer whose console rings with this task, if any."""
        task = await self.task(tid)
        return task.volunteer if task.state is TaskState.RESERVED else None

    async def events(self) -> list[Event]:
        return await read_range(self.engine.redis, self.engine.keys)

    async def event_types(self, tid: str | None = None, vid: str | None = None) -> list[str]:
        """Types of the events so far, optionally only those about one task or volunteer."""
        return [
            e.type.value
            for e in await self.events()
            if (tid is None or e.task == tid) and (vid is None or e.volunteer == vid)
        ]


@pytest.fixture
async def desk(engine: Engine, clock: ManualClock) -> AsyncIterator[Desk]:
    """The desk; when the test is over, the line it leaves must satisfy every invariant."""
    yield Desk(engine, clock)
    problems = await check_invariants(engine)
    assert not problems, "\n".join(problems)
