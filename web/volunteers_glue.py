"""Glue between volunteers/ and callers/ that only web/ may know: how to ring a volunteer."""

from __future__ import annotations

from fastapi import FastAPI

from callers.reach import ReachMode, VolunteerReach
from volunteers.models import PhoneMode
from volunteers.reach import reach_of


def install_volunteer_reach(app: FastAPI) -> None:
    """Give callers/ its ``volunteer_reach`` resolver, backed by the volunteers' profiles."""

    async def resolve(volunteer_id: str) -> VolunteerReach | None:
        vol = getattr(app.state, "volunteers", None)
        if vol is None:
            return None
        reach = await reach_of(vol, volunteer_id)
        if reach is None:
            return None
        mode = ReachMode.PHONE if reach.phone_mode is PhoneMode.PHONE else ReachMode.SOFTPHONE
        return VolunteerReach(
            volunteer_id, mode, identity=reach.identity, phone=reach.phone, name=reach.name
        )

    app.state.volunteer_reach = resolve
