"""The per-address limit on chat starts and messages, on a real Redis."""

from __future__ import annotations

import uuid

from callers.chat.limits import allow_ip
from callers.keys import CallerKeys

HOUR = 3600


async def test_a_window_boundary_does_not_double_the_allowance(redis) -> None:
    keys = CallerKeys("limits" + uuid.uuid4().hex[:8])
    end = 1_000 * HOUR  # a window's boundary

    async def start(at: float, ip: str = "192.0.2.1") -> bool:
        return await allow_ip(redis, keys, "start", ip, 2, HOUR, now=at)

    assert await start(end - 1) and await start(end - 0.5)  # the allowance, just before
    assert not await start(end + 0.001)  # a fixed window would have let this through
    assert await start(end, ip="192.0.2.2")  # another address has its own
    # Refused attempts count too, and the previous window weighs less as time goes on.
    assert not await start(end + HOUR * 0.5)  # 2 now + 2 before x 0.5 = 3
    assert await start(end + HOUR * 1.5)  # next window: 1 + 2 x 0.5 = 2
    assert not await start(end + HOUR * 1.6)  # 2 + 2 x 0.4 = 2.8
    assert await start(end + HOUR * 2.9)  # 1 + 2 x 0.1 = 1.2
