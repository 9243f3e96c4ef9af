"""A volunteer's personal calendar feed (iCalendar), served at a secret URL."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from volunteers.models import Account, Booking, BookingStatus

PRODID = "-//Permanence//Créneaux bénévoles//FR"


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def feed(
    account: Account,
    bookings: Iterable[Booking],
    *,
    host: str,
    now: datetime,
    closed: dict[datetime, str] | None = None,
) -> bytes:
    """The calendar of a volunteer's bookings; cancelled ones stay as CANCELLED events, and
    so do those on a slot the line no longer opens (``closed``: reason by slot start)."""
    # Imported here: icalendar (90 modules, ~3 MB resident) serves only calendar apps'
    # occasional polls, not worth keeping in every server process from the start.
    from icalendar import Calendar, Event

    closed = closed or {}
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", "Permanence — mes créneaux")
    cal.add("x-wr-timezone", "Europe/Paris")
    cal.add("refresh-interval;value=duration", "PT1H")
    for booking in bookings:
        event = Event()
        event.add("uid", f"booking-{booking.id}@{host}")
        event.add("dtstamp", _utc(now))
        event.add("dtstart", _utc(booking.slot_start))
        event.add("dtend", _utc(booking.slot_end))
        event.add("last-modified", _utc(booking.changed_at))
        if booking.status == BookingStatus.STANDBY.value:
            event.add("summary", "Permanence — liste d'attente")
            event.add("status", "TENTATIVE")
            event.add(
                "description",
                "Vous êtes sur la liste d'attente : nous vous préviendrons si une place se libère.",
            )
        elif booking.status == BookingStatus.CANCELLED.value:
            event.add("summary", "Permanence — créneau annulé")
            event.add("status", "CANCELLED")
        elif reason := closed.get(_utc(booking.slot_start)):
            event.add("summary", "Permanence — créneau fermé")
            event.add("status", "CANCELLED")
            event.add(
                "description",
                f"La ligne n'ouvre pas sur ce créneau ({reason}) : vous n'êtes pas attendu.",
            )
        else:
            event.add("summary", "Permanence — créneau de bénévolat")
            event.add("status", "CONFIRMED")
            event.add(
                "description",
                "Connectez-vous à la console quelques minutes avant le début du créneau.",
            )
        cal.add_component(event)
    return cal.to_ical()
