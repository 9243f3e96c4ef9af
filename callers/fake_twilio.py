"""A local stand-in for Twilio's REST API, used by the tests and the demo.

It answers the few endpoints the line uses (calls, queue members, conference
participants, messages) the way Twilio does — same paths, form-encoded parameters,
basic auth, JSON bodies, 404/401 error documents — and records every request so tests can assert
what would have reached Twilio. State is in memory: it is a fake, one per process.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import phonenumbers
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

API = "/2010-04-01/Accounts/{account}"


@dataclass
class RecordedRequest:
    method: str
    path: str
    form: dict[str, str]
    status: int


@dataclass
class FakeCall:
    sid: str
    to: str
    from_: str
    direction: str
    status: str = "queued"
    url: str = ""
    queue_sid: str = ""
    conference: str = ""
    label: str = ""
    status_callback: str = ""  # where Twilio posts the call's status (outbound calls)
    updates: list[dict[str, str]] = field(default_factory=list)


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def _rfc2822() -> str:
    return format_datetime(datetime.now(UTC))


class FakeTwilio:
    """The fake's state: known calls and queues, and the log of every request."""

    def __init__(self, account_sid: str, auth_token: str) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.calls: dict[str, FakeCall] = {}
        self.queues: dict[str, str] = {}  # queue sid -> name
        self.requests: list[RecordedRequest] = []
        # Told of each call the app places (a simulator's phones ring on it).
        self.on_dial: Callable[[FakeCall], None] | None = None

    # What the tests use to play Twilio's side of a phone call ------------------------

    def incoming_call(self, from_: str, to: str) -> str:
        """A call arriving on the line (Twilio would then POST our voice webhook)."""
        call = FakeCall(_sid("CA"), to=to, from_=from_, direction="inbound", status="ringing")
        self.calls[call.sid] = call
        return call.sid

    def queue_sid(self, name: str) -> str:
        """The SID of a queue created on demand by <Enqueue>name</Enqueue>."""
        for sid, known in self.queues.items():
            if known == name:
                return sid
        sid = _sid("QU")
        self.queues[sid] = name
        return sid

    def enter_queue(self, call_sid: str, name: str) -> str:
        """Play Twilio executing <Enqueue>: the call waits in the named queue."""
        call = self.calls[call_sid]
        call.queue_sid, call.status = self.queue_sid(name), "in-progress"
        return call.queue_sid

    def made(self, path_suffix: str, method: str = "POST") -> list[RecordedRequest]:
        """Recorded requests whose path ends with this suffix."""
        return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]

    def calls_to(self, to: str) -> list[FakeCall]:
        return [c for c in self.calls.values() if c.to == to and c.direction != "inbound"]

    # Rendering as Twilio does ---------------------------------------------------------

    def call_json(self, call: FakeCall) -> dict[str, Any]:
        base = f"/2010-04-01/Accounts/{self.account_sid}/Calls/{call.sid}"
        return {
            "sid": call.sid,
            "account_sid": self.account_sid,
            "to": call.to,
            "from": call.from_,
            "status": call.status,
            "direction": call.direction,
            "date_created": _rfc2822(),
            "date_updated": _rfc2822(),
            "api_version": "2010-04-01",
            "uri": base + ".json",
            "subresource_uris": {},
        }

    def authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return secrets.compare_digest(f"{user}:{password}", f"{self.account_sid}:{self.auth_token}")


def _error(status: int, code: int, message: str) -> JSONResponse:
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
    )


def _message_problem(form: Any) -> JSONResponse | None:
    """Twilio's refusal of a message, if it would refuse it at once."""
    to, body = str(form.get("To", "")), str(form.get("Body", ""))
    if not to:
        return _error(400, 21604, "A 'To' phone number is required.")
    if not body:
        return _error(400, 21602, "Message body is required.")
    try:
        kind = phonenumbers.number_type(phonenumbers.parse(to, None))
    except phonenumbers.NumberParseException:
        return _error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
    kinds = phonenumbers.PhoneNumberType
    if kind not in (kinds.MOBILE, kinds.FIXED_LINE_OR_MOBILE):
        # Like Twilio, an SMS to a landline is refused (volunteers in phone mode often
        # give one); its message quotes the number, as Twilio's does.
        return _error(400, 21614, f"'To' number {to} is not a valid mobile number")
    return None


def fake_twilio_router(fake: FakeTwilio) -> APIRouter:
    """The REST endpoints of the fake, to mount at the root of an app or under a prefix."""
    router = APIRouter()

    async def record(request: Request, status: int) -> dict[str, str]:
        form = {k: str(v) for k, v in (await request.form()).multi_items()}
        path = request.url.path
        fake.requests.append(RecordedRequest(request.method, path, form, status))
        return form

    def check(request: Request, account: str) -> JSONResponse | None:
        if not fake.authorised(request) or account != fake.account_sid:
            return _error(401, 20003, "Authenticate")
        return None

    @router.post(API + "/Calls.json")
    async def create_call(account: str, request: Request) -> JSONResponse:
        denied = check(request, account)
        form = await record(request, denied.status_code if denied else 201)
        if denied:
            return denied
        if not form.get("To") or not form.get("From"):
            return _error(400, 21201, "No 'To' number is specified")
        if not (form.get("Url") or form.get("Twiml") or form.get("ApplicationSid")):
            return _error(400, 21205, "Url parameter is required")
        call = FakeCall(_sid("CA"), to=form["To"], from_=form["From"], direction="outbound-api")
        call.url, call.status_callback = form.get("Url", ""), form.get("StatusCallback", "")
        fake.calls[call.sid] = call
        if fake.on_dial is not None:
            fake.on_dial(call)
        return JSONResponse(fake.call_json(call), status_code=201)

    @router.get(API + "/Calls/{call_sid}.json")
    async def fetch_call(account: str, call_sid: str, request: Request) -> JSONResponse:
        denied = check(request, account)
        await record(request, denied.status_code if denied else 200)
        if denied:
            return denied
        call = fake.calls.get(call_sid)
        if call is None:
            return _error(404, 20404, f"The requested resource {request.url.path} was not found")
        return JSONResponse(fake.call_json(call))

    @router.post(API + "/Calls/{call_sid}.json")
    async def update_call(account: str, call_sid: str, request: Request) -> JSONResponse:
        denied = check(request, account)
        call = fake.calls.get(call_sid)
        status = denied.status_code if denied else (404 if call is None else 200)
        form = await record(request, status)
        if denied:
            return denied
        if call is None:
            return _error(404, 20404, f"The requested resource {request.url.path} was not found")
        call.updates.append(form)
        if form.get("Status") in {"completed", "canceled"}:
            call.status = "completed"
        if form.get("Url"):
            call.url, call.queue_sid = form["Url"], ""
        return JSONResponse(fake.call_json(call))

    @router.post(API + "/Queues/{queue_sid}/Members/{call_sid}.json")
    async def update_member(
        account: str, queue_sid: str, call_sid: str, request: Request
    ) -> JSONResponse:
        denied = check(request, account)
        call = fake.calls.get(call_sid)
        missing = call is None or call.queue_sid != queue_sid
        form = await record(request, denied.status_code if denied else (404 if missing else 200))
        if denied:
            return denied
        if missing or call is None:
            return _error(404, 20404, f"The requested resource {request.url.path} was not found")
        if not form.get("Url"):
            return _error(400, 21205, "Url parameter is required")
        call.url, call.queue_sid = form["Url"], ""
        return JSONResponse(
            {
                "call_sid": call_sid,
                "queue_sid": queue_sid,
                "date_enqueued": _rfc2822(),
                "position": 1,
                "wait_time": 0,
                "uri": request.url.path,
            }
        )

    @router.post(API + "/Conferences/{conference}/Participants.json")
    async def create_participant(account: str, conference: str, request: Request) -> JSONResponse:
        denied = check(request, account)
        form = await record(request, denied.status_code if denied else 201)
        if denied:
            return denied
        if not form.get("To") or not form.get("From"):
            return _error(400, 21201, "No 'To' number is specified")
        call = FakeCall(_sid("CA"), to=form["To"], from_=form["From"], direction="outbound-api")
        call.conference, call.label = conference, form.get("Label", "")
        fake.calls[call.sid] = call
        return JSONResponse(
            {
                "account_sid": fake.account_sid,
                "call_sid": call.sid,
                "conference_sid": conference if conference.startswith("CF") else _sid("CF"),
                "label": call.label,
                "status": "queued",
                "muted": False,
                "hold": False,
                "coaching": False,
                "start_conference_on_enter": form.get("StartConferenceOnEnter", "true") == "true",
                "end_conference_on_exit": form.get("EndConferenceOnExit", "false") == "true",
                "date_created": _rfc2822(),
                "date_updated": _rfc2822(),
                "uri": request.url.path,
            },
            status_code=201,
        )

    @router.post(API + "/Messages.json")
    async def create_message(account: str, request: Request) -> JSONResponse:
        refused = check(request, account) or _message_problem(await request.form())
        form = await record(request, refused.status_code if refused else 201)
        if refused:
            return refused
        sid = _sid("SM")
        return JSONResponse(
            {
                "sid": sid,
                "account_sid": fake.account_sid,
                "to": form["To"],
                "from": form.get("From", ""),
                "body": form["Body"],
                "status": "queued",
                "direction": "outbound-api",
                "num_segments": "1",
                "date_created": _rfc2822(),
                "date_updated": _rfc2822(),
                "api_version": "2010-04-01",
                "uri": f"/2010-04-01/Accounts/{fake.account_sid}/Messages/{sid}.json",
            },
            status_code=201,
        )

    @router.get("/_fake/requests")
    async def recorded(request: Request) -> JSONResponse:
        """What the fake received, for whoever holds the (fake) account's credentials."""
        if not fake.authorised(request):
            return JSONResponse(
                {"code": 20003, "message": "Authenticate", "status": 401}, status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="fake-twilio"'},
            )
        return JSONResponse(
            [{"method": r.method, "path": r.path, "form": r.form, "status": r.status}
             for r in fake.requests]
        )

    return router


def fake_twilio_app(fake: FakeTwilio) -> FastAPI:
    """The fake as a standalone ASGI app (tests reach it through httpx.ASGITransport)."""
    app = FastAPI(title="Fake Twilio")
    app.include_router(fake_twilio_router(fake))
    return app
