"""Runs the « votre créneau est fermé » messages after coordinators change the line's hours.

Sending may take seconds (Twilio, SMTP), so the coordinator's request only wakes a
background task. Saves in a burst fold into one more scan rather than one each, and
``wait`` lets tests (and shutdown) wait for the scans asked so far, deterministically.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from fastapi import FastAPI

from volunteers.closed_slots import notify_closed_bookings

log = logging.getLogger(__name__)


class ClosedSlotNotices:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._task: asyncio.Task[None] | None = None
        self._again = False

    def request(self) -> None:
        """Ask for a scan once the current one (if any) is over."""
        self._again = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="closed-slot-notices")

    async def wait(self) -> None:
        """Return once every scan asked so far has run."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        while self._again:
            self._again = False
            vol = getattr(self.app.state, "volunteers", None)
            if vol is None:  # the volunteers package is not installed: nobody to tell
                return
            try:
                now = datetime.fromtimestamp(vol.now_ms() / 1000, UTC)
                sent = await notify_closed_bookings(vol, now)
            except Exception as exc:
                # Only the type: a provider's message may quote a phone number.
                log.error("closed-slot notices failed: %s", type(exc).__name__)
            else:
                if sent:
                    log.info("closed-slot notices: %d sent", sent)


def closed_slot_notices(app: FastAPI) -> ClosedSlotNotices:
    """The app's runner, made on first use."""
    notices = getattr(app.state, "closed_slot_notices", None)
    if notices is None:
        notices = app.state.closed_slot_notices = ClosedSlotNotices(app)
    return notices
