"""Clients that drive a running Permanence from outside, the way the world does.

- ``TwilioNetwork`` plays Twilio: it posts webhooks signed with the line's auth token
  (``RequestValidator``, against PUBLIC_BASE_URL + path + query) and serves the Twilio
  REST API the app calls back (point the app's ``TWILIO_API_BASE`` at ``rest_url``), so
  a caller hears of being put through exactly as a Twilio call would: the app moves it
  out of the queue with a queue-member update.
- ``Caller``: one phone call walking the IVR into the queue, then talking or hanging up.
- ``ChatCaller``: one web chat over the public page's HTTP API and websocket.
- ``Console``: a volunteer's console (login with CSRF, websocket, heartbeat, requests).
- ``Dashboard``: a coordinator's dashboard socket, every update timestamped.

Timestamps are ``time.time()`` seconds taken when a message arrives or a request leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import uvicorn
import websockets
from fastapi import Request

from callers.chat.service import unverified_task_of
from callers.fake_twilio import FakeCall, FakeTwilio, fake_twilio_app
from callers.phone_sim import PhoneSimulator
from callers.phone_sim import SimCall as PhoneCall
from callers.settings import CallersSettings
from web.coordination.delta import receive

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
MEMBER_OR_CALL = re.compile(r"/(?:Members|Calls)/(CA[0-9a-f]+)\.json$")
REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Line:
    """Where the app answers, and the Twilio account it trusts."""

    base_url: str  # where requests are sent
    account_sid: str = "AC00000000000000000000000000000000"
    auth_token: str = "dev-auth-token"
    number: str = "+33800000000"
    public_base_url: str = ""  # what signatures are computed on; default base_url

    @property
    def public(self) -> str:
        return (self.public_base_url or self.base_url).rstrip("/")

    @property
    def ws_base(self) -> str:
        return re.sub(r"^http", "ws", self.base_url.rstrip("/"))


class _QuietServer(uvicorn.Server):
    """A uvicorn server inside the caller's event loop that leaves Ctrl-C to the caller."""

    def capture_signals(self):  # type: ignore[override]
        return contextlib.nullcontext()


class _RemotePhone(PhoneSimulator):
    """The demo telephone's TwiML player, posting its signed webhooks over HTTP."""

    def __init__(self, settings: CallersSettings, fake: FakeTwilio, line: Line,
                 http: httpx.AsyncClient) -> None:  # fmt: skip
        super().__init__(settings, fake)
        self.line, self.http = line, http
        self.sent = 0  # webhooks posted

    async def send(self, app: Any, url: str, params: dict[str, str],
                   headers: dict[str, str]) -> httpx.Response:  # fmt: skip
        self.sent += 1
        parts = urlsplit(url)  # signed on the public URL, sent to where the app listens
        target = self.line.base_url.rstrip("/") + parts.path
        return await self.http.post(target + (f"?{parts.query}" if parts.query else ""),
                                    data=params, headers=headers)  # fmt: skip


class TwilioNetwork:
    """Twilio's side of every call: signed webhooks out, the REST API in (on ``rest_url``)."""

    def __init__(self, line: Line, *, host: str = "127.0.0.1", port: int = 0,
                 http: httpx.AsyncClient | None = None) -> None:  # fmt: skip
        self.line = line
        self.fake = FakeTwilio(line.account_sid, line.auth_token)
        self.http = http or httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S)
        settings = CallersSettings(
            secret_key="unused", public_base_url=line.public, twilio_account_sid=line.account_sid,
            twilio_auth_token=line.auth_token, twilio_number=line.number,
        )  # fmt: skip
        self.phone = _RemotePhone(settings, self.fake, line, self.http)
        self.host, self.port = host, port
        self._moved: dict[str, asyncio.Event] = {}
        self._phones: dict[str, asyncio.Queue[FakeCall]] = {}
        self.fake.on_dial = self._ring
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def rest_url(self) -> str:
        """What the app's TWILIO_API_BASE must be."""
        return f"http://{self.host}:{self.port}"

    def moved(self, sid: str) -> asyncio.Event:
        """Set when the app redirects this call (out of the queue, into a conference)."""
        return self._moved.setdefault(sid, asyncio.Event())

    def phone_line(self, number: str) -> asyncio.Queue[FakeCall]:
        """The calls the app places to this number, as they ring."""
        return self._phones.setdefault(number, asyncio.Queue())

    def _ring(self, call: FakeCall) -> None:
        if call.to in self._phones:
            self._phones[call.to].put_nowait(call)

    async def start(self) -> None:
        """Serve the fake REST API in this event loop."""
        app = fake_twilio_app(self.fake)

        @app.middleware("http")
        async def notice(request: Request, call_next):  # the app moved a call: wake its caller
            response = await call_next(request)
            found = MEMBER_OR_CALL.search(request.url.path)
            if request.method == "POST" and found and response.status_code == 200:
                call = self.fake.calls.get(found.group(1))
                if call is not None and call.url:
                    self.moved(call.sid).set()
            return response

        config = uvicorn.Config(app, host=self.host, port=self.port, log_level="warning",
                                lifespan="off", access_log=False)  # fmt: skip
        self._server = _QuietServer(config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                raise RuntimeError(f"the fake Twilio could not listen on {self.host}:{self.port}")
            await asyncio.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        await self.http.aclose()

    def caller(self, from_: str) -> Caller:
        return Caller(self, from_)


@dataclass
class Caller:
    """One phone call: IVR, queue, then put through (or hangs up first)."""

    net: TwilioNetwork
    from_: str
    call: PhoneCall | None = None
    enqueue_sent_at: float | None = None  # when the webhook that enqueues left
    answered_at: float | None = None  # when the app's redirect out of the queue arrived
    task: str = ""  # the app's task id, learnt from that redirect
    hung_up: bool = False
    ended_by_app: bool = False  # the app hung up first (the volunteer ended the call)

    @property
    def queued(self) -> bool:
        return self.call is not None and bool(self.call.queue_sid)

    async def dial(self, departement: str, topic: str = "4") -> bool:
        """Call, choose the topic, key the département and confirm; True once in the queue."""
        net, phone = self.net, self.net.phone
        sid = net.fake.incoming_call(self.from_, net.line.number)
        self.call = call = PhoneCall(sid, self.from_)
        self.enqueue_sent_at = time.time()  # a caller resuming their place skips the menus
        await phone.play(None, call, net.line.public + "/twilio/voice/incoming",
                         CallStatus="ringing")  # fmt: skip
        keys = {
            "topic/answer": topic,
            "dept/answer": "20" if departement in ("2A", "2B") else departement,
            "dept/corse/answer": "1" if departement == "2A" else "2",
            "dept/confirm/answer": "1",  # yes, the département read back is right
            "known/answer": "1",  # a recognised caller keeps their last département
        }
        for _ in range(10):
            if call.queue_sid:
                break
            if call.gather is None or call.ended:
                return False  # closed line, nobody on duty, or a menu we do not expect
            step = urlsplit(call.gather["action"]).path.split("/twilio/voice/", 1)[-1]
            if step not in keys:
                return False
            self.enqueue_sent_at = time.time()
            await phone.play(None, call, call.gather["action"], Digits=keys[step])
        if not call.queue_sid:
            return False
        # Twilio fetches the wait URL at once: the app learns the queue SID it must update.
        await phone.play(None, call, call.wait_url, QueueSid=call.queue_sid)
        return True

    async def wait_answer(
        self, patience_s: float | None, hold_every_s: float | None = None
    ) -> bool:
        """Wait in the queue until put through (True) or patience runs out (False)."""
        assert self.call is not None
        moved = self.net.moved(self.call.sid)
        deadline = None if patience_s is None else time.monotonic() + patience_s
        while not moved.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            step = min(x for x in (left, hold_every_s, 3600.0) if x is not None)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(moved.wait(), step)
            if not moved.is_set() and self.call.queue_sid and hold_every_s:
                # the hold music ended: Twilio fetches the wait URL again
                await self.net.phone.play(None, self.call, self.call.wait_url,
                                          QueueSid=self.call.queue_sid)  # fmt: skip
        self.answered_at = time.time()
        url = self.net.fake.calls[self.call.sid].url
        self.task = parse_qs(urlsplit(url).query).get("task", [""])[0]
        await self.net.phone.wait(None, self.call)  # follow the redirect into the conference
        return True

    async def stay_on_line(self, timeout_s: float) -> None:
        """After saying goodbye, stay on the line until the app cuts it, at most timeout_s."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.call is not None:
            fake_call = self.net.fake.calls.get(self.call.sid)
            if fake_call is None or fake_call.status == "completed":
                return
            await asyncio.sleep(min(0.02, max(0.0, deadline - time.monotonic())))

    async def hang_up(self) -> None:
        """The caller hangs up: Twilio posts the final status callback."""
        if self.call is None or self.hung_up:
            return
        self.hung_up = True
        fake_call = self.net.fake.calls.get(self.call.sid)
        self.ended_by_app = fake_call is not None and fake_call.status == "completed"
        if fake_call is not None:  # gone from Twilio: later REST updates of it fail
            fake_call.status, fake_call.queue_sid = "completed", ""
        await self.net.phone.post(None, self.call, self.net.line.public + "/twilio/voice/status",
                                  CallStatus="completed")  # fmt: skip


CHAT_END_WAIT_S = 10.0  # how long an ending chat waits for the server's "ended"


@dataclass
class ChatCaller:
    """One web chat from the public page (callers/chat/router.py): the start API, then
    the chat websocket: wait for a volunteer, write, end the chat."""

    line: Line
    http: httpx.AsyncClient
    token: str = ""
    task: str = ""  # the app's task id, read from the token (signed, not secret)
    refusal: str = ""  # the start API's error code: closed, rate, postal_code...
    enqueue_sent_at: float | None = None  # when the start request (which enqueues) left
    answered_at: float | None = None  # when the page was told a volunteer had joined
    messages: list[dict[str, Any]] = field(default_factory=list)  # the conversation as seen
    errors: list[dict[str, Any]] = field(default_factory=list)  # refused messages (rate...)
    sent: int = 0  # messages written
    requests: int = 0  # HTTP requests and websocket frames sent
    _ws: Any = field(default=None, repr=False)
    _reader: asyncio.Task[None] | None = field(default=None, repr=False)
    _talking: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _gone: asyncio.Event = field(default_factory=asyncio.Event, repr=False)  # chat ended
    _news: asyncio.Event = field(default_factory=asyncio.Event, repr=False)  # volunteer wrote

    @property
    def ended(self) -> bool:
        return self._gone.is_set()

    async def start(self, postal_code: str, topic: str = "autre", first_name: str = "") -> bool:
        """POST the start form, as the page does; False (``refusal`` says why) if refused."""
        self.enqueue_sent_at = time.time()
        self.requests += 1
        reply = await self.http.post(self.line.base_url.rstrip("/") + "/aide/api/start",
                                     json={"topic": topic, "postal_code": postal_code,
                                           "first_name": first_name})  # fmt: skip
        if reply.status_code != 200:
            self.refusal = str(reply.json().get("error", reply.status_code))
            return False
        self.token = reply.json()["token"]
        self.task = unverified_task_of(self.token) or ""
        return True

    async def connect(self) -> None:
        """Open the chat socket and follow it (status, messages, errors, end)."""
        url = f"{self.line.ws_base}/aide/ws?token={self.token}"
        self._ws = await websockets.connect(url, origin=self.line.base_url, max_queue=None)
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self._ws:
                at, msg = time.time(), json.loads(raw)
                kind = msg.get("type")
                if kind == "hello":
                    self._heard(msg.get("messages", []))
                    self._status(at, msg.get("status", {}))
                elif kind == "messages":
                    self._heard(msg.get("messages", []))
                elif kind == "status":
                    self._status(at, msg)
                elif kind == "error":
                    self.errors.append(msg)
                elif kind == "ended":
                    self._gone.set()
        self._gone.set()

    def _heard(self, messages: list[dict[str, Any]]) -> None:
        self.messages.extend(messages)
        if any(m.get("author") == "volunteer" for m in messages):
            self._news.set()

    def _status(self, at: float, status: dict[str, Any]) -> None:
        state = status.get("state")
        if not state:
            return
        if state == "talking" and self.answered_at is None:
            self.answered_at = at
            self._talking.set()
        elif state == "ended":
            self._gone.set()

    @property
    def volunteer_messages(self) -> int:
        return sum(m.get("author") == "volunteer" for m in self.messages)

    async def wait_answer(self, patience_s: float | None) -> bool:
        """Wait until a volunteer joins (True), or the chat ends or patience runs out."""
        if not self.token:
            return False
        if self._ws is None:
            await self.connect()
        talking = asyncio.ensure_future(self._talking.wait())
        gone = asyncio.ensure_future(self._gone.wait())
        try:
            await asyncio.wait({talking, gone}, timeout=patience_s,
                               return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        finally:
            talking.cancel()
            gone.cancel()
        return self._talking.is_set()

    async def wait_volunteer_message(self, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) until a volunteer has written something."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._news.wait(), timeout_s)
        return self._news.is_set()

    async def say(self, text: str) -> None:
        """Write a message, as the page's send button does."""
        if self._ws is None or self.ended:
            return
        await self._ws.send(json.dumps({"type": "send", "text": text}))
        self.sent += 1
        self.requests += 1

    async def end(self) -> None:
        """End the chat as the page's end button does (abandoned while waiting, completed
        while talking), wait for the server's "ended", and close the socket."""
        if self._ws is not None and not self.ended:
            with contextlib.suppress(websockets.ConnectionClosed):
                await self._ws.send(json.dumps({"type": "end"}))
                self.requests += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._gone.wait(), CHAT_END_WAIT_S)
        await self.close()

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)


async def login(base_url: str, email: str, password: str) -> httpx.AsyncClient:
    """An HTTP client holding a session cookie, logged in through the /connexion form."""
    client = httpx.AsyncClient(base_url=base_url, timeout=REQUEST_TIMEOUT_S)
    page = await client.get("/connexion")
    token = CSRF.search(page.text)
    if token is None:
        await client.aclose()
        raise RuntimeError("the login page carries no CSRF token")
    reply = await client.post(
        "/connexion", data={"email": email, "password": password, "csrf_token": token.group(1)}
    )
    if reply.status_code != 303:
        await client.aclose()
        raise RuntimeError(f"login refused for {email} ({reply.status_code})")
    return client


def _cookie(client: httpx.AsyncClient) -> str:
    return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


async def _logged_in_socket(
    base_url: str, email: str, password: str, path: str
) -> tuple[httpx.AsyncClient, Any]:
    """Log in, then open the websocket at ``path`` with the session cookie."""
    http = await login(base_url, email, password)
    base = base_url.rstrip("/")
    try:
        ws = await websockets.connect(re.sub(r"^http", "ws", base) + path, origin=base,
                                      max_queue=None,
                                      additional_headers={"Cookie": _cookie(http)})  # fmt: skip
    except BaseException:
        await http.aclose()
        raise
    return http, ws


@dataclass
class Offer:
    message: dict[str, Any]
    at: float  # arrival on the socket

    @property
    def task(self) -> str:
        return str(self.message.get("task", ""))

    @property
    def channel(self) -> str:
        return str(self.message.get("channel", "voice"))


class Console:
    """A volunteer's console over the real websocket (protocol v1, volunteers/PROTOCOL.md)."""

    def __init__(self, http: httpx.AsyncClient, ws: Any) -> None:
        self.http, self.ws = http, ws
        self.welcome: dict[str, Any] = {}
        self.offers: asyncio.Queue[Offer] = asyncio.Queue()
        self.pushes: list[tuple[float, dict[str, Any]]] = []  # everything but offers/results
        self.task_status: dict[str, str] = {}  # last `task` push per task: assigned, wrapup...
        self.chats: dict[str, list[dict[str, Any]]] = {}  # `chat` pushes: messages per task
        self._news: dict[str, asyncio.Event] = {}
        self._ref = 0
        self._results: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    async def open(cls, base_url: str, email: str, password: str) -> Console:
        """Log in, connect, read the welcome, and start heartbeats."""
        http, ws = await _logged_in_socket(base_url, email, password, "/benevole/console/ws?v=1")
        try:
            welcome = json.loads(await asyncio.wait_for(ws.recv(), REQUEST_TIMEOUT_S))
        except BaseException:
            await ws.close()
            await http.aclose()
            raise
        console = cls(http, ws)
        console.welcome = welcome
        loop = asyncio.get_running_loop()
        console._tasks = [
            loop.create_task(console._read()),
            loop.create_task(console._heartbeat(welcome.get("heartbeat_s", 10))),
        ]
        return console

    @property
    def volunteer_id(self) -> str:
        return str(self.welcome.get("volunteer", {}).get("id", ""))

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                at, msg = time.time(), json.loads(raw)
                kind = msg.get("type")
                if kind == "result" and msg.get("ref") in self._results:
                    self._results.pop(msg["ref"]).set_result(msg)
                elif kind == "offer":
                    self.offers.put_nowait(Offer(msg, at))
                elif kind != "pong":
                    self.pushes.append((at, msg))
                    self._task_news(msg)
        for future in self._results.values():
            if not future.done():
                future.set_exception(ConnectionError("console socket closed"))

    def _task_news(self, msg: dict[str, Any]) -> None:
        task = str(msg.get("task", ""))
        if msg.get("type") == "task" and task:
            self.task_status[task] = str(msg.get("status", ""))
        elif msg.get("type") == "chat" and task:
            self.chats.setdefault(task, []).extend(msg.get("messages", []))
        else:
            return
        self.news(task).set()

    def news(self, task: str) -> asyncio.Event:
        """Set by each `task` or `chat` push about this task (clear it before reading)."""
        return self._news.setdefault(task, asyncio.Event())

    async def _heartbeat(self, every_s: float) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                await asyncio.sleep(every_s)
                await self.ws.send(json.dumps({"type": "ping"}))

    async def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Send one request and return its result (``ok`` true or false)."""
        self._ref += 1
        ref = str(self._ref)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._results[ref] = future
        await self.ws.send(json.dumps({"type": kind, "ref": ref, **fields}))
        return await asyncio.wait_for(future, REQUEST_TIMEOUT_S)

    async def presence(self, state: str) -> dict[str, Any]:
        return await self.request("presence", state=state)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.http.aclose()


@dataclass
class Handled:
    """One offer as a volunteer lived it."""

    task: str
    offered_at: float
    channel: str = "voice"
    accepted: bool = False
    accepted_at: float | None = None  # the accept's result arrived
    completed_at: float | None = None  # the conversation ended (either side)
    wrapup_sent_at: float | None = None  # the volunteer let go of it
    wrapped: bool = False
    ended_by_volunteer: bool = False  # a chat whose caller never ended it
    chat_sent: int = 0  # chat messages the volunteer wrote
    error: str = ""


Delay = Callable[[], float]
# What a simulated volunteer writes in a chat: a greeting, then one line per caller message.
VOLUNTEER_LINES = ("Bonjour, je suis bénévole. Je vous écoute : que puis-je faire pour vous ?",
                   "Je regarde cela avec vous.")  # fmt: skip
CHAT_GRACE_S = 10.0  # real seconds past twice its service time before a volunteer ends a chat


class Volunteer:
    """A volunteer at work: available, accepts after a delay, talks, completes, wraps up.

    Each accepted task is handled on its own, so chats run side by side. The engine
    decides how many: one offer at a time, chats up to the volunteer's chat capacity,
    nothing else while a call is held (a call takes their full attention).
    """

    def __init__(self, console: Console, home: str = "") -> None:
        self.console, self.home = console, home
        self.chat_capacity = int(console.welcome.get("volunteer", {}).get("chat_capacity") or 1)
        self.available_at: float | None = None  # when "available" was last confirmed
        # Every request after which the engine may offer this volunteer a task: presence,
        # wrap-up, and the accept of a chat (room may be left for another).
        self.available_times: list[float] = []
        self.handled: list[Handled] = []
        self._handling: set[asyncio.Task[None]] = set()  # accepted tasks being handled

    async def go_available(self) -> None:
        sent = time.time()
        reply = await self.console.presence("available")
        if not reply.get("ok"):
            raise RuntimeError(f"cannot go available: {reply.get('error')}")
        self.available_at = sent
        self.available_times.append(sent)

    async def work(self, accept_delay: Delay, service_s: Callable[[str], Awaitable[float]],
                   wrapup_delay: Delay, topic: str = "autre") -> None:  # fmt: skip
        """Answer offers until cancelled. ``service_s(task)`` says how long a call lasts; a
        chat lasts until its caller ends it (past twice that, the volunteer ends it)."""
        try:
            while True:
                offer = await self.console.offers.get()
                if not self._takes_in_console(offer):
                    continue
                done = Handled(offer.task, offer.at, channel=offer.channel)
                self.handled.append(done)
                await asyncio.sleep(accept_delay())
                sent = time.time()
                reply = await self.console.request("accept", task=offer.task)
                if not reply.get("ok"):  # the caller left meanwhile, or it went elsewhere
                    done.error = reply.get("error", {}).get("code", "refused")
                    continue
                done.accepted, done.accepted_at = True, time.time()
                if done.channel == "chat":
                    self.available_times.append(sent)
                self._take(done, service_s, wrapup_delay, topic)
        finally:
            await self._drop_handling()

    def _take(self, done: Handled, service_s: Callable[[str], Awaitable[float]],
              wrapup_delay: Delay, topic: str) -> None:  # fmt: skip
        """Handle an accepted task on its own, so that chats run side by side."""
        job = asyncio.get_running_loop().create_task(
            self._handle(done, service_s, wrapup_delay, topic)
        )
        self._handling.add(job)
        job.add_done_callback(self._handling.discard)

    async def _drop_handling(self) -> None:
        jobs = list(self._handling)
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)

    async def _handle(self, done: Handled, service_s: Callable[[str], Awaitable[float]],
                      wrapup_delay: Delay, topic: str) -> None:  # fmt: skip
        """One accepted task, from the conversation to the wrap-up."""
        if done.channel == "chat":
            await self._chat(done, await service_s(done.task))
        else:
            await asyncio.sleep(await service_s(done.task))
            await self._end_call(done)
            done.completed_at = time.time()
        await asyncio.sleep(wrapup_delay())
        sent = done.wrapup_sent_at = time.time()  # the wrap-up gives the capacity back
        reply = await self.console.request("wrapup", task=done.task, topic=topic,
                                           outcome="resolved", consent=False)  # fmt: skip
        done.wrapped = True
        if reply.get("ok"):
            self.available_at = sent
            self.available_times.append(sent)

    def _takes_in_console(self, offer: Offer) -> bool:
        return True

    async def _end_call(self, done: Handled) -> None:
        await self.console.request("complete", task=done.task)

    async def _chat(self, done: Handled, service_s: float) -> None:
        """Greet, answer each message of the caller, until the caller ends the chat."""
        console, task = self.console, done.task
        news = console.news(task)
        await self._write(done, VOLUNTEER_LINES[0])
        deadline = time.monotonic() + 2 * service_s + CHAT_GRACE_S
        answered = 0  # caller messages answered so far, as the console showed them
        while console.task_status.get(task, "assigned") == "assigned":
            news.clear()  # before reading: a push arriving while we write sets it again
            heard = sum(m.get("author") == "caller" for m in console.chats.get(task, []))
            if heard > answered:
                answered = heard
                await self._write(done, VOLUNTEER_LINES[1])
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                await console.request("complete", task=task)
                done.ended_by_volunteer = True
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(news.wait(), left)
        done.completed_at = time.time()

    async def _write(self, done: Handled, text: str) -> None:
        reply = await self.console.request("chat_send", task=done.task, text=text)
        done.chat_sent += bool(reply.get("ok"))  # refused once the caller has ended it

    def held_at_once(self) -> tuple[int, int]:
        """(most chats held at once, calls held alongside another task).

        Each task counts from its accept's result to its wrap-up's sending: a window in
        which the server surely held it, so an overlap seen here is a real one.
        """
        spans = [(h.accepted_at, h.wrapup_sent_at, h.channel) for h in self.handled
                 if h.accepted_at is not None and h.wrapup_sent_at is not None]  # fmt: skip
        edges = sorted([(a, 1) for a, _, ch in spans if ch == "chat"]
                       + [(b, -1) for _, b, ch in spans if ch == "chat"])  # fmt: skip
        most = held = 0
        for _, step in edges:  # at equal times a release (-1) sorts first
            held += step
            most = max(most, held)
        shared = sum(
            1 for i, (a, b, ch) in enumerate(spans) if ch == "voice"
            and any(a2 < b and a < b2 for j, (a2, b2, _) in enumerate(spans) if j != i)
        )  # fmt: skip
        return most, shared

    async def finish_held(self, topic: str = "autre") -> int:
        """End what this volunteer still holds (a run cut short, a previous run): complete
        and wrap up; returns how many tasks were ended."""
        held = {t["task"]: t.get("status", "") for t in self.console.welcome.get("tasks", [])}
        for h in self.handled:
            if h.accepted and not h.wrapped:
                held[h.task] = "wrapup" if h.completed_at else "assigned"
        for task, status in held.items():
            if status == "assigned":
                await self.console.request("complete", task=task)
            await self.console.request("wrapup", task=task, topic=topic, outcome="resolved",
                                       consent=False)  # fmt: skip
        self.console.welcome["tasks"] = []
        for h in self.handled:
            h.wrapped = h.wrapped or h.accepted
        return len(held)


class PhoneVolunteer(Volunteer):
    """A volunteer in phone mode, as many are where the internet is poor: a call rings on
    their own phone with a whisper, they press 1 to take it and hang up at its end; chats,
    and the wrap-up, stay in the console.

    The console shows the same offer; this volunteer leaves it there (the phone is how they
    answer) and learns from it which task is ringing.
    """

    RING_PAIRING_S = 5.0  # how long a ring waits for its offer on the console

    def __init__(self, console: Console, home: str, net: TwilioNetwork, number: str) -> None:
        super().__init__(console, home)
        self.net, self.number = net, number
        self.rings = net.phone_line(number)
        self.calls_by_phone = 0  # calls taken by pressing 1
        self._voice_offers: asyncio.Queue[Offer] = asyncio.Queue()
        self._legs: dict[str, tuple[PhoneCall, FakeCall]] = {}  # task -> its leg, answered

    def _takes_in_console(self, offer: Offer) -> bool:
        if offer.channel == "chat":
            return True
        self._voice_offers.put_nowait(offer)
        return False

    async def work(self, accept_delay: Delay, service_s: Callable[[str], Awaitable[float]],
                   wrapup_delay: Delay, topic: str = "autre") -> None:  # fmt: skip
        phone = asyncio.get_running_loop().create_task(
            self._answer_phone(accept_delay, service_s, wrapup_delay, topic)
        )
        try:
            await super().work(accept_delay, service_s, wrapup_delay, topic)
        finally:
            phone.cancel()
            await asyncio.gather(phone, return_exceptions=True)
            await self._drop_handling()  # any call the phone took meanwhile

    async def _offer_ringing(self) -> Offer | None:
        """The console's latest voice offer: the one the ringing phone is for."""
        try:
            offer = await asyncio.wait_for(self._voice_offers.get(), self.RING_PAIRING_S)
        except TimeoutError:
            return None
        while not self._voice_offers.empty():  # older offers ran out meanwhile
            offer = self._voice_offers.get_nowait()
        return offer

    async def _answer_phone(self, accept_delay: Delay,
                            service_s: Callable[[str], Awaitable[float]],
                            wrapup_delay: Delay, topic: str) -> None:  # fmt: skip
        while True:
            leg = await self.rings.get()
            offer = await self._offer_ringing()
            call = PhoneCall(leg.sid, self.net.line.number)
            done = Handled(offer.task if offer else "", offer.at if offer else time.time())
            self.handled.append(done)
            await asyncio.sleep(accept_delay())
            await self.net.phone.play(None, call, leg.url)  # the whisper
            if call.gather is not None and not call.ended:
                await self.net.phone.play(None, call, call.gather["action"], Digits="1")
            if not call.in_conference:  # the caller left, or it went elsewhere
                done.error = "not_connected"
                await self._hang_up(call, leg)
                continue
            done.accepted, done.accepted_at = True, time.time()
            self.calls_by_phone += 1
            self._legs[done.task] = (call, leg)
            self._take(done, service_s, wrapup_delay, topic)

    async def _end_call(self, done: Handled) -> None:
        if done.task in self._legs:
            await self._hang_up(*self._legs.pop(done.task))

    async def _hang_up(self, call: PhoneCall, leg: FakeCall) -> None:
        """The volunteer puts the phone down: Twilio posts the leg's final status."""
        if leg.status_callback:
            await self.net.phone.post(None, call, leg.status_callback, CallStatus="completed")


class Dashboard:
    """A coordinator's live dashboard socket; ``updates`` holds (arrival, server now_ms)."""

    def __init__(self, http: httpx.AsyncClient, ws: Any) -> None:
        self.http, self.ws = http, ws
        self.latest: dict[str, Any] = {}
        self.updates: list[tuple[float, int]] = []
        self.changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, base_url: str, email: str, password: str) -> Dashboard:
        http, ws = await _logged_in_socket(base_url, email, password, "/coordination/ws")
        board = cls(http, ws)
        board._reader = asyncio.get_running_loop().create_task(board._read())
        return board

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                at = time.time()
                state = receive(self.latest or None, json.loads(raw))
                self.latest = state
                self.updates.append((at, int(state.get("now_ms", 0))))
                self.changed.set()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        await self.http.aclose()
