"""Server CPU per phone call in the callers' voice path, in-process, in CPU time.

The real app (``web.app.create_app``: middleware, routers, lifespan with the callers'
bridge) on the embedded Redis and SQLite (or REDIS_URL / DATABASE_URL), driven straight
through ASGI with no HTTP client in between. Each call plays Twilio's side of the IVR
with signed webhooks, the way tests/callers do: incoming → topic → topic/answer → dept
→ dept/answer → dept/confirm → dept/confirm/answer → the <Enqueue> wait URL (8
webhooks), then hangs up (the status callback, counted apart). Every call comes from its
own number (a returning number would skip the menus). ``--volunteers`` volunteers are
logged in and paused, so every call waits in the queue.

CPU is ``time.process_time`` (this process only; the Redis server's own CPU is not in
it), taken around each request (the client's signing and TwiML parsing are outside).
The machine is shared and noisy: CPU time, not wall time, is the figure. Baseline in the
same run, same stack: GET /healthz (Redis and database pinged), per request.

The routing timer loop is off (``timers=False``): its cost is per second, not per call.
Logging goes to a file at ``--log-level`` (the server's default is info).

    .venv/bin/python bench/voice_cpu.py [--calls 200] [--volunteers 200] [--warmup 20]
        [--log-level info] [--profile out.prof]

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import os
import pstats
import sys
import tempfile
import time
import uuid
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server import ACCOUNT_SID, AUTH_TOKEN, machine, open_all_day  # noqa: E402

PUBLIC = "https://permanence.bench.invalid"
LINE_NUMBER = "+33800000000"
IVR_STEPS = 8


class RoundTrips:
    """Counts what this process sends to Redis (a pipeline is one send): a figure that,
    unlike CPU time, does not move with the machine's load."""

    sent = 0

    @classmethod
    def install(cls) -> None:
        from redis.asyncio.connection import AbstractConnection

        original = AbstractConnection.send_packed_command

        async def counted(self: Any, *args: Any, **kwargs: Any) -> None:
            cls.sent += 1
            await original(self, *args, **kwargs)

        AbstractConnection.send_packed_command = counted  # type: ignore[method-assign]


class Driver:
    """Calls the ASGI app directly and keeps the CPU time of each request by label."""

    def __init__(self, app: Any, profiler: cProfile.Profile | None) -> None:
        self.app = app
        self.cpu: dict[str, list[float]] = defaultdict(list)
        self.trips: dict[str, list[int]] = defaultdict(list)
        self.profiler = profiler

    async def request(
        self, label: str, method: str, url: str, body: bytes = b"",
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> tuple[int, bytes]:
        parts = urlsplit(url)
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": method, "scheme": parts.scheme or "https", "path": parts.path,
            "raw_path": parts.path.encode(), "query_string": parts.query.encode(),
            "root_path": "", "server": (parts.hostname or "testserver", 443),
            "client": ("127.0.0.1", 40000),
            "headers": [(b"host", (parts.hostname or "testserver").encode()),
                        (b"content-length", str(len(body)).encode()), *(headers or [])],
        }
        sent = False
        status, chunks = 0, []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()  # the app only listens for a disconnect
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        if self.profiler:
            self.profiler.enable()
        trips, start = RoundTrips.sent, time.process_time()
        await self.app(scope, receive, send)
        self.cpu[label].append(time.process_time() - start)
        self.trips[label].append(RoundTrips.sent - trips)
        if self.profiler:
            self.profiler.disable()
        return status, b"".join(chunks)


class Caller:
    """Twilio's side of one call: signs each webhook and follows the TwiML."""

    def __init__(self, driver: Driver, sid: str, from_: str) -> None:
        from twilio.request_validator import RequestValidator

        self.driver, self.sid, self.from_ = driver, sid, from_
        self.validator = RequestValidator(AUTH_TOKEN)

    async def post(self, url: str, **extra: str) -> ET.Element:
        params = {
            "CallSid": self.sid, "AccountSid": ACCOUNT_SID, "From": self.from_,
            "To": LINE_NUMBER, "CallStatus": "in-progress", "Direction": "inbound",
            "ApiVersion": "2010-04-01", **extra,
        }
        signature = self.validator.compute_signature(url, params)
        label = urlsplit(url).path.removeprefix("/twilio/voice/")
        status, body = await self.driver.request(
            label, "POST", url, urlencode(params).encode(),
            [(b"content-type", b"application/x-www-form-urlencoded"),
             (b"x-twilio-signature", signature.encode())],
        )
        if status != 200:
            raise RuntimeError(f"{url}: HTTP {status} {body[:200]!r}")
        return ET.fromstring(body)

    async def play(self, topic: str, departement: str) -> None:
        """The whole IVR to the wait URL, then the hang-up."""
        twiml = await self.post(PUBLIC + "/twilio/voice/incoming", CallStatus="ringing")
        twiml = await self.post(_redirect(twiml))  # topic
        twiml = await self.post(_gather(twiml), Digits=topic)  # topic/answer
        twiml = await self.post(_redirect(twiml))  # dept
        twiml = await self.post(_gather(twiml), Digits=departement)  # dept/answer
        twiml = await self.post(_redirect(twiml))  # dept/confirm
        twiml = await self.post(_gather(twiml), Digits="1")  # dept/confirm/answer
        enqueue = twiml.find("Enqueue")
        if enqueue is None:
            raise RuntimeError(f"call {self.sid} not queued: {ET.tostring(twiml)!r}")
        await self.post(enqueue.attrib["waitUrl"], QueueSid="QU" + "0" * 32,
                        QueuePosition="1", QueueTime="0", AvgQueueTime="0",
                        CurrentQueueSize="1")
        await self.post(PUBLIC + "/twilio/voice/status", CallStatus="completed")


def _redirect(twiml: ET.Element) -> str:
    found = twiml.find("Redirect")
    if found is None or not found.text:
        raise RuntimeError(f"no Redirect in {ET.tostring(twiml)!r}")
    return found.text.strip()


def _gather(twiml: ET.Element) -> str:
    found = twiml.find("Gather")
    if found is None:
        raise RuntimeError(f"no Gather in {ET.tostring(twiml)!r}")
    return found.attrib["action"]


def _settings(folder: Path, log_level: str) -> Any:
    from web.settings import Settings

    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=folder,
        redis_url=os.environ.get("REDIS_URL", ""),
        database_url=os.environ.get("DATABASE_URL", ""),
        secret_key="bench-secret-key-" + uuid.uuid4().hex,
        public_base_url=PUBLIC,
        line="vcpu" + uuid.uuid4().hex[:10],
        log_level=log_level,
        twilio_fake=True,
        twilio_auth_token=AUTH_TOKEN,
        twilio_account_sid=ACCOUNT_SID,
        twilio_number=LINE_NUMBER,
    )


def _log_to(path: Path, level: str) -> None:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


async def _prepare(app: Any, volunteers: int) -> list[str]:
    """The line open all day, every day; volunteers logged in and paused."""
    from routing.models import Presence, VolunteerProfile

    runtime = app.state.runtime
    await open_all_day(runtime.redis, runtime.settings.line)
    # What a keypad can dial in two digits (Corsica's 2A/2B go through '20' and a menu).
    known = runtime.engine.territories.departements
    departements = sorted(d for d in known if d.isdigit() and len(d) == 2)
    for i in range(volunteers):
        vid = f"vb{i:05d}"
        await runtime.engine.log_in(
            VolunteerProfile(vid, departements[i % len(departements)], name=f"B{i}")
        )
        await runtime.engine.set_presence(vid, Presence.PAUSED)
    return departements


def _redis_process(app: Any) -> Any:
    """The embedded redis-server the app started (None with REDIS_URL): its CPU counts too."""
    import psutil

    embedded = app.state.runtime.redis_target.embedded
    return psutil.Process(int(embedded.pidfile.read_text())) if embedded is not None else None


async def _play_calls(driver: Driver, departements: list[str], first: int, n: int) -> None:
    """Calls number first..first+n-1 (each from its own number), each with a /healthz."""
    for i in range(first, first + n):
        await Caller(driver, f"CA{i:032d}", f"+3361{i:07d}").play(
            str(1 + i % 4), departements[i % len(departements)])
        await driver.request("healthz", "GET", PUBLIC + "/healthz")


def _cpu_s(proc: Any) -> float:
    if proc is None:
        return 0.0
    t = proc.cpu_times()
    return t.user + t.system


def _ms(values: list[float]) -> float:
    return round(1000 * sum(values) / len(values), 3) if values else 0.0


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from web.app import create_app
    from web.migrate import upgrade

    RoundTrips.install()
    with tempfile.TemporaryDirectory(prefix="perm-voice-cpu-") as folder:
        settings = _settings(Path(folder), args.log_level)
        upgrade(settings)
        _log_to(Path(folder) / "server.log", args.log_level)
        app = create_app(settings, timers=False)
        profiler = cProfile.Profile() if args.profile else None
        async with app.router.lifespan_context(app):
            departements = await _prepare(app, args.volunteers)
            redis_proc = _redis_process(app)
            warm = Driver(app, None)
            driver = Driver(app, profiler)
            await _play_calls(warm, departements, 0, args.warmup)
            wall, redis_cpu = time.perf_counter(), _cpu_s(redis_proc)
            await _play_calls(driver, departements, args.warmup, args.calls)
            wall, redis_cpu = time.perf_counter() - wall, _cpu_s(redis_proc) - redis_cpu
            log_lines = sum(1 for _ in (Path(folder) / "server.log").open(errors="replace"))
    if profiler:
        profiler.dump_stats(args.profile)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
    steps = {k: v for k, v in driver.cpu.items() if k not in ("healthz", "status")}
    ivr_total = sum(sum(v) for v in steps.values())
    per_call = 1000 * ivr_total / args.calls
    healthz = _ms(driver.cpu["healthz"])
    return {
        "calls": args.calls,
        "volunteers": args.volunteers,
        "log_level": args.log_level,
        "cpu_ms_per_call": round(per_call, 3),
        "cpu_ms_per_webhook": round(per_call / IVR_STEPS, 3),
        "cpu_ms_status_callback": _ms(driver.cpu["status"]),
        "baseline_healthz_cpu_ms": healthz,
        # Everything the embedded redis-server did meanwhile (calls, hang-ups and healthz).
        "redis_cpu_ms_per_call": (round(1000 * redis_cpu / args.calls, 3)
                                  if redis_proc is not None else None),
        "per_call_in_healthz": round(per_call / healthz, 2) if healthz else None,
        "per_step_cpu_ms": {k: _ms(v) for k, v in steps.items()},
        # Sent while the request ran: the bridge's and recorder's own reads included.
        "redis_round_trips_per_call": round(
            sum(sum(driver.trips[k]) for k in steps) / args.calls, 2),
        "per_step_redis_round_trips": {
            k: round(sum(v) / len(v), 2) for k, v in driver.trips.items() if k in steps},
        "wall_s": round(wall, 2),
        "server_log_lines": log_lines,
        "machine": machine(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--volunteers", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    parser.add_argument("--profile", default="", help="write cProfile stats of the measured calls")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(f"{result['calls']} calls, {result['volunteers']} volunteers paused, "
          f"log level {result['log_level']}, {result['machine']}")
    print(f"CPU per call (8 IVR webhooks): {result['cpu_ms_per_call']:.2f} ms; "
          f"per webhook {result['cpu_ms_per_webhook']:.2f} ms; hang-up "
          f"{result['cpu_ms_status_callback']:.2f} ms")
    print(f"embedded redis-server CPU per call (with hang-up and healthz): "
          f"{result['redis_cpu_ms_per_call']} ms")
    print(f"baseline GET /healthz: {result['baseline_healthz_cpu_ms']:.3f} ms "
          f"(a call = {result['per_call_in_healthz']} healthz)")
    print(f"Redis round trips per call: {result['redis_round_trips_per_call']}")
    trips = result["per_step_redis_round_trips"]
    for step, ms in sorted(result["per_step_cpu_ms"].items(), key=lambda kv: -kv[1]):
        print(f"  {step:<22} {ms:7.3f} ms  {trips[step]:5.2f} Redis round trips")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
