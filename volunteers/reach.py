"""Where a volunteer takes calls, for the bridging code (callers/, wired by web/)."""

from __future__ import annotations

from dataclasses import dataclass

from volunteers import accounts
from volunteers.models import PhoneMode
from volunteers.runtime import Volunteers


@dataclass(frozen=True)
class Reach:
    """The volunteer's phone mode: the softphone identity, or their own number (E.164)."""

    volunteer_id: str
    phone_mode: PhoneMode
    identity: str  # the Voice JS SDK client identity: the volunteer's public id
    phone: str  # clear number, only when phone_mode is PHONE
    name: str


async def reach_of(vol: Volunteers, volunteer_id: str) -> Reach | None:
    """How to ring this volunteer now (None if unknown); the number is unsealed here only."""
    async with vol.sessions() as session:
        account = await accounts.by_public_id(session, volunteer_id)
    if account is None:
        return None
    mode = PhoneMode(account.phone_mode)
    phone = vol.sealer.open(account.phone_sealed) if mode is PhoneMode.PHONE else ""
    if mode is PhoneMode.PHONE and not phone:
        mode = PhoneMode.BROWSER  # number lost (key changed): fall back to the softphone
    return Reach(volunteer_id, mode, account.public_id, phone, account.name)
