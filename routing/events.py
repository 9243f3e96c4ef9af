"""The event stream: every transition of the engine, in order, typed."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from redis.asyncio import Redis

from routing.keys import Keys


class EventType(StrEnum):
    TASK_CREATED = "task_created"
    TASK_WIDENED = "task_widened"
    TASK_OFFERED = "task_offered"
    OFFER_DECLINED = "offer_declined"
    OFFER_TIMEOUT = "offer_timeout"
    TASK_ASSIGNED = "task_assigned"
    TASK_COMPLETED = "task_completed"
    TASK_ENDED = "task_ended"
    TASK_TRANSFERRED = "task_transferred"
    TASK_PRIORITY = "task_priority"
    VOLUNTEER_PRESENCE = "volunteer_presence"


@dataclass(frozen=True)
class Event:
    """One transition: its stream id (unique, ordered), type, time, task and volunteer."""

    id: str
    type: EventType
    at_ms: int
    task: str
    volunteer: str
    data: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, entry_id: str, fields: dict[str, str]) -> Event:
        rest = {k: v for k, v in fields.items() if k not in {"type", "at", "task", "volunteer"}}
        return cls(
            id=entry_id,
            type=EventType(fields["type"]),
            at_ms=int(fields["at"]),
            task=fields.get("task", ""),
            volunteer=fields.get("volunteer", ""),
            data=rest,
        )


class EventReader:
    """Follows a line's event stream from a position (``$`` = only new events)."""

    def __init__(self, redis: Redis, keys: Keys, last_id: str = "$") -> None:
        self.redis = redis
        self.keys = keys
        self.last_id = last_id

    async def read(self, *, block_ms: int | None = 1000, count: int = 500) -> list[Event]:
        """The next events (waits up to block_ms for at least one; None = don't wait)."""
        if self.last_id == "$":
            # Pin "$" to the current end on the first read: XREAD with "$" means "after the
            # newest entry at the time of this call", so events written between two reads
            # that returned nothing would be skipped (an offer never reaching its console).
            newest = await self.redis.xrevrange(self.keys.events, count=1)
            self.last_id = newest[0][0] if newest else "0-0"
        reply = await self.redis.xread(
            {self.keys.events: self.last_id}, count=count, block=block_ms
        )
        events: list[Event] = []
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                events.append(Event.parse(entry_id, fields))
                self.last_id = entry_id
        return events


async def read_range(redis: Redis, keys: Keys, start: str = "-", end: str = "+") -> list[Event]:
    """All stored events between two ids (for replays, tests and the recorder)."""
    entries = await redis.xrange(keys.events, start, end)
    return [Event.parse(entry_id, fields) for entry_id, fields in entries]
