"""The dashboard hub of one app process: follows the streams, pushes to open dashboards.

Each process reads the engine's event stream itself (XREAD, no consumer group), so
every process's dashboards are as fresh as the stream, however many processes run.
After each batch of events the hub rebuilds the dashboard from Redis once and encodes
the delta from the previous version once (``delta.py``); every socket gets the same
text. A socket gets the whole state when it opens, then the deltas; one that fell
behind (a slow network) gets the deltas it missed in one message, or the whole state
again if they are no longer kept: it skips versions, never lags. With M dashboards, a
change costs one rebuild and one encoding of a few rows, not M encodings of the line.
Coordination notices (line closed, registration, broadcasts, slot changes) come on
a second stream so a change made in one process shows in all of them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import Redis

from routing.clock import buckets
from routing.engine import Engine
from routing.events import Event
from routing.occupancy import OccupancyTracker
from web.coordination.delta import diff
from web.coordination.live import AlertRules, Slots, build_state, day_start_ms

log = logging.getLogger(__name__)

REFRESH_S = 5.0  # rebuild even without events (midnight, opening hours starting)
READ_BLOCK_MS = 1000  # below any client socket timeout
# At most one rebuild per this many seconds: under load every event would otherwise cost a
# full rebuild and a send to every dashboard; the events of the gap fold into the next.
MIN_REBUILD_GAP_S = 0.15
OCCUPANCY_LOOKBACK_MS = 12 * 3600 * 1000  # states carried into the day from the evening before
NOTICES_MAXLEN = 1000
# Deltas kept for sockets that fell behind; further behind, a socket gets the whole state.
DELTAS_KEPT = 32


def notices_key(line: str) -> str:
    """The stream of coordination changes that are not engine transitions."""
    return f"perm:coord:{{{line}}}:notices"


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

    def wake(self) -> None:
        self.ready.set()

    async def next_text(self) -> str:
        """The message that brings this socket to the newest version (waits for one)."""
        while True:
            await self.ready.wait()
            self.ready.clear()
            message = self.hub.message_since(self.sent)
            if message is not None:
                self.sent = self.hub.version
                return message

    async def next(self) -> dict[str, Any]:
        """The newest state itself, as the socket's page would hold it after next_text()."""
        await self.ready.wait()
        self.ready.clear()
        self.sent = self.hub.version
        assert self.hub.state is not None
        return self.hub.state


Extras = Callable[[bool], Awaitable[dict[str, Any]]]  # reload: re-read what lives in SQL
SlotsLoader = Callable[[int], Awaitable[Slots | None]]


class DashboardHub:
    """Feeds every open dashboard of this process from the line's streams."""

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
        self.slots_loader = slots_loader
        self.extras = extras
        self.rules = rules or AlertRules()
        self.tracker = OccupancyTracker(0)
        self._subscribers: set[_Subscriber] = set()
        self._day = ""
        self._last_ids: dict[str, str] = {}
        self._slots: Slots | None = None
        self._slots_until_ms = 0
        self._extra: dict[str, Any] = {}
        self._pending_reload = True
        self._refreshed_at = 0.0
        self.state: dict[str, Any] | None = None
        self._full: str | None = None  # the message of the whole state, once asked for
        self._deltas: deque[tuple[int, str]] = deque(maxlen=DELTAS_KEPT)  # (version, text)
        self._one_behind = ""  # the message of the newest delta alone, shared by sockets
        self.version = 0

    # Subscribers ------------------------------------------------------------------------

    async def subscribe(self) -> _Subscriber:
        """A new dashboard: it gets the current state at once, then every change."""
        sub = _Subscriber(self)
        self._subscribers.add(sub)
        if self.state is None:
            await self.refresh()
        else:
            sub.wake()
        return sub

    def unsubscribe(self, sub: _Subscriber) -> None:
        self._subscribers.discard(sub)

    def message_since(self, version: int) -> str | None:
        """What a socket at ``version`` needs to reach the newest: deltas, or the whole state.

        ``{"deltas": [...]}`` when every delta since ``version`` is kept, else
        ``{"full": state}``; None when the socket is already there.
        """
        if self.state is None or version == self.version:
            return None
        if version and version == self.version - 1 and self._one_behind:
            return self._one_behind
        missed = [text for v, text in self._deltas if v > version]
        if version and len(missed) == self.version - version:
            return '{"deltas":[' + ",".join(missed) + "]}"
        if self._full is None:
            self._full = '{"full":' + encode(self.state) + "}"
        return self._full

    # State ------------------------------------------------------------------------------

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

    async def refresh(self, *, reload: bool = False) -> dict[str, Any]:
        """Rebuild the dashboard from Redis and hand it to every subscriber."""
        now = self.engine.clock.now_ms()
        self._roll_day(now)
        reload, self._pending_reload = reload or self._pending_reload, False
        if reload or self._slots is None or now >= self._slots_until_ms:
            await self._reload_slots(now)
        await self._reload_extras(reload)
        state = await build_state(
            self.engine,
            occupancy=self.tracker.counts(now),
            slots=self._slots,
            line_status=self._extra.get("line"),
            registration_open=self._extra.get("registration_open"),
            rules=self.rules,
        )
        self.version += 1
        self._refreshed_at = time.monotonic()
        state["version"] = self.version
        if self.state is None:
            self._deltas.clear()
            self._one_behind = ""
        else:
            text = encode(diff(self.state, state))
            self._deltas.append((self.version, text))
            self._one_behind = '{"deltas":[' + text + "]}"
        self.state, self._full = state, None
        for sub in list(self._subscribers):
            sub.wake()
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
        self._last_ids = {
            self.engine.keys.events: newest or "0-0",
            notices_key(self.line): await self._stream_end(notices_key(self.line)),
        }

    async def _stream_end(self, key: str) -> str:
        last = await self.redis.xrevrange(key, "+", "-", count=1)
        return last[0][0] if last else "0-0"

    async def step(self, block_ms: int = READ_BLOCK_MS) -> int:
        """Wait for events (up to block_ms), fold them, push one rebuild; returns how many."""
        reply = await self.redis.xread(self._last_ids, count=1000, block=block_ms)
        n, reload = 0, False
        for stream, entries in reply or []:
            for entry_id, fields in entries:
                self._last_ids[stream] = entry_id
                n += 1
                if stream == self.engine.keys.events:
                    self.tracker.apply(Event.parse(entry_id, fields))
                else:
                    reload = True
        stale = time.monotonic() - self._refreshed_at >= REFRESH_S
        if self._subscribers and (n or stale):
            await self.refresh(reload=reload)
        elif reload:
            self._pending_reload = True  # done when a dashboard opens
        return n

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the streams until stopped; errors are logged and retried."""
        failing = False
        while not stop.is_set():
            try:
                if not self._last_ids:
                    await self.seed()
                await self.step()
                failing = False
                gap = MIN_REBUILD_GAP_S - (time.monotonic() - self._refreshed_at)
                if gap > 0:
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
