"""A websocket line that can be slow to open or go silent, for browser tests of pages on a
weak network.

Playwright routes each socket the page opens through the test to the real server and back.
While ``through`` is cleared, a socket the page opens waits before it reaches the server (a
slow line). Once ``silent`` is set, nothing the server sends on the first socket reaches
the page, while the socket stays open (a network that drops without closing).
"""

from __future__ import annotations

import asyncio
from typing import Any


class WeakLine:
    """The route handler for ``page.route_web_socket``; ``sockets``: each one the page opened."""

    def __init__(self) -> None:
        self.sockets: list[Any] = []
        self.through = asyncio.Event()
        self.through.set()
        self.silent = asyncio.Event()

    async def __call__(self, ws: Any) -> None:
        self.sockets.append(ws)
        await self.through.wait()
        server = ws.connect_to_server()

        def to_page(message: str | bytes) -> None:
            if not (self.silent.is_set() and ws is self.sockets[0]):
                ws.send(message)

        server.on_message(to_page)


async def pause_page_clock(page: Any) -> None:
    """From now on the page's time moves only by ``page.clock.fast_forward``."""
    await page.clock.pause_at((await page.evaluate("Date.now()") + 100) / 1000)  # seconds


async def periods(page: Any, period_ms: int, n: int) -> None:
    """Move the page's clock by `n` periods, one at a time, so that replies can come back."""
    for _ in range(n):
        await page.clock.fast_forward(period_ms)
        await asyncio.sleep(0.3)
