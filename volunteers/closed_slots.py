"""Telling volunteers that a slot they booked has closed (hours changed, closure, line shut).

Such bookings are kept and flagged « créneau fermé » (see ``Bookings.closed_reasons``);
this scan makes sure the volunteer hears of it without opening their pages. Every
message goes through ``Notifier`` under a dedup key, so running the scan again after
each coordinator's save never writes twice about the same booking and closure.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from volunteers.models import Account, BookingStatus
from volunteers.notify import Notifier
from volunteers.runtime import Volunteers

HORIZON = timedelta(weeks=8)


async def notify_closed_bookings(vol: Volunteers, now: datetime) -> int:
    """Message every volunteer booked on an upcoming slot that is now closed; how many sent."""
    sent = 0
    async with vol.sessions() as session:
        book = vol.bookings(session)
        notifier = Notifier(vol)
        for booking, reason in await book.closed_between(now, now + HORIZON):
            # Standby volunteers were never expected on the slot: nothing changes for them.
            if booking.status != BookingStatus.BOOKED.value:
                continue
            account = await session.get(Account, booking.account_id)
            if account is None:
                continue
            sent += await notifier.slot_closed(session, booking, account, reason, now) is not None
    return sent
