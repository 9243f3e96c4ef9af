"""Everything the volunteers package needs at run time, injected by web/ (or a test)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from redis.asyncio import Redis

from routing.engine import Engine
from volunteers.bookings import Bookings
from volunteers.credentials import Sealer
from volunteers.settings import VolunteersSettings
from volunteers.slots import OpeningProvider, SlotPlan
from volunteers.targets import ForecastProvider

SessionFactory = Callable[[], AbstractAsyncContextManager[Any]]


class TextSender(Protocol):
    """Sends an SMS through the telephony client (web/ adapts callers' Twilio client)."""

    async def send_sms(self, to: str, body: str) -> None: ...


class ChatBridge(Protocol):
    """The caller chat rooms as the console sees them (web/ adapts callers/' rooms).

    Messages are dicts with ``id`` (ordered), ``author`` (caller | volunteer | system),
    ``name``, ``text`` and ``at`` (epoch ms).
    """

    async def history(self, task_id: str) -> list[dict[str, Any]]: ...

    async def send(
        self, task_id: str, volunteer_id: str, name: str, text: str, message_id: str = ""
    ) -> None:
        """Post a volunteer's message; with the console's `message_id` (letters, digits, '-'
        and '_', at most 64), once however often it is sent."""

    def follow(self, task_id: str, after: str) -> AsyncIterator[list[dict[str, Any]]]: ...


@dataclass
class Volunteers:
    """The volunteers package's services for one line."""

    settings: VolunteersSettings
    engine: Engine
    sessions: SessionFactory  # () -> async context manager yielding an AsyncSession
    sms: TextSender | None = None
    chat: ChatBridge | None = None
    slot_forecast: ForecastProvider | None = None  # volunteers needed per slot (web/ installs)
    opening: OpeningProvider | None = None  # the line's hours for slots (web/ installs)
    sealer: Sealer = field(init=False)

    def __post_init__(self) -> None:
        self.sealer = Sealer(self.settings.secret_key)

    @property
    def plan(self) -> SlotPlan:
        """The slots, cut from the line's hours (the settings' own when none is installed)."""
        return SlotPlan(self.settings, self.opening)

    def bookings(self, session: Any, forecast: ForecastProvider | None = None) -> Bookings:
        """Booking services on the line's hours, in ``session``."""
        return Bookings(session, self.settings, forecast, self.opening)

    @property
    def redis(self) -> Redis:
        return self.engine.redis

    @property
    def line(self) -> str:
        return self.engine.keys.line

    def now_ms(self) -> int:
        return self.engine.clock.now_ms()

    def key(self, *parts: str) -> str:
        """A Redis key of this package, under the line's hash tag like the engine's."""
        return f"perm:vol:{{{self.line}}}:" + ":".join(parts)

    def lost_key(self, volunteer_id: str) -> str:
        """The presence a lost connection took away, given back if they return in time."""
        return self.key("lost", volunteer_id)
