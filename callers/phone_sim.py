"""A demo telephone: plays Twilio's part of a caller's call against this very app.

Only mounted with the fake Twilio (TWILIO_FAKE), under /fake-twilio/telephone, and
only for whoever holds the fake account's credentials. It signs every webhook like
Twilio, follows <Redirect>, waits on <Gather>, fetches the <Enqueue> wait URL, and
follows the caller into the conference when the bridge moves them (the fake Twilio
records the member update). What the caller would hear is shown as text.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from twilio.request_validator import RequestValidator

from callers.fake_twilio import FakeTwilio
from callers.settings import CallersSettings

HERE = Path(__file__).resolve().parent
MAX_REDIRECTS = 20


@dataclass
class SimCall:
    """Where one simulated call is in the TwiML it was given."""

    sid: str
    from_: str
    gather: dict[str, str] | None = None
    fallthrough: str = ""
    wait_url: str = ""
    exit_url: str = ""
    queue_sid: str = ""
    url_seen: str = ""
    in_conference: bool = False
    ended: bool = False
    said: list[str] = field(default_factory=list)


class PhoneSimulator:
    """The calls in progress on the demo telephone (in memory, one process)."""

    def __init__(self, settings: CallersSettings, fake: FakeTwilio) -> None:
        self.settings = settings
        self.fake = fake
        self.validator = RequestValidator(settings.twilio_auth_token)
        self.calls: dict[str, SimCall] = {}

    async def post(self, app: Any, call: SimCall, url: str, **extra: str) -> ET.Element:
        params = {
            "CallSid": call.sid, "AccountSid": self.settings.twilio_account_sid,
            "From": call.from_, "To": self.settings.twilio_number,
            "CallStatus": "in-progress", "Direction": "inbound", **extra,
        }
        headers = {"X-Twilio-Signature": self.validator.compute_signature(url, params)}
        reply = await self.send(app, url, params, headers)
        if reply.status_code != 200:
            raise RuntimeError(f"the app answered {reply.status_code}")
        return ET.fromstring(reply.text) if reply.text.strip() else ET.Element("Response")

    async def send(
        self, app: Any, url: str, params: dict[str, str], headers: dict[str, str]
    ) -> httpx.Response:
        """POST a signed webhook (in-process here; web.simulation.clients sends it over HTTP)."""
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
            return await client.post(url, data=params, headers=headers)

    async def play(self, app: Any, call: SimCall, url: str, **extra: str) -> None:
        """Request a URL and run its TwiML until it waits for the caller."""
        for _ in range(MAX_REDIRECTS):
            root = await self.post(app, call, url, **extra)
            extra = {}
            call.gather, call.fallthrough = None, ""
            next_url = ""
            verbs = list(root)
            for index, verb in enumerate(verbs):
                if call.gather is not None:
                    # Twilio waits at a <Gather>: what follows runs only on silence.
                    if verb.tag == "Redirect" and index == len(verbs) - 1:
                        call.fallthrough = (verb.text or "").strip()
                    break
                if verb.tag == "Say":
                    call.said.append(verb.text or "")
                elif verb.tag == "Gather":
                    call.said.extend(s.text or "" for s in verb.iter("Say"))
                    call.gather = dict(verb.attrib)
                elif verb.tag == "Redirect":
                    next_url = (verb.text or "").strip()
                elif verb.tag == "Enqueue":
                    call.wait_url = verb.attrib.get("waitUrl", "")
                    call.exit_url = verb.attrib.get("action", "")
                    call.queue_sid = self.fake.enter_queue(call.sid, verb.text or "")
                    call.url_seen = self.fake.calls[call.sid].url
                elif verb.tag == "Leave" and call.exit_url:
                    call.queue_sid = ""
                    next_url, extra = call.exit_url, {"QueueResult": "leave"}
                elif verb.tag == "Dial" and verb.find("Conference") is not None:
                    call.in_conference = True
                    call.said.append("(en relation avec le bénévole)")
                elif verb.tag == "Hangup":
                    call.ended = True
            if not next_url or call.ended:
                return
            url = next_url

    async def wait(self, app: Any, call: SimCall) -> None:
        """Time passes on hold: follow a redirect out of the queue, else fetch the wait URL."""
        moved = self.fake.calls[call.sid].url
        if moved and moved != call.url_seen:
            call.url_seen, call.queue_sid = moved, ""
            await self.play(app, call, moved)
        elif call.queue_sid and call.wait_url:
            await self.play(app, call, call.wait_url, QueueSid=call.queue_sid)

    def view(self, call: SimCall) -> dict[str, Any]:
        return {
            "call": call.sid, "said": call.said[-12:], "keys": call.gather is not None,
            "waiting": bool(call.queue_sid), "connected": call.in_conference,
            "ended": call.ended,
        }


def phone_router(sim: PhoneSimulator) -> APIRouter:
    """The demo telephone's page and API (mount under /fake-twilio)."""
    router = APIRouter(include_in_schema=False)

    def denied(request: Request) -> Response | None:
        if sim.fake.authorised(request):
            return None
        return Response("Authentification requise.", status_code=401,
                        headers={"WWW-Authenticate": 'Basic realm="fake-twilio"'})

    async def body(request: Request) -> dict[str, str]:
        data = await request.json()
        return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def known(data: dict[str, str]) -> SimCall | None:
        return sim.calls.get(data.get("call", ""))

    @router.get("/telephone", response_class=HTMLResponse)
    async def page(request: Request) -> Response:
        return denied(request) or HTMLResponse((HERE / "templates" / "telephone.html").read_text(
            encoding="utf-8"))

    @router.post("/telephone/api/{action}")
    async def act(action: str, request: Request) -> Response:
        if (refusal := denied(request)) is not None:
            return refusal
        data = await body(request)
        app = request.app
        if action == "call":
            from_ = data.get("from", "").strip() or "+33612345678"
            call = SimCall(sim.fake.incoming_call(from_, sim.settings.twilio_number), from_)
            sim.calls[call.sid] = call
            await sim.play(app, call, sim.settings.url("/twilio/voice/incoming"),
                           CallStatus="ringing")
            return JSONResponse(sim.view(call))
        call = known(data)
        if call is None or call.ended and action != "hangup":
            return JSONResponse({"message": "Cet appel n'existe plus."}, status_code=404)
        if action == "press" and call.gather:
            digits = "".join(c for c in data.get("digits", "") if c in "0123456789*#")
            extra = {"Digits": digits.rstrip("#")}
            if call.queue_sid:
                extra["QueueSid"] = call.queue_sid
            await sim.play(app, call, call.gather["action"], **extra)
        elif action == "silence" and call.fallthrough:
            await sim.play(app, call, call.fallthrough)
        elif action == "wait":
            await sim.wait(app, call)
        elif action == "hangup":
            call.ended = True
            await sim.post(app, call, sim.settings.url("/twilio/voice/status"),
                           CallStatus="completed")
            sim.calls.pop(call.sid, None)
        return JSONResponse(sim.view(call))

    return router
