"""Text messages (SMS) from the line's number, e.g. volunteers' shift reminders.

Shaped as volunteers.runtime.TextSender (``send_sms(to, body)``); web/ hands it over.
"""

from __future__ import annotations

import logging

from twilio.rest import Client

from callers.identity import normalize_number
from callers.twilio_api import TwilioApi

log = logging.getLogger("callers.texts")
MAX_BODY = 1600  # Twilio's limit for one message


class TwilioTexts:
    """Sends SMS through the Twilio REST client (the real one or the fake)."""

    def __init__(self, twilio: Client, from_number: str) -> None:
        self.rest = TwilioApi(twilio)
        self.from_number = from_number

    async def send_sms(self, to: str, body: str) -> None:
        """Send one SMS; ValueError for a number that is not dialable or an empty body."""
        number = normalize_number(to)
        if number is None:
            raise ValueError("not a valid phone number")
        if not body.strip() or len(body) > MAX_BODY:
            raise ValueError("an SMS needs 1 to 1600 characters")
        sid = await self.rest.send_message(to=number, from_=self.from_number, body=body)
        log.info("sms %s queued", sid)  # never the number or the text
