"""One OS process of the concurrency race: drives a shared line with random operations.

Run as a script (``python _race_worker.py '<json>'``) by tests/routing/test_concurrency.py.
Two roles:

- ``worker``: a seeded random interleaving of every engine operation on shared
  volunteers and tasks, on the wall clock, so timers fire during the race; prints
  a JSON report (tasks created, operations run, refusals, unexpected errors).
- ``sampler``: checks the invariants on atomic snapshots while the workers run,
  until the test sets the stop key; prints the problems it saw.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
import traceback
from collections import Counter
from typing import Any

from redis.asyncio import Redis

from routing.clock import Clock
from routing.engine import Engine
from routing.errors import RoutingError
from routing.invariants import check_snapshot
from routing.models import Channel, Presence, TaskSpec, VolunteerProfile
from routing.territory import MASSIF_ALPIN, Territories, load_territories

# Volunteer id -> (départements they may log in from, skills, languages, chat capacity).
# Several share a département, some move between two (a profile refresh changes rings).
VOLUNTEERS: dict[str, tuple[tuple[str, ...], frozenset[str], frozenset[str], int]] = {
    "v01": (("05",), frozenset({"impots"}), frozenset(), 2),
    "v02": (("05", "04"), frozenset(), frozenset({"ar"}), 3),
    "v03": (("04",), frozenset({"famille", "impots"}), frozenset(), 1),
    "v04": (("38",), frozenset(), frozenset(), 2),
    "v05": (("13",), frozenset({"sante"}), frozenset({"ar"}), 2),
    "v06": (("75",), frozenset({"impots", "famille"}), frozenset(), 3),
    "v07": (("75", "69"), frozenset(), frozenset(), 2),
    "v08": (("69",), frozenset({"famille"}), frozenset(), 1),
    "v09": (("2A",), frozenset(), frozenset(), 2),
    "v10": (("974",), frozenset({"impots"}), frozenset(), 2),
    "v11": (("05",), frozenset({"famille"}), frozenset(), 2),
    "v12": (("06", "13"), frozenset(), frozenset(), 3),
}
CHAT_CAPACITY = {vid: spec[3] for vid, spec in VOLUNTEERS.items()}
VOLUNTEER_IDS = sorted(VOLUNTEERS)
# Their consoles ring unanswered (gone for a coffee): misses pile up to the automatic pause.
# Nobody pauses, logs out or logs them in by hand (coming back resets the misses in a row),
# so the automatic pause does not depend on how fast the machine runs the race.
SILENT = ("v09", "v12")
TALKATIVE = tuple(vid for vid in sorted(VOLUNTEERS) if vid not in SILENT)
# Where callers come from: the Massif alpin, its régions, Paris, Corsica, overseas.
TASK_DEPARTEMENTS = ("05", "05", "04", "38", "13", "06", "73", "69", "75", "75", "2A", "974", "01")
SKILLS = ("impots", "famille", "sante", "emploi")
CALLER_KEYS = tuple(f"ck{i:02d}" for i in range(16))

# (operation, weight): heavier where real traffic is (offers answered, conversations ending).
OPERATIONS = (
    ("log_in", 2),
    ("available", 8),
    ("pause", 2),
    ("log_out", 1),
    ("enqueue", 9),
    ("accept", 14),
    ("decline", 3),
    ("cancel", 6),
    ("complete", 8),
    ("finish_wrapup", 5),
    ("transfer", 3),
    ("give_back", 2),
    ("to_callback", 2),
    ("close", 1),
    ("set_priority", 1),
    ("tick", 10),
)

SAMPLER_LAG_TOLERATED = ("should have widened to", "idles while task")


def territories() -> Territories:
    return load_territories().with_groups([MASSIF_ALPIN])


def profile(vid: str, departement: str) -> VolunteerProfile:
    _, skills, languages, capacity = VOLUNTEERS[vid]
    return VolunteerProfile(vid, departement, skills, languages, capacity, name=vid)


class Racer:
    """One process's random walk over the engine's operations."""

    def __init__(self, engine: Engine, rng: random.Random, index: int) -> None:
        self.engine = engine
        self.redis = engine.redis
        self.rng = rng
        self.index = index
        self.created: list[str] = []
        self.serial = 0

    def _new_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.index}-{self.serial}"

    async def _some_tasks(self, states: set[str], n: int = 6) -> list[tuple[str, dict[str, str]]]:
        """A few random live tasks (possibly stale by the time we act: that is the point)."""
        ids = await self.redis.srandmember(self.engine.keys.live, n) or []
        async with self.redis.pipeline(transaction=False) as pipe:
            for tid in ids:
                pipe.hgetall(self.engine.keys.task(tid))
            hashes = await pipe.execute()
        return [(tid, h) for tid, h in zip(ids, hashes, strict=True) if h.get("state") in states]

    async def _an_offer(self) -> tuple[str, str] | None:
        """(volunteer, task) of an offer ringing now, if any (stale by the time we answer)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for vid in VOLUNTEER_IDS:
                pipe.hget(self.engine.keys.vol(vid), "reserved")
            offers = await pipe.execute()
        ringing = [
            (vid, tid)
            for vid, tid in zip(VOLUNTEER_IDS, offers, strict=True)
            if tid and vid not in SILENT
        ]
        return self.rng.choice(ringing) if ringing else None

    async def log_in(self) -> None:
        vid = self.rng.choice(TALKATIVE)
        await self.engine.log_in(profile(vid, self.rng.choice(VOLUNTEERS[vid][0])))

    async def available(self) -> None:
        await self.engine.set_presence(self.rng.choice(VOLUNTEER_IDS), Presence.AVAILABLE)

    async def pause(self) -> None:
        reason = self.rng.choice(("pause café", "formation", ""))
        await self.engine.set_presence(self.rng.choice(TALKATIVE), Presence.PAUSED, reason)

    async def log_out(self) -> None:
        await self.engine.set_presence(self.rng.choice(TALKATIVE), Presence.LOGGED_OUT)

    async def enqueue(self) -> None:
        rng = self.rng
        channel = rng.choices((Channel.VOICE, Channel.CHAT, Channel.CALLBACK), weights=(5, 4, 1))[0]
        spec = TaskSpec(
            id=self._new_id("t"),
            channel=channel,
            departement=rng.choice(TASK_DEPARTEMENTS),
            skill=rng.choice(SKILLS) if rng.random() < 0.3 else "",
            language="ar" if rng.random() < 0.1 else "",
            priority=rng.choice((0, 0, 0, 0, 1, 5, 9)),
            caller_key=rng.choice(CALLER_KEYS) if rng.random() < 0.5 else "",
        )
        self.created.append(spec.id)
        try:
            await self.engine.enqueue(spec)
        except RoutingError:
            self.created.remove(spec.id)
            raise

    async def accept(self) -> None:
        if self.rng.random() < 0.1:  # a stale or foreign click
            tasks = await self._some_tasks({"reserved", "assigned"}, 2)
            if tasks:
                await self.engine.accept(self.rng.choice(TALKATIVE), tasks[0][0])
            return
        offer = await self._an_offer()
        if offer:
            await self.engine.accept(*offer)

    async def decline(self) -> None:
        offer = await self._an_offer()
        if offer:
            await self.engine.decline(*offer)

    async def cancel(self) -> None:
        tasks = await self._some_tasks({"waiting", "reserved", "assigned", "wrapup"}, 1)
        if tasks:
            await self.engine.cancel(tasks[0][0])

    async def complete(self) -> None:
        for tid, h in await self._some_tasks({"assigned"}):
            volunteer = "" if self.rng.random() < 0.2 else h["vol"]  # '' = the caller hung up
            await self.engine.complete(volunteer, tid)
            return

    async def finish_wrapup(self) -> None:
        for tid, h in await self._some_tasks({"wrapup"}):
            await self.engine.finish_wrapup(h["vol"], tid)
            return

    async def transfer(self) -> None:
        for tid, h in await self._some_tasks({"assigned"}):
            skill = self.rng.choice(SKILLS) if self.rng.random() < 0.4 else ""
            target = self.rng.choice(VOLUNTEER_IDS) if self.rng.random() < 0.3 else ""
            skill = skill or ("" if target else SKILLS[0])  # one of the two is required
            await self.engine.transfer(h["vol"], tid, skill=skill, to_volunteer=target)
            return

    async def give_back(self) -> None:
        """The volunteer's phone leg failed after the accept (the voice bridge)."""
        for tid, h in await self._some_tasks({"assigned"}):
            await self.engine.give_back(h["vol"], tid)
            return

    async def to_callback(self) -> None:
        for tid, h in await self._some_tasks({"waiting", "reserved"}):
            if h["channel"] == "chat":
                continue
            callback_id = self._new_id("cb")
            await self.engine.to_callback(tid, callback_id)
            self.created.append(callback_id)
            return

    async def close(self) -> None:
        for tid, _ in await self._some_tasks({"waiting", "reserved"}):
            await self.engine.close(tid, "line_closed")
            return

    async def set_priority(self) -> None:
        for tid, _ in await self._some_tasks({"waiting", "reserved"}):
            await self.engine.set_priority(tid, self.rng.randrange(10))
            return

    async def tick(self) -> None:
        await self.engine.tick()


async def run_worker(args: dict[str, Any]) -> dict[str, Any]:
    rng = random.Random(args["seed"])
    redis = Redis.from_url(args["redis_url"], decode_responses=True)
    engine = Engine(redis, line=args["line"], territories=territories(), clock=Clock())
    racer = Racer(engine, rng, args["index"])
    names = [name for name, _ in OPERATIONS]
    weights = [weight for _, weight in OPERATIONS]
    done: Counter[str] = Counter()
    refused: Counter[str] = Counter()
    unexpected: list[str] = []
    started = time.perf_counter()
    try:
        for _ in range(args["ops"]):
            name = rng.choices(names, weights)[0]
            try:
                await getattr(racer, name)()
                done[name] += 1
            except RoutingError as exc:  # a refusal, expected when racing: nothing changed
                refused[f"{name}:{exc.code}"] += 1
            except Exception:  # noqa: BLE001 - anything else is a failure to report
                unexpected.append(f"{name}: {traceback.format_exc(limit=3)}")
            if rng.random() < 0.25:
                await asyncio.sleep(rng.random() * 0.004)
    finally:
        await redis.aclose()
    return {
        "created": racer.created,
        "done": dict(done),
        "refused": dict(refused),
        "unexpected": unexpected,
        "seconds": round(time.perf_counter() - started, 2),
    }


async def run_sampler(args: dict[str, Any]) -> dict[str, Any]:
    """Invariants on atomic snapshots during the race; only timer lag is tolerated."""
    redis = Redis.from_url(args["redis_url"], decode_responses=True)
    engine = Engine(redis, line=args["line"], territories=territories(), clock=Clock())
    samples, lagging = 0, 0
    first_seen: dict[str, int] = {}  # each distinct problem, with the first sample showing it
    try:
        while not await redis.exists(stop_key(engine)):
            found = check_snapshot(await engine.snapshot())
            samples += 1
            for problem in found:
                if any(kind in problem for kind in SAMPLER_LAG_TOLERATED):
                    lagging += 1
                elif problem not in first_seen:
                    first_seen[problem] = samples
            await asyncio.sleep(0.01)
    finally:
        await redis.aclose()
    problems = [f"sample {n}: {problem}" for problem, n in first_seen.items()]
    return {"samples": samples, "lagging": lagging, "problems": problems}


def stop_key(engine: Engine) -> str:
    """Set by the test when the workers are done (under the line's prefix: cleaned up with it)."""
    return engine.keys.base + "race-stop"


def main() -> None:
    args = json.loads(sys.argv[1])
    run = run_sampler if args["role"] == "sampler" else run_worker
    print(json.dumps(asyncio.run(run(args))))


if __name__ == "__main__":
    main()
