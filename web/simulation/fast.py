"""The fast simulator: a whole day through the real engine in seconds.

It drives ``routing.engine.Engine`` in-process on a real Redis with a manual clock and
no sockets. A discrete-event loop jumps the clock straight to the next thing that
happens: a caller arriving or hanging up, a volunteer answering an offer (after a short
human delay), finishing a call or a wrap-up, a change of shift, or one of the engine's
own timers (widening, ring time-out, wrap-up time-out), which ``tick()`` then runs.
The volunteers learn of offers the way consoles do: from the engine's event stream.
"""

from __future__ import annotations

import heapq
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum

from routing.clock import PARIS, ManualClock, buckets
from routing.engine import Engine
from routing.errors import RoutingError
from routing.events import Event, EventType
from routing.metrics import Counts
from routing.models import Channel, Presence, TaskSpec, VolunteerProfile
from web.simulation.scenario import HALF_HOUR_S, Scenario, SimCall

BLIND_DEPARTEMENT = "75"  # where everybody "lives" when the engine must ignore territory


class Kind(IntEnum):
    """Simulation events; at the same millisecond they run in this order."""

    SHIFT = 0
    FINISH_WRAPUP = 1
    END_SERVICE = 2
    ACCEPT = 3
    HANG_UP = 4
    ARRIVAL = 5


@dataclass(frozen=True)
class SimOptions:
    """How simulated volunteers behave, and what the engine is told."""

    seed: int = 1
    accept_delay_s: tuple[float, float] = (1.0, 4.0)  # uniform: reading the offer, clicking
    wrapup_s: tuple[float, float] = (5.0, 20.0)  # uniform: filling the short wrap-up form
    miss_rate: float = 0.0  # share of offers left ringing
    territory_blind: bool = False  # the engine sees one territory (national, longest idle)
    day: datetime = datetime(2026, 11, 23, tzinfo=PARIS)  # midnight of the simulated day

    def __post_init__(self) -> None:
        for lo, hi in (self.accept_delay_s, self.wrapup_s):
            if not 0 <= lo <= hi:
                raise ValueError("delay ranges must be 0 <= low <= high")
        if not 0 <= self.miss_rate < 1:
            raise ValueError("miss rate must be in [0, 1)")


@dataclass
class CallRecord:
    """What happened to one caller, with territories as they really are."""

    id: str
    departement: str
    region: str
    arrival_ms: int
    matchable: bool  # a volunteer of the caller's département was on duty at arrival
    outcome: str = "waiting"  # answered | abandoned | closed
    wait_ms: int | None = None
    ring: int | None = None  # 0 département, 1 group, 2 région, 3 national (true territories)
    volunteer: str = ""


@dataclass
class SimResult:
    scenario: str
    records: list[CallRecord]
    counts: Counts  # the engine's own live counters for the run
    wall_s: float
    engine_calls: int
    options: SimOptions
    staffing: list[int] = field(default_factory=list)


class FastSimulator:
    """Runs one scenario on one engine line (use a fresh line per run)."""

    def __init__(self, engine: Engine, scenario: Scenario, options: SimOptions) -> None:
        if not isinstance(engine.clock, ManualClock):
            raise ValueError("the fast simulator needs an engine on a ManualClock")
        self.engine = engine
        self.clock: ManualClock = engine.clock
        self.scenario = scenario
        self.options = options
        self.rng = random.Random(options.seed)
        self.territories = engine.territories
        self.start_ms = int(options.day.timestamp() * 1000)
        self._heap: list[tuple[int, int, int, tuple[str, ...]]] = []
        self._seq = 0
        self._last_event = "0-0"
        self._next_timer: int | None = None
        self.records: dict[str, CallRecord] = {}
        self.calls = {c.id: c for c in scenario.calls}
        self.vol_home = {f"v{i:04d}": d for i, d in enumerate(scenario.volunteer_departements)}
        self.on_duty: set[str] = set()  # presence available, as the event stream says
        self.on_duty_by_dept: Counter[str] = Counter()
        self.rostered: set[str] = set()  # volunteers the shift plan has on duty
        self.answered: set[str] = set()
        self.engine_calls = 0
        self.on_progress = None  # optional callable(done_calls, total_calls)

    # Event queue -------------------------------------------------------------------

    def _push(self, at_ms: int, kind: Kind, *payload: str) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at_ms, int(kind), self._seq, payload))

    def _at(self, seconds: float) -> int:
        return self.start_ms + int(round(seconds * 1000))

    def _uniform_ms(self, bounds: tuple[float, float]) -> int:
        lo, hi = bounds
        return int(round(self.rng.uniform(lo, hi) * 1000))

    # Engine I/O ----------------------------------------------------------------------

    async def _sync(self) -> None:
        """Read what the engine did (events) and when its next timer is due, in one trip."""
        keys = self.engine.keys
        async with self.engine.redis.pipeline(transaction=False) as pipe:
            pipe.xread({keys.events: self._last_event}, count=None)
            pipe.zrange(keys.timers, 0, 0, withscores=True)
            reply, first = await pipe.execute()
        self._next_timer = int(first[0][1]) if first else None
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                self._last_event = entry_id
                self._on_event(Event.parse(entry_id, fields))

    async def _call(self, coro) -> bool:
        """Run one engine transition; False if the engine refused it (a race a console
        would also lose, e.g. accepting an offer the caller just abandoned)."""
        self.engine_calls += 1
        try:
            await coro
            return True
        except RoutingError:
            return False
        finally:
            await self._sync()

    def _on_event(self, ev: Event) -> None:
        now = ev.at_ms
        if ev.type is EventType.TASK_OFFERED:
            if self.rng.random() < self.options.miss_rate:
                return  # left ringing: the engine's ring time-out moves it on
            self._push(now + self._uniform_ms(self.options.accept_delay_s), Kind.ACCEPT,
                       ev.volunteer, ev.task)  # fmt: skip
        elif ev.type is EventType.TASK_ASSIGNED:
            rec = self.records.get(ev.task)
            if rec is None or ev.task in self.answered:
                return
            self.answered.add(ev.task)
            rec.outcome, rec.wait_ms = "answered", int(ev.data.get("waited_ms", "0"))
            rec.volunteer, rec.ring = ev.volunteer, self.territories.ring(
                rec.departement, self.vol_home[ev.volunteer]
            )
            self._push(now + int(round(self.calls[ev.task].service_s * 1000)),
                       Kind.END_SERVICE, ev.volunteer, ev.task)  # fmt: skip
        elif ev.type is EventType.TASK_ENDED:
            rec = self.records.get(ev.task)
            outcome = ev.data.get("outcome", "")
            if rec is not None and outcome in {"abandoned", "closed"} and rec.outcome == "waiting":
                rec.outcome, rec.wait_ms = outcome, now - rec.arrival_ms
        elif ev.type is EventType.VOLUNTEER_PRESENCE:
            dept = self.vol_home.get(ev.volunteer)
            if dept is None:
                return
            available = ev.data.get("presence") == Presence.AVAILABLE.value
            if available and ev.volunteer not in self.on_duty:
                self.on_duty.add(ev.volunteer)
                self.on_duty_by_dept[dept] += 1
            elif not available and ev.volunteer in self.on_duty:
                self.on_duty.discard(ev.volunteer)
                self.on_duty_by_dept[dept] -= 1

    # Handlers ----------------------------------------------------------------------

    def _engine_dept(self, real: str) -> str:
        return BLIND_DEPARTEMENT if self.options.territory_blind else real

    async def _arrival(self, call: SimCall) -> None:
        terr = self.territories.territory(call.departement)
        self.records[call.id] = CallRecord(
            id=call.id,
            departement=terr.departement,
            region=terr.region,
            arrival_ms=self.clock.now_ms(),
            matchable=self.on_duty_by_dept[terr.departement] > 0,
        )
        spec = TaskSpec(
            id=call.id,
            channel=Channel.VOICE,
            departement=self._engine_dept(call.departement),
            priority=call.priority,
            caller_key=call.caller_key,
        )
        await self._call(self.engine.enqueue(spec))
        if call.patience_s is not None:
            self._push(self.clock.now_ms() + int(round(call.patience_s * 1000)),
                       Kind.HANG_UP, call.id)  # fmt: skip

    async def _hang_up(self, task_id: str) -> None:
        if task_id not in self.answered:  # once answered, the call ends with the service
            await self._call(self.engine.cancel(task_id))

    async def _accept(self, volunteer: str, task_id: str) -> None:
        await self._call(self.engine.accept(volunteer, task_id))

    async def _end_service(self, volunteer: str, task_id: str) -> None:
        await self._call(self.engine.complete(volunteer, task_id))
        wrapup = self._uniform_ms(self.options.wrapup_s)
        if wrapup == 0:
            await self._call(self.engine.finish_wrapup(volunteer, task_id))
        else:
            self._push(self.clock.now_ms() + wrapup, Kind.FINISH_WRAPUP, volunteer, task_id)

    async def _shift(self, slot: int) -> None:
        """Bring the number of rostered volunteers to the half hour's staffing."""
        wanted = self.scenario.staffing[slot] if slot < 48 else 0
        off = sorted(set(self.vol_home) - self.rostered)
        while len(self.rostered) < wanted and off:
            vid = off.pop(self.rng.randrange(len(off)))
            self.rostered.add(vid)
            await self._call(self.engine.set_presence(vid, Presence.AVAILABLE))
        while len(self.rostered) > wanted:
            vid = sorted(self.rostered)[self.rng.randrange(len(self.rostered))]
            self.rostered.discard(vid)
            # Logging out mid-call is allowed: the volunteer finishes the call in hand.
            await self._call(self.engine.set_presence(vid, Presence.LOGGED_OUT))

    # Main loop ---------------------------------------------------------------------

    async def run(self) -> SimResult:
        """Simulate the whole scenario; every task ends (closed if still waiting at the end)."""
        wall = time.perf_counter()
        self.clock.advance((self.start_ms - self.clock.now_ms()) / 1000)
        first_day, _ = buckets(self.start_ms)
        for vid, dept in sorted(self.vol_home.items()):
            profile = VolunteerProfile(id=vid, departement=self._engine_dept(dept), name=vid)
            await self._call(self.engine.log_in(profile))
        for slot in range(49):
            self._push(self._at(slot * HALF_HOUR_S), Kind.SHIFT, str(slot))
        for call in self.scenario.calls:
            self._push(self._at(call.arrival_s), Kind.ARRIVAL, call.id)
        total, done = len(self.scenario.calls), 0
        await self._sync()
        # Once no simulated event is left, the last shift has logged everyone out: the
        # engine's remaining timers could not get anybody answered.
        while self._heap:
            next_sim = self._heap[0][0]
            if self._next_timer is not None and self._next_timer <= next_sim:
                self._jump(self._next_timer)
                self.engine_calls += 1
                await self.engine.tick()
                await self._sync()
                continue
            at, kind, _seq, payload = heapq.heappop(self._heap)
            self._jump(at)
            if kind == Kind.ARRIVAL:
                await self._arrival(self.calls[payload[0]])
                done += 1
                if self.on_progress and done % 50 == 0:
                    self.on_progress(done, total)
            elif kind == Kind.HANG_UP:
                await self._hang_up(payload[0])
            elif kind == Kind.ACCEPT:
                await self._accept(payload[0], payload[1])
            elif kind == Kind.END_SERVICE:
                await self._end_service(payload[0], payload[1])
            elif kind == Kind.FINISH_WRAPUP:
                await self._call(self.engine.finish_wrapup(payload[0], payload[1]))
            elif kind == Kind.SHIFT:
                await self._shift(int(payload[0]))
        await self._close_leftovers()
        if self.on_progress:
            self.on_progress(total, total)
        last_day, _ = buckets(self.clock.now_ms())
        counts = Counts()
        day = datetime.strptime(first_day, "%Y-%m-%d")
        while day.strftime("%Y-%m-%d") <= last_day:
            counts = counts + await self.engine.counts(day.strftime("%Y-%m-%d"))
            day += timedelta(days=1)
        return SimResult(
            scenario=self.scenario.name,
            records=list(self.records.values()),
            counts=counts,
            wall_s=time.perf_counter() - wall,
            engine_calls=self.engine_calls,
            options=self.options,
            staffing=list(self.scenario.staffing),
        )

    def _jump(self, at_ms: int) -> None:
        now = self.clock.now_ms()
        if at_ms > now:
            self.clock.advance((at_ms - now) / 1000)

    async def _close_leftovers(self) -> None:
        for rec in self.records.values():
            if rec.outcome == "waiting":
                await self._call(self.engine.close(rec.id, "simulation_ended"))
