"""callers.twilio_api sends what twilio-python's generated resources send, request for request."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from callers.twilio_api import TwilioApi

ACCOUNT = "AC" + "1" * 32
ROOT = Path(__file__).resolve().parents[2]


class Recorder(AsyncHttpClient):
    """twilio-python's pluggable HTTP client: keeps every request, answers ``reply``."""

    def __init__(self, status: int = 201, reply: dict[str, Any] | None = None) -> None:
        super().__init__(logging.getLogger("tests.twilio"), is_async=True)
        self.status = status
        self.reply = reply or {"sid": "CA" + "2" * 32, "call_sid": "CA" + "3" * 32}
        self.requests: list[dict[str, Any]] = []

    async def request(self, method: str, uri: str, **kwargs: Any) -> Response:
        self.requests.append({"method": method, "uri": uri, **kwargs})
        return Response(self.status, json.dumps(self.reply))


def pair(status: int = 201, reply: dict[str, Any] | None = None) -> tuple[Client, Recorder]:
    http = Recorder(status, reply)
    return Client(ACCOUNT, "secret", account_sid=ACCOUNT, http_client=http), http


CALLBACK = "https://permanence.example/voice/leg/status?leg=l1"
JOIN = "https://permanence.example/voice/join?task=t1"
HANG_UP = "<Response><Hangup/></Response>"
SMS = {"to": "+33612345678", "from_": "+33900000000", "body": "Rappel"}
# The same arguments both ways; how long to ring is ``timeout`` there, ``ring_s`` here.
LEG = {
    "to": "+33612345678",
    "from_": "+33900000000",
    "url": "https://p.example/answer",
    "method": "POST",
    "status_callback": CALLBACK,
    "status_callback_method": "POST",
}
PARTICIPANT = {
    "from_": "+33900000000",
    "to": "+33612345678",
    "label": "caller",
    "status_callback": CALLBACK,
    "status_callback_method": "POST",
    "status_callback_event": ["completed"],
    "start_conference_on_enter": True,
    "end_conference_on_exit": True,
    "beep": "false",
}
OPERATIONS = [
    (
        "a volunteer's leg",
        lambda c: c.calls.create_async(**LEG, timeout=30),
        lambda api: api.create_call(**LEG, ring_s=30),
    ),
    (
        "a caller redirected",
        lambda c: c.calls("CA9").update_async(url=JOIN, method="POST"),
        lambda api: api.update_call("CA9", url=JOIN, method="POST"),
    ),
    (
        "a leg hung up",
        lambda c: c.calls("CA9").update_async(status="completed"),
        lambda api: api.update_call("CA9", status="completed"),
    ),
    (
        "new TwiML for a leg",
        lambda c: c.calls("CA9").update_async(twiml=HANG_UP),
        lambda api: api.update_call("CA9", twiml=HANG_UP),
    ),
    (
        "a caller out of the queue",
        lambda c: c.queues("QU1").members("CA9").update_async(url=JOIN, method="POST"),
        lambda api: api.redirect_queue_member("QU1", "CA9", url=JOIN, method="POST"),
    ),
    (
        "a callback's caller into the conference",
        lambda c: c.conferences("task-7").participants.create_async(**PARTICIPANT, timeout=30),
        lambda api: api.add_participant("task-7", **PARTICIPANT, ring_s=30),
    ),
    ("an SMS", lambda c: c.messages.create_async(**SMS), lambda api: api.send_message(**SMS)),
]


@pytest.mark.parametrize(
    ("generated", "ours"), [op[1:] for op in OPERATIONS], ids=[op[0] for op in OPERATIONS]
)
async def test_each_request_is_the_generated_resources_request(generated, ours) -> None:
    client, seen = pair()
    await generated(client)
    api_client, sent = pair()
    await ours(TwilioApi(api_client))
    assert sent.requests == seen.requests
    assert sent.requests[0]["uri"].startswith(
        f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/"
    )


async def test_the_ids_come_back_and_errors_are_the_same_exception() -> None:
    client, _ = pair(reply={"sid": "CA5", "call_sid": "CA6"})
    api = TwilioApi(client)
    assert await api.create_call(to="+33612345678", from_="+339", url="https://p/a") == "CA5"
    assert await api.add_participant("c", from_="+339", to="+33612345678") == "CA6"
    assert await api.send_message(to="+33612345678", from_="+339", body="x") == "CA5"

    missing = {"code": 20404, "message": "The requested resource was not found", "status": 404}
    client, _ = pair(404, missing)
    with pytest.raises(TwilioRestException) as generated:
        await client.calls("CA9").update_async(status="completed")
    api_client, _ = pair(404, missing)
    with pytest.raises(TwilioRestException) as ours:
        await TwilioApi(api_client).update_call("CA9", status="completed")
    assert (ours.value.status, ours.value.code, ours.value.uri) == (
        generated.value.status,
        generated.value.code,
        generated.value.uri,
    )


def test_the_generated_api_tree_is_never_imported() -> None:
    """What the module is for: a worker placing calls never loads the 2010 API tree."""
    script = textwrap.dedent(f"""
        import asyncio, sys
        sys.path.insert(0, {str(ROOT)!r})
        from tests.callers.test_twilio_api import pair
        from callers.twilio_api import TwilioApi
        import callers.voice.bridge, callers.texts
        api = TwilioApi(pair()[0])
        asyncio.run(api.create_call(to="+33612345678", from_="+339", url="https://p/a"))
        asyncio.run(api.update_call("CA9", status="completed"))
        print(sorted(m for m in sys.modules if m.startswith("twilio.rest.api")))
    """)
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"
