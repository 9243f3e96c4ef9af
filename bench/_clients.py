"""Lean clients for the end-to-end benchmarks: Twilio's webhooks, consoles, dashboards.

web/simulation/clients.py drives one call or console the way a person would (logs in
through the form, parses every dashboard update); these do the same protocol with
what a load generator on two shared CPUs can afford: aiohttp for the webhooks, session
cookies signed beforehand (bench/_server.py), dashboards scanned with a regular
expression instead of decoding half a megabyte of JSON per update. Every timestamp is
``_server.clock()`` in this one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import websockets
from _server import ACCOUNT_SID, AUTH_TOKEN, clock
from twilio.request_validator import RequestValidator

# Keys a caller presses at each menu (the département is filled in per call).
CONFIRM = "1"


@dataclass
class Webhook:
    """One signed webhook: which step, when it left, how long it took, its status."""

    step: str
    sent: float
    took: float
    status: int


@dataclass
class CallRecord:
    """One caller's path through the IVR into the queue."""

    sid: str
    departement: str
    hooks: list[Webhook] = field(default_factory=list)
    enqueue_sent: float | None = None  # the webhook whose answer is <Enqueue>
    enqueue_done: float | None = None
    queued: bool = False
    failure: str = ""


class TwilioCaller:
    """Plays Twilio's side of incoming calls: signed webhooks, following the TwiML.

    ``ivr="full"`` follows every <Redirect> and <Gather> like Twilio (7 webhooks to the
    queue, then the wait URL Twilio fetches at once: 8); ``ivr="short"`` posts only the
    three that change state (incoming, topic answer, département confirmed).
    """

    def __init__(
        self, base_url: str, public_base_url: str, *, ivr: str = "full", fake: Any = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # Twilio's REST side (callers.fake_twilio.FakeTwilio) when the bench serves it: the
        # calls are made known to it, so the app's queue-member updates find them.
        self.fake = fake
        self.public = public_base_url.rstrip("/")
        self.validator = RequestValidator(AUTH_TOKEN)
        self.ivr = ivr
        self.http: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=512, limit_per_host=512)
        self.http = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=60)
        )

    async def close(self) -> None:
        if self.http is not None:
            await self.http.close()

    async def post(self, call: CallRecord, url: str, params: dict[str, str]) -> str:
        """POST a webhook signed on its public URL; returns the TwiML text."""
        assert self.http is not None
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        public_url = self.public + path
        headers = {"X-Twilio-Signature": self.validator.compute_signature(public_url, params)}
        sent = clock()
        async with self.http.post(self.base_url + path, data=params, headers=headers) as reply:
            text = await reply.text()
            status = reply.status
        done = clock()
        step = parts.path.rsplit("/twilio/voice/", 1)[-1]
        call.hooks.append(Webhook(step, sent, done - sent, status))
        if status != 200:
            raise RuntimeError(f"{step}: HTTP {status}")
        if "<Enqueue" in text and call.enqueue_sent is None:
            call.enqueue_sent, call.enqueue_done, call.queued = sent, done, True
        return text

    def params(self, call: CallRecord, **extra: str) -> dict[str, str]:
        return {
            "CallSid": call.sid,
            "AccountSid": ACCOUNT_SID,
            "From": "+33600" + str(int(call.sid[-6:], 16) % 1000000).zfill(6),
            "To": "+33800000000",
            "CallStatus": "in-progress",
            "Direction": "inbound",
            "ApiVersion": "2010-04-01",
            **extra,
        }

    async def call(self, departement: str, topic: str) -> CallRecord:
        """One call from the given département about a topic (keypad digit) into the queue."""
        if self.fake is not None:
            sid = self.fake.incoming_call(f"+336{secrets.randbelow(10**8):08d}", "+33800000000")
        else:
            sid = "CA" + secrets.token_hex(16)
        call = CallRecord(sid, departement)
        try:
            if self.ivr == "short":
                await self._short(call, topic)
            else:
                await self._full(call, topic)
        except Exception as exc:  # counted, never fatal: the load goes on
            call.failure = f"{type(exc).__name__}: {exc}"[:200]
        return call

    async def _short(self, call: CallRecord, topic: str) -> None:
        v = self.public + "/twilio/voice/"
        await self.post(call, v + "incoming", self.params(call, CallStatus="ringing"))
        await self.post(call, v + "topic/answer?try=1", self.params(call, Digits=topic))
        await self.post(
            call,
            v + f"dept/confirm/answer?code={call.departement}&try=1",
            self.params(call, Digits=CONFIRM),
        )
        if not call.queued:
            raise RuntimeError("not queued")

    async def _full(self, call: CallRecord, topic: str) -> None:
        dep = call.departement
        keys = {
            "topic/answer": topic,
            "dept/answer": "20" if dep in ("2A", "2B") else dep,
            "dept/corse/answer": "1" if dep == "2A" else "2",
            "dept/confirm/answer": CONFIRM,
            "known/answer": CONFIRM,
        }
        twiml = await self.post(
            call, self.public + "/twilio/voice/incoming", self.params(call, CallStatus="ringing")
        )
        for _ in range(12):
            root = ET.fromstring(twiml)
            enqueue = root.find("Enqueue")
            if enqueue is not None:
                # Twilio fetches the wait URL as soon as the call is in the queue.
                queue = enqueue.text or "permanence"
                qsid = self.fake.enter_queue(call.sid, queue) if self.fake else "QU" + "0" * 32
                await self.post(
                    call,
                    enqueue.attrib["waitUrl"],
                    self.params(call, QueueSid=qsid, QueuePosition="1"),
                )
                return
            gather = root.find("Gather")
            redirect = root.find("Redirect")
            if gather is not None:
                step = urlsplit(gather.attrib["action"]).path.rsplit("/twilio/voice/", 1)[-1]
                if step not in keys:
                    raise RuntimeError(f"unexpected menu {step}")
                twiml = await self.post(
                    call, gather.attrib["action"], self.params(call, Digits=keys[step])
                )
            elif redirect is not None and redirect.text:
                twiml = await self.post(call, redirect.text.strip(), self.params(call))
            else:
                raise RuntimeError(f"call ended before the queue: {[e.tag for e in root]}")
        raise RuntimeError("too many steps")


# Consoles ----------------------------------------------------------------------------------


@dataclass
class OfferSeen:
    """An offer as it reached a console, and what the volunteer was doing before."""

    volunteer: str
    task: str
    at: float
    free_since: float  # when this volunteer last became free (wrap-up or presence sent)
    repeat: bool  # this task was offered before (to anyone, as far as this client saw)


class ConsoleClient:
    """A volunteer's console (protocol v1): accepts at once, talks, completes, wraps up."""

    def __init__(
        self, ws_base: str, origin: str, volunteer: str, cookie: str, stats: ConsoleStats
    ) -> None:
        self.url = ws_base.rstrip("/") + "/benevole/console/ws?v=1"
        self.origin, self.volunteer, self.cookie = origin, volunteer, cookie
        self.stats = stats
        self.ws: Any = None
        self.free_since = 0.0
        self.handle_s = 0.0
        self.wrapup_s = 0.0
        self._ref = 0
        self._results: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._pings: deque[tuple[float, bool]] = deque()
        self._offers: asyncio.Queue[tuple[dict[str, Any], float]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[Any]] = []
        self.on_push: Callable[[dict[str, Any], float], None] | None = None

    async def connect(self) -> dict[str, Any]:
        self.ws = await websockets.connect(
            self.url,
            origin=self.origin,
            additional_headers={"Cookie": self.cookie},
            max_queue=None,
            open_timeout=60,
            ping_interval=None,  # the protocol's own heartbeat is what we time
        )
        welcome = json.loads(await asyncio.wait_for(self.ws.recv(), 60))
        if welcome.get("type") != "welcome":
            raise RuntimeError(f"no welcome: {welcome}")
        self._tasks.append(asyncio.create_task(self._read()))
        return welcome

    def start_work(self, handle_s: float, wrapup_s: float, ping_s: float, ping_offset: float):
        self.handle_s, self.wrapup_s = handle_s, wrapup_s
        self._tasks.append(asyncio.create_task(self._work()))
        if ping_s > 0:
            self._tasks.append(asyncio.create_task(self._heartbeat(ping_s, ping_offset)))

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                at = clock()
                msg = json.loads(raw)
                kind = msg.get("type")
                if kind == "offer":
                    self._offers.put_nowait((msg, at))
                elif kind == "pong":
                    if self._pings:
                        sent, busy = self._pings.popleft()
                        rtts = self.stats.ping_rtt_busy if busy else self.stats.ping_rtt
                        rtts.append((sent, at - sent))
                elif kind == "result":
                    future = self._results.pop(str(msg.get("ref")), None)
                    if future is not None and not future.done():
                        future.set_result(msg)
                elif kind == "offer_gone":
                    self.stats.offers_gone[msg.get("reason", "")] += 1
                if self.on_push is not None and kind != "pong":
                    self.on_push(msg, at)
        self.stats.closed += 1
        for future in self._results.values():
            if not future.done():
                future.set_exception(ConnectionError("console socket closed"))

    async def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        self._ref += 1
        ref = str(self._ref)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._results[ref] = future
        sent = clock()
        await self.ws.send(json.dumps({"type": kind, "ref": ref, **fields}))
        reply = await asyncio.wait_for(future, 60)
        self.stats.request_rtt[kind].append((sent, clock() - sent))
        if not reply.get("ok"):
            self.stats.refused[f"{kind}:{reply.get('error', {}).get('code', '?')}"] += 1
        return reply

    async def available(self) -> None:
        sent = clock()
        reply = await self.request("presence", state="available")
        if not reply.get("ok"):
            raise RuntimeError(f"{self.volunteer} cannot go available: {reply}")
        self.free_since = sent

    async def _heartbeat(self, every_s: float, offset_s: float) -> None:
        with contextlib.suppress(websockets.ConnectionClosed, asyncio.CancelledError):
            await asyncio.sleep(offset_s)
            while True:
                # One ping in flight at a time: pongs come back in order on one socket.
                if not self._pings:
                    # A ping sent while a request is unanswered queues behind it (the
                    # server reads one socket's frames in order): kept apart.
                    self._pings.append((clock(), bool(self._results)))
                    await self.ws.send('{"type":"ping"}')
                await asyncio.sleep(every_s)

    async def _work(self) -> None:
        seen = self.stats.tasks_offered
        while True:
            msg, at = await self._offers.get()
            task = str(msg.get("task", ""))
            self.stats.offers.append(
                OfferSeen(self.volunteer, task, at, self.free_since, task in seen)
            )
            seen.add(task)
            try:
                reply = await self.request("accept", task=task)
                if not reply.get("ok"):
                    continue
                await asyncio.sleep(self.handle_s)
                await self.request("complete", task=task)
                await asyncio.sleep(self.wrapup_s)
                sent = clock()
                reply = await self.request(
                    "wrapup", task=task, topic="autre", outcome="resolved", consent=False
                )
                if reply.get("ok"):
                    self.free_since = sent
                    self.stats.handled += 1
            except (ConnectionError, TimeoutError, websockets.ConnectionClosed) as exc:
                self.stats.refused[f"client:{type(exc).__name__}"] += 1

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)


@dataclass
class ConsoleStats:
    """What every console of the run saw, together."""

    offers: list[OfferSeen] = field(default_factory=list)
    tasks_offered: set[str] = field(default_factory=set)
    ping_rtt: list[tuple[float, float]] = field(default_factory=list)  # (sent, rtt), idle socket
    ping_rtt_busy: list[tuple[float, float]] = field(default_factory=list)  # a request pending
    # (sent, rtt) of each answered request, by kind: what a volunteer waits after a click
    request_rtt: defaultdict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    offers_gone: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    handled: int = 0
    closed: int = 0


async def connect_all(
    clients: list[ConsoleClient], concurrency: int = 32
) -> tuple[list[ConsoleClient], list[str]]:
    """Connect and make available every console, a few at a time; returns (ok, errors)."""
    sem = asyncio.Semaphore(concurrency)
    errors: list[str] = []

    async def one(c: ConsoleClient) -> ConsoleClient | None:
        async with sem:
            try:
                await c.connect()
                await c.available()
                return c
            except Exception as exc:
                errors.append(f"{c.volunteer}: {type(exc).__name__}: {exc}"[:200])
                await c.close()
                return None

    done = await asyncio.gather(*(one(c) for c in clients))
    return [c for c in done if c is not None], errors


# Dashboards --------------------------------------------------------------------------------

PROBE = re.compile(r"sonde (\d+)")
VERSION = re.compile(r'"version":(\d+)')


class DashboardClient:
    """A coordinator's dashboard socket; records, per update, the newest probe it shows."""

    def __init__(self, ws_base: str, origin: str, cookie: str) -> None:
        self.url = ws_base.rstrip("/") + "/coordination/ws"
        self.origin, self.cookie = origin, cookie
        self.ws: Any = None
        self.updates: list[tuple[float, int, int]] = []  # (arrival, probe seq or -1, bytes)
        self._task: asyncio.Task[None] | None = None
        self.closed = False

    async def connect(self) -> None:
        self.ws = await websockets.connect(
            self.url,
            origin=self.origin,
            additional_headers={"Cookie": self.cookie},
            max_size=None,
            max_queue=None,
            open_timeout=60,
            ping_interval=None,
        )
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                at = clock()
                found = PROBE.search(raw)
                self.updates.append((at, int(found.group(1)) if found else -1, len(raw)))
        self.closed = True

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 5)
