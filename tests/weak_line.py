"""A websocket line that can be slow to open or go silent, for browser tests of pages on a
weak network.

Playwright routes each socket the page opens through the test to the real server and back.
While ``through`` is cleared, a socket the page opens waits before it reaches the server (a
slow line). Once ``silent`` is set, nothing the server sends on the first socket reaches
the page, while the socket stays open (a network that drops without closing). ``AnswerCut``
lets a request reach the server and drops the line before its answer reaches the page.
"""

from __future__ import annotations

import asyncio
import json
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


class AnswerCut:
    """The route handler for ``page.route_web_socket`` of a page that sends requests with a
    ``ref`` and gets a frame with the same ``ref`` back: while ``armed`` is set, the next
    request of type ``kind`` reaches the server, and the line drops before its answer reaches
    the page (once; ``armed`` clears). ``sockets``: each one the page opened."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.sockets: list[Any] = []
        self.armed = asyncio.Event()

    async def __call__(self, ws: Any) -> None:
        self.sockets.append(ws)
        server = ws.connect_to_server()
        refs: set[str] = set()

        def to_server(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == self.kind:
                refs.add(frame["ref"])
            server.send(message)

        async def to_page(message: str | bytes) -> None:
            if json.loads(message).get("ref") in refs and self.armed.is_set():
                self.armed.clear()
                await ws.close()  # the server did it; the answer is lost with the line
                return
            ws.send(message)

        ws.on_message(to_server)
        server.on_message(to_page)


async def pause_page_clock(page: Any) -> None:
    """From now on the page's time moves only by ``page.clock.fast_forward``."""
    await page.clock.pause_at((await page.evaluate("Date.now()") + 100) / 1000)  # seconds


async def periods(page: Any, period_ms: int, n: int) -> None:
    """Move the page's clock by `n` periods, one at a time, so that replies can come back."""
    for _ in range(n):
        await page.clock.fast_forward(period_ms)
        await asyncio.sleep(0.3)
