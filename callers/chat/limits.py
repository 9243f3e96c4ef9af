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
    redis: Redis, keys: CallerKeys, scope: str, ip: str, count: int, window_s: int
) -> bool:
    """A fixed window counter per IP shared by every app process."""
    window = str(int(time.time() // window_s))
    key = keys.rate(scope, ip or "unknown", window)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, window_s * 2)
        seen, _ = await pipe.execute()
    return int(seen) <= count
