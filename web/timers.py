"""The routing timer loop: widening, ring timeouts, delays and wrap-up ends happen here.

Every app process runs one; the engine's scripts are atomic, so several loops on the
same line are harmless (a timer runs once, whoever picks it up).
"""

from __future__ import annotations

import asyncio
import logging
import time

from web.runtime import Runtime

log = logging.getLogger(__name__)

TICK_LIMIT = 500  # timers run per tick; more due means tick again at once
ERROR_PAUSE_S = 1.0


async def run_timers(runtime: Runtime, stop: asyncio.Event) -> None:
    """Tick the engine until ``stop`` is set; errors are logged once and retried."""
    interval = runtime.settings.timer_interval_s
    refresh_every = runtime.settings.territories_refresh_s
    next_refresh = time.monotonic() + refresh_every
    failing = False
    while not stop.is_set():
        try:
            delay = await _tick_once(runtime, interval)
            if failing:
                log.info("routing timers running again")
                failing = False
        except Exception:
            if not failing:  # one traceback per outage, not ten a second
                log.exception("routing timers failed; retrying every %.0f s", ERROR_PAUSE_S)
                failing = True
            delay = ERROR_PAUSE_S
        if time.monotonic() >= next_refresh:
            next_refresh = time.monotonic() + refresh_every
            try:
                await runtime.reload_territories()
            except Exception as exc:
                log.warning("could not reload territory groups: %s", exc)
        try:
            await asyncio.wait_for(stop.wait(), timeout=delay)
        except TimeoutError:
            pass


async def _tick_once(runtime: Runtime, interval: float) -> float:
    """Run due timers; return how long to sleep before the next look."""
    engine = runtime.engine
    if not runtime.configured:
        await runtime.configure_engine()
    if await engine.tick(limit=TICK_LIMIT) >= TICK_LIMIT:
        return 0.0
    next_ms = await engine.next_timer_ms()
    if next_ms is None:
        return interval
    return min(interval, max(0.0, (next_ms - engine.clock.now_ms()) / 1000))
