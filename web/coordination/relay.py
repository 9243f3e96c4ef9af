"""Coordinators' messages to every volunteer console, in every app process.

The message is written once to a Redis stream (``controls.broadcast_key``); each
process follows that stream and hands new entries to its own console hub, which
pushes ``{"type": "broadcast", ...}`` to the consoles connected to it (see the
volunteers' console protocol).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from web.coordination.controls import broadcast_key

log = logging.getLogger(__name__)

Deliver = Callable[[dict[str, Any]], None]


def console_message(fields: dict[str, str]) -> dict[str, Any]:
    """The console protocol's message for one broadcast entry."""
    return {
        "type": "broadcast",
        "text": fields.get("text", ""),
        "from": fields.get("author", ""),
        "at": int(fields.get("at", "0") or 0),
    }


class BroadcastRelay:
    """Follows the broadcast stream from now on and delivers each new message once."""

    def __init__(self, redis: Redis, line: str, deliver: Deliver) -> None:
        self.redis = redis
        self.key = broadcast_key(line)
        self.deliver = deliver
        self.last_id = ""

    async def start_position(self) -> None:
        last = await self.redis.xrevrange(self.key, "+", "-", count=1)
        self.last_id = last[0][0] if last else "0-0"

    async def step(self, block_ms: int = 1000) -> int:
        if not self.last_id:
            await self.start_position()
        reply = await self.redis.xread({self.key: self.last_id}, count=100, block=block_ms)
        n = 0
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                self.last_id = entry_id
                self.deliver(console_message(fields))
                n += 1
        return n

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("broadcast relay failed; retrying")
                await asyncio.sleep(1.0)
