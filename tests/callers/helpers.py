"""Small helpers shared by the callers tests."""

from __future__ import annotations

from routing.engine import Engine
from routing.models import Presence, VolunteerProfile


async def volunteer_on_duty(
    engine: Engine, vid: str, departement: str, presence: Presence = Presence.AVAILABLE,
    skills: frozenset[str] = frozenset(), chat_capacity: int = 2,
) -> None:
    """Log a volunteer in and set their presence."""
    await engine.log_in(VolunteerProfile(vid, departement, skills=skills, name=vid.title(),
                                         chat_capacity=chat_capacity))
    await engine.set_presence(vid, presence)
