"""Rate limits for the public chat: per connection (in memory) and per IP (Redis)."""

from __future__ import annotations

import time
from collections import deque

from redis.asyncio import Redis

from callers.keys import CallerKeys


class ConnectionLimit:
    """At most ``count`` events per ``window_s`` on one websocket."""

    def __init__(self, count: int, window_s: float) -> None:
        self.count, self.window_s = count, window_s
        self._times: deque[float] = deque()

    def allow(self) -> bool:
        now = time.monotonic()
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
        if len(self._times) >= self.count:
            return False
        self._times.append(now)
        return True


async def allow_ip(
    redis: Redis,
    keys: CallerKeys,
    scope: str,
    ip: str,
    count: int,
    window_s: int,
    now: float | None = None,
) -> bool:
    """A sliding window counter per IP shared by every app process.

    The window's count plus the previous window's, weighted by how much of it still overlaps
    the last `window_s` seconds: with plain fixed windows, an address could make twice its
    allowance across a boundary (and a second start a moment after one was let through).
    """
    now = time.time() if now is None else now
    window, into = divmod(now, window_s)
    key = keys.rate(scope, ip or "unknown", str(int(window)))
    before = keys.rate(scope, ip or "unknown", str(int(window) - 1))
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, window_s * 2)
        pipe.get(before)
        seen, _, earlier = await pipe.execute()
    return int(seen) + int(earlier or 0) * (1 - into / window_s) <= count
