"""The personal calendar feed at a secret URL, parsed back with icalendar."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from icalendar import Calendar

from volunteers.bookings import Bookings

PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=PARIS).astimezone(UTC)


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, 0, tzinfo=PARIS).astimezone(UTC)


async def test_feed_lists_bookings_and_parses_back(
    web_client, web_app, make_account, db_session, vsettings
):
    anne = await make_account("Anne")
    bruno = await make_account("Bruno")
    chloe = await make_account("Chloé")
    book = Bookings(db_session, vsettings)  # slot_max = 2
    await book.book(anne, at(24, 9), NOW)
    await book.book(anne, at(26, 15), NOW)
    await book.book(anne, at(27, 11), NOW)
    await book.cancel(anne, at(27, 11), NOW)
    await book.book(bruno, at(25, 13), NOW)
    await book.book(chloe, at(25, 13), NOW)
    await book.book(anne, at(25, 13), NOW)  # full: standby
    await book.book(bruno, at(24, 9), NOW)  # someone else's: not in Anne's feed

    reply = await web_client.get(f"/benevole/agenda/{anne.ical_token}.ics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/calendar")
    cal = Calendar.from_ical(reply.content)
    assert str(cal["x-wr-calname"]) == "Permanence — mes créneaux"
    events = sorted(cal.walk("VEVENT"), key=lambda e: e.decoded("dtstart"))
    seen = [
        (e.decoded("dtstart"), e.decoded("dtend"), str(e["status"]), str(e["summary"]))
        for e in events
    ]
    assert seen == [
        (at(24, 9), at(24, 11), "CONFIRMED", "Permanence — créneau de bénévolat"),
        (at(25, 13), at(25, 15), "TENTATIVE", "Permanence — liste d'attente"),
        (at(26, 15), at(26, 17), "CONFIRMED", "Permanence — créneau de bénévolat"),
        (at(27, 11), at(27, 13), "CANCELLED", "Permanence — créneau annulé"),
    ]
    assert len({str(e["uid"]) for e in events}) == 4  # stable, distinct ids

    # The URL is the secret: a wrong or made-up token shows nothing.
    assert (await web_client.get("/benevole/agenda/" + "x" * 43 + ".ics")).status_code == 404
    assert (await web_client.get("/benevole/agenda/court.ics")).status_code == 404
