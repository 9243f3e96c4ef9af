"""The dashboard hubs: one process builds each version, every process pushes it.

The dashboard is the same for every coordinator, so it is built once per change for the
whole line, not once per app process: the hub holding the builder lease (a Redis key,
renewed while it works) follows the engine's event stream, rebuilds the dashboard after
each batch of events (at most every ``MIN_REBUILD_GAP_S``) and publishes the new version
with one script (``PUBLISH``): the whole state, kept in a hash, and the delta from the
previous version (``delta.py``), appended to the dashboard stream. Publishing succeeds
only on top of the version it was computed from, so two builders (a lease that expired
under a pause) never fork the versions; the loser takes the published state and retries.
If the builder stops, another hub takes the lease once it lapses (``BUILDER_TTL_MS``), at
its next batch of events or periodic refresh.

Every hub, builder or not, follows the dashboard stream and hands each open socket of its
process the same text: the whole state when it opens, then the deltas; a socket that fell
behind (a slow network) gets the deltas it missed in one message, or the whole state
again if they are no longer kept: it skips versions, never lags. With M dashboards on P
processes, a change costs one rebuild, one encoding of the state and of a few rows, and
P reads of that delta. Coordination notices (line closed, registration, broadcasts, slot
changes) come on a second stream so a change made in one process shows in all of them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from routing.clock import buckets
from routing.engine import Engine
from routing.events import Event
from routing.models import Volunteer
from routing.occupancy import OccupancyTracker
from web.coordination.delta import diff, receive
from web.coordination.live import AlertRules, Slots, build_state, day_start_ms

log = logging.getLogger(__name__)

# Rebuild even without events (midnight, opening hours starting). The page counts on it:
# 20 s without a version and it shows "Pas de nouvelles" and reconnects (dashboard.js).
REFRESH_S = 5.0
READ_BLOCK_MS = 1000  # below any client socket timeout
# At most one rebuild per this many seconds: under load every event would otherwise cost a
# full rebuild and a send to every dashboard; the events of the gap fold into the next.
MIN_REBUILD_GAP_S = 0.15
OCCUPANCY_LOOKBACK_MS = 12 * 3600 * 1000  # states carried into the day from the evening before
NOTICES_MAXLEN = 1000
# Deltas kept for sockets that fell behind; further behind, a socket gets the whole state.
DELTAS_KEPT = 32
DASHBOARD_MAXLEN = 200  # versions kept in the dashboard stream (hubs read them at once)
BUILDER_TTL_MS = 3000  # a builder that stops renewing its lease is replaced after this
WATCHED_TTL_MS = 15_000  # "a dashboard is open somewhere", renewed by hubs that have one
# A hub's answer to "do I build?" stands this long (well within the lease): the builder
# renews its lease, and the others look for a lapsed one, at most this often.
CLAIM_EVERY_S = 0.5
# Between full reads a build reads again only the volunteers the events named: this bounds
# how long a change no event names (a profile edited by log_in) takes to show.
FULL_READ_S = 10.0


def notices_key(line: str) -> str:
    """The stream of coordination changes that are not engine transitions."""
    return f"perm:coord:{{{line}}}:notices"


@dataclass(frozen=True)
class DashboardKeys:
    """The shared dashboard's keys, under the line's hash tag."""

    state: str  # hash: version, text (the whole state as JSON), at (when built, ms)
    stream: str  # one entry per version: version, delta (JSON; empty = start again)
    builder: str  # the builder's lease: a hub's token
    watched: str  # set while some process has a dashboard open

    @classmethod
    def of(cls, line: str) -> DashboardKeys:
        base = f"perm:coord:{{{line}}}:dashboard"
        return cls(f"{base}:state", f"{base}:stream", f"{base}:builder", f"{base}:watched")


# Take or renew the builder lease; 1 when this hub builds (a dashboard is open somewhere).
CLAIM = """
if ARGV[3] == '1' then redis.call('SET', KEYS[2], '1', 'PX', ARGV[4]) end
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# Publish a version on top of the one it was built from, or nothing (returns the entry id).
PUBLISH = """
if (redis.call('HGET', KEYS[1], 'version') or '0') ~= ARGV[1] then return false end
redis.call('HSET', KEYS[1], 'version', ARGV[2], 'text', ARGV[3], 'at', ARGV[6])
return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'version', ARGV[2],
  'delta', ARGV[4])
"""


async def notify(redis: Redis, line: str, kind: str, **data: str) -> str:
    """Tell every process's hub that something coordinators see has changed."""
    return await redis.xadd(
        notices_key(line), {"kind": kind, **data}, maxlen=NOTICES_MAXLEN, approximate=True
    )


class _Subscriber:
    """One open dashboard: the version its socket has, woken when a newer one exists."""

    def __init__(self, hub: DashboardHub) -> None:
        self.hub = hub
        self.sent = 0  # version the socket has (0: nothing yet)
        self.ready = asyncio.Event()
        self.held: dict[str, Any] | None = None  # what the page holds (next() only)

    def wake(self) -> None:
        self.ready.set()

    async def next_text(self) -> str:
        """The message that brings this socket to the newest version (waits for one)."""
        while True:
            await self.ready.wait()
            self.ready.clear()
            message = await self.hub.message_since(self.sent)
            if message is not None:
                self.sent, text = message
                return text

    async def next(self) -> dict[str, Any]:
        """The state a page holds after the next message (applied as dashboard.js does)."""
        self.held = receive(self.held, json.loads(await self.next_text()))
        return self.held


Extras = Callable[[bool], Awaitable[dict[str, Any]]]  # reload: re-read what lives in SQL
SlotsLoader = Callable[[int], Awaitable[Slots | None]]


class DashboardHub:
    """Builds the line's dashboard when it holds the lease; feeds this process's sockets."""

    def __init__(
        self,
        engine: Engine,
        *,
        slots_loader: SlotsLoader | None = None,
        extras: Extras | None = None,
        rules: AlertRules | None = None,
    ) -> None:
        self.engine = engine
        self.redis = engine.redis
        self.line = engine.keys.line
        self.keys = DashboardKeys.of(self.line)
        self.slots_loader = slots_loader
        self.extras = extras
        self.rules = rules or AlertRules()
        self.tracker = OccupancyTracker(0)
        self.token = secrets.token_hex(8)
        self.builds = 0  # versions this hub built and published
        self._building = False  # held the lease at the last claim
        self._claim_until = 0.0  # monotonic time until which that answer stands
        self._claimed_watching = ""  # whether this process had dashboards then ("1"/"0")
        self._claim = self.redis.register_script(CLAIM)
        self._publish = self.redis.register_script(PUBLISH)
        self._subscribers: set[_Subscriber] = set()
        self._day = ""
        self._last_ids: dict[str, str] = {}
        self._seeded = False
        self._slots: Slots | None = None
        self._slots_until_ms = 0
        self._extra: dict[str, Any] = {}
        self._volunteers: dict[str, Volunteer] = {}  # as the last build read them
        self._touched: set[str] = set()  # volunteers named by events since the last build
        self._full_read_at = -FULL_READ_S  # monotonic time of the last full read
        self._pending_reload = True
        self._refreshed_at = 0.0
        self._rebuilding = asyncio.Lock()
        self._asked = 0  # refresh() calls so far
        self._served = 0  # calls answered by a finished rebuild that started after them
        self.state: dict[str, Any] | None = None  # the last state this hub built or took
        # What this process's sockets are fed from (the dashboard stream):
        self.version = 0
        self._deltas: deque[tuple[int, str]] = deque(maxlen=DELTAS_KEPT)  # (version, text)
        self._one_behind = ""  # the message of the newest delta alone, shared by sockets
        self._full: tuple[int, str] | None = None  # the message of the whole state

    # Subscribers ------------------------------------------------------------------------

    async def subscribe(self) -> _Subscriber:
        """A new dashboard: it gets the current state at once, then every change."""
        sub = _Subscriber(self)
        self._subscribers.add(sub)
        await self._builds()  # say a dashboard is open here: the builder keeps building
        version, at = await self.redis.hmget(self.keys.state, "version", "at")
        if not version or self.engine.clock.now_ms() - int(at or 0) > REFRESH_S * 1000:
            await self.refresh()  # nothing published yet, or not since dashboards closed
        sub.wake()
        return sub

    def unsubscribe(self, sub: _Subscriber) -> None:
        self._subscribers.discard(sub)

    async def message_since(self, version: int) -> tuple[int, str] | None:
        """What a socket at ``version`` needs to reach the newest, and that version.

        ``{"deltas": [...]}`` when every delta since ``version`` is kept, else
        ``{"full": state}``; None when the socket is already there.
        """
        if version >= self.version and version:
            return None
        if version and version == self.version - 1 and self._one_behind:
            return self.version, self._one_behind
        missed = [text for v, text in self._deltas if v > version]
        if version and len(missed) == self.version - version:
            return self.version, '{"deltas":[' + ",".join(missed) + "]}"
        return await self._full_message()

    async def _full_message(self) -> tuple[int, str] | None:
        if self._full is None or self._full[0] < self.version:
            version, text = await self.redis.hmget(self.keys.state, "version", "text")
            if not text:
                return None
            self._full = (int(version), '{"full":' + text + "}")
        return self._full

    # Building (the hub holding the lease) -----------------------------------------------

    async def _reload_slots(self, now: int) -> None:
        if self.slots_loader is None:
            return
        try:
            self._slots = await self.slots_loader(now)
        except Exception:
            log.exception("could not load today's slots")
            self._slots = None
        end = self._slots.current_end_ms if self._slots else None
        self._slots_until_ms = end or now + 15 * 60 * 1000

    async def _reload_extras(self, reload: bool) -> None:
        if self.extras is None:
            return
        try:
            self._extra = await self.extras(reload)
        except Exception:
            log.exception("could not load the line's status")

    async def build(self, *, reload: bool = False) -> dict[str, Any]:
        """The dashboard at this instant, read from Redis (not published)."""
        now = self.engine.clock.now_ms()
        self._roll_day(now)
        reload, self._pending_reload = reload or self._pending_reload, False
        if reload or self._slots is None or now >= self._slots_until_ms:
            await self._reload_slots(now)
        await self._reload_extras(reload)
        started = time.monotonic()
        full = reload or started - self._full_read_at >= FULL_READ_S
        changed, self._touched = self._touched, set()  # named from now on: the next build
        try:
            volunteers = await self.engine.volunteers(self._volunteers, None if full else changed)
            self._volunteers = {v.id: v for v in volunteers}
            state = await build_state(
                self.engine,
                occupancy=self.tracker.counts(now),
                slots=self._slots,
                line_status=self._extra.get("line"),
                registration_open=self._extra.get("registration_open"),
                rules=self.rules,
                volunteers=volunteers,
            )
        except BaseException:
            self._full_read_at = -FULL_READ_S  # the volunteers it was to read: all, next time
            raise
        if full:
            self._full_read_at = started
        return state

    async def refresh(self, *, reload: bool = False) -> dict[str, Any]:
        """Rebuild the dashboard and publish it as the line's next version.

        Single flight: a caller that arrives while a rebuild runs waits for the next one, and
        every caller waiting then shares it. A rebuild holds the whole line in memory; a
        hundred dashboards opening at once used to start a hundred of them side by side.
        """
        self._pending_reload = self._pending_reload or reload  # taken by the next build
        self._asked += 1
        ticket = self._asked
        async with self._rebuilding:
            if self._served >= ticket and self.state is not None:
                return self.state  # a rebuild that started after this call has published
            asked = self._asked
            state = await self._rebuild()
            self._served = asked
            return state

    async def _rebuild(self) -> dict[str, Any]:
        state = await self.build()
        self._refreshed_at = time.monotonic()
        for _ in range(2):  # a second try on top of what another builder published
            base = self.state
            state["version"] = (base["version"] if base else 0) + 1
            text = encode(state)
            delta = encode(diff(base, state)) if base else ""
            entry = await self._publish(
                keys=[self.keys.state, self.keys.stream],
                args=[base["version"] if base else 0, state["version"], text, delta,
                      DASHBOARD_MAXLEN, state["now_ms"]],
            )
            if entry is not None:
                self.builds += 1
                self.state = state
                if self.version == state["version"] - 1:  # caught up: no need to read it back
                    self._take(entry, state["version"], delta, text)
                return state
            published = await self.redis.hget(self.keys.state, "text")
            self.state = json.loads(published) if published else None
        log.info("dashboard version %s not published: another hub is building", state["version"])
        return state

    def _roll_day(self, now: int) -> None:
        day = buckets(now)[0]
        if day != self._day:
            self._day = day
            self.tracker.restart(day_start_ms(day))

    # Following the streams --------------------------------------------------------------

    async def seed(self) -> None:
        """Fold today's events so far (for occupancy) and start following from the end."""
        now = self.engine.clock.now_ms()
        self._roll_day(now)
        since = day_start_ms(self._day) - OCCUPANCY_LOOKBACK_MS
        newest, backlog, end = "", [], "+"
        while True:  # newest first, until older than the lookback
            page = await self.redis.xrevrange(self.engine.keys.events, end, "-", count=1000)
            if not page:
                break
            newest = newest or page[0][0]
            events = [Event.parse(i, f) for i, f in page]
            backlog.extend(events)
            if events[-1].at_ms < since or len(page) < 1000:
                break
            end = "(" + page[-1][0]
        for event in reversed(backlog):
            self.tracker.apply(event)
        dashboard_end = await self._stream_end(self.keys.stream)
        # Read after the stream's end: entries past it are newer than this version.
        self.version = int(await self.redis.hget(self.keys.state, "version") or 0)
        self._last_ids = {
            self.engine.keys.events: newest or "0-0",
            notices_key(self.line): await self._stream_end(notices_key(self.line)),
            self.keys.stream: dashboard_end,
        }
        self._seeded = True

    async def _stream_end(self, key: str) -> str:
        last = await self.redis.xrevrange(key, "+", "-", count=1)
        return last[0][0] if last else "0-0"

    def _take(self, entry_id: str, version: int, delta: str, text: str | None = None) -> None:
        """A published version: keep its delta and wake this process's sockets."""
        self._last_ids[self.keys.stream] = entry_id
        if version == self.version:
            return  # already taken (this hub published it)
        if version < self.version:  # Redis lost the dashboard's keys: every socket restarts
            self.version = 0
            for sub in self._subscribers:
                sub.sent = 0
        if not delta or version != self.version + 1:
            self._deltas.clear()  # a new start or a gap: behind sockets get the whole state
            self._one_behind = ""
        else:
            self._deltas.append((version, delta))
            self._one_behind = '{"deltas":[' + delta + "]}"
        self.version = version
        self._full = (version, '{"full":' + text + "}") if text is not None else None
        for sub in list(self._subscribers):
            sub.wake()

    async def step(self, block_ms: int = READ_BLOCK_MS) -> int:
        """Wait for events (up to block_ms), fold them, rebuild if this hub is the builder,
        and pass on published versions; returns how many events and notices came."""
        reply = await self.redis.xread(self._last_ids, count=1000, block=block_ms)
        n, reload = 0, False
        for stream, entries in reply or []:
            for entry_id, fields in entries:
                if stream == self.keys.stream:
                    self._take(entry_id, int(fields["version"]), fields["delta"])
                    continue
                self._last_ids[stream] = entry_id
                n += 1
                if stream == self.engine.keys.events:
                    event = Event.parse(entry_id, fields)
                    self.tracker.apply(event)
                    if event.volunteer:
                        self._touched.add(event.volunteer)
                else:
                    reload = True
        self._pending_reload = self._pending_reload or reload  # done at the next build
        stale = time.monotonic() - self._refreshed_at >= REFRESH_S
        if (n or stale) and await self._builds():
            await self.refresh()
        elif stale:
            self._refreshed_at = time.monotonic()
        return n

    async def _builds(self) -> bool:
        """Whether this hub builds now (holds the lease, and a dashboard is open somewhere).

        Asked of Redis at most every CLAIM_EVERY_S, or at once when this process's
        dashboards open or close: every hub needs the answer after each batch of events, and
        asking Redis each time was most of a busy line's script calls, dashboards open or not.
        """
        watching = "1" if self._subscribers else "0"
        now = time.monotonic()
        if now < self._claim_until and watching == self._claimed_watching:
            return self._building
        args = [self.token, BUILDER_TTL_MS, watching, WATCHED_TTL_MS]
        builds = bool(await self._claim(keys=[self.keys.builder, self.keys.watched], args=args))
        # Never past a third of the lease: a builder keeps renewing it well before it lapses.
        self._claim_until = now + min(CLAIM_EVERY_S, BUILDER_TTL_MS / 3000)
        self._claimed_watching = watching
        if builds != self._building:  # a takeover is worth a line in the log, not each renewal
            self._building = builds
            log.info("dashboard hub %s %s", self.token,
                     "builds the dashboard" if builds else "no longer builds the dashboard")
        return builds

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the streams until stopped; errors are logged and retried."""
        failing = False
        while not stop.is_set():
            try:
                if not self._seeded:
                    await self.seed()
                builds = self.builds
                await self.step()
                failing = False
                gap = MIN_REBUILD_GAP_S - (time.monotonic() - self._refreshed_at)
                if gap > 0 and self.builds > builds:  # the builder paces its rebuilds
                    await asyncio.sleep(gap)
            except asyncio.CancelledError:
                raise
            except Exception:
                if not failing:
                    log.exception("dashboard hub failed; retrying")
                    failing = True
                await asyncio.sleep(1.0)


def encode(state: dict[str, Any]) -> str:
    return json.dumps(state, ensure_ascii=False, separators=(",", ":"))
