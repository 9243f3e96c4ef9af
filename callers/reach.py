"""How to reach a volunteer by phone: given to callers/ by web/ (from volunteers/)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum


class ReachMode(StrEnum):
    SOFTPHONE = "softphone"  # the console's Voice JS SDK device: dialled as client:<identity>
    PHONE = "phone"  # the volunteer's own phone: dialled with a whisper and "press 1"


@dataclass(frozen=True)
class VolunteerReach:
    """Where a volunteer takes calls; ``identity`` is the Voice SDK client identity."""

    volunteer_id: str
    mode: ReachMode
    identity: str = ""
    phone: str = ""
    name: str = ""

    @property
    def address(self) -> str:
        """The To of an outbound call to this volunteer."""
        return self.phone if self.mode is ReachMode.PHONE else f"client:{self.identity}"


ReachResolver = Callable[[str], Awaitable[VolunteerReach | None]]


async def softphone_by_id(volunteer_id: str) -> VolunteerReach:
    """Fallback resolver: every volunteer on a softphone whose identity is their id."""
    return VolunteerReach(volunteer_id, ReachMode.SOFTPHONE, identity=volunteer_id)
