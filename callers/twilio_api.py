"""The Twilio REST requests Permanence makes, built by twilio-python's own base layer.

twilio-python's generated resources (``client.calls``, ``client.conferences``...) import
the whole 2010-04-01 API tree the first time one is touched: 92 modules, 7.3 MB resident in
every app worker, and ~45 ms of a worker's event loop on the first call it bridges. The
five requests below go through the layer those resources sit on (``Version``: URL, account
credentials, the pluggable HTTP client, ``TwilioRestException`` on an error status) with the
same parameters, names and headers as the generated code; tests/callers/test_twilio_api.py
checks each against the generated resource, request for request.
"""

from __future__ import annotations

from typing import Any

from twilio.base import serialize, values
from twilio.base.domain import Domain
from twilio.base.version import Version
from twilio.rest import Client

API_BASE = "https://api.twilio.com"  # as twilio.rest.api.ApiBase; the client maps regions
API_VERSION = "2010-04-01"
# What the generated resources send with every create and update.
_HEADERS = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}

Unset = Any  # twilio's values.unset: a parameter left out of the request


class TwilioApi:
    """Calls, queue members, conference participants and SMS of the line's account."""

    def __init__(self, client: Client) -> None:
        self._version = Version(Domain(client, API_BASE), API_VERSION)
        self._account = f"/Accounts/{client.account_sid}"

    async def _create(self, path: str, data: dict[str, object]) -> dict[str, Any]:
        return await self._version.create_async(
            method="POST", uri=self._account + path, data=values.of(data), headers=dict(_HEADERS)
        )

    async def _update(self, path: str, data: dict[str, object]) -> dict[str, Any]:
        return await self._version.update_async(
            method="POST", uri=self._account + path, data=values.of(data), headers=dict(_HEADERS)
        )

    async def create_call(
        self,
        *,
        to: str,
        from_: str,
        url: str,
        method: str | Unset = values.unset,
        status_callback: str | Unset = values.unset,
        status_callback_method: str | Unset = values.unset,
        ring_s: int | Unset = values.unset,
    ) -> str:
        """Place an outbound call (``calls.create``), ringing ``ring_s`` at most; its SID."""
        payload = await self._create(
            "/Calls.json",
            {
                "To": to,
                "From": from_,
                "Method": method,
                "StatusCallback": status_callback,
                "StatusCallbackMethod": status_callback_method,
                "Timeout": ring_s,
                "Url": url,
            },
        )
        return str(payload["sid"])

    async def update_call(
        self,
        sid: str,
        *,
        url: str | Unset = values.unset,
        method: str | Unset = values.unset,
        status: str | Unset = values.unset,
        twiml: str | Unset = values.unset,
    ) -> None:
        """Redirect a live call, give it new TwiML or end it (``calls(sid).update``)."""
        await self._update(
            f"/Calls/{sid}.json",
            {
                "Url": url,
                "Method": method,
                "Status": status,
                "Twiml": twiml,
            },
        )

    async def redirect_queue_member(
        self, queue_sid: str, call_sid: str, *, url: str, method: str | Unset = values.unset
    ) -> None:
        """Take a caller out of a queue to this URL (``queues(q).members(c).update``)."""
        await self._update(
            f"/Queues/{queue_sid}/Members/{call_sid}.json",
            {
                "Url": url,
                "Method": method,
            },
        )

    async def add_participant(
        self,
        conference: str,
        *,
        from_: str,
        to: str,
        label: str | Unset = values.unset,
        status_callback: str | Unset = values.unset,
        status_callback_method: str | Unset = values.unset,
        status_callback_event: list[str] | Unset = values.unset,
        ring_s: int | Unset = values.unset,
        beep: str | Unset = values.unset,
        start_conference_on_enter: bool | Unset = values.unset,
        end_conference_on_exit: bool | Unset = values.unset,
    ) -> str:
        """Dial someone into a conference (``conferences(c).participants.create``); the
        SID of the call placed."""
        payload = await self._create(
            f"/Conferences/{conference}/Participants.json",
            {
                "From": from_,
                "To": to,
                "StatusCallback": status_callback,
                "StatusCallbackMethod": status_callback_method,
                "StatusCallbackEvent": serialize.map(status_callback_event, lambda e: e),
                "Label": label,
                "Timeout": ring_s,
                "Beep": beep,
                "StartConferenceOnEnter": serialize.boolean_to_string(start_conference_on_enter),
                "EndConferenceOnExit": serialize.boolean_to_string(end_conference_on_exit),
            },
        )
        return str(payload["call_sid"])

    async def send_message(self, *, to: str, from_: str, body: str) -> str:
        """Send one SMS (``messages.create``); its SID."""
        payload = await self._create("/Messages.json", {"To": to, "From": from_, "Body": body})
        return str(payload["sid"])
