"""Several OS processes race on one line of a real Redis; nothing is lost or doubled.

Four worker processes run seeded random interleavings of every engine operation
(log-in, presence, enqueue of calls/chats/callbacks from several départements with
skills and returning callers, accept, decline, cancel, complete, wrap-up, transfer,
callback, close, priority, tick) on shared volunteers and tasks, on the wall clock
with short routing times, so ring timeouts, widening, delays and wrap-up timeouts
fire in the middle of the race (two volunteers never answer, so misses pile up to the
automatic pause). A fifth process checks the invariants on atomic
snapshots during the race. Afterwards: the invariants hold in full, every task is
accounted for, and the event stream, replayed on its own, tells a coherent story
(no task held by two volunteers, no volunteer over capacity or with two offers)
that ends in the state Redis holds.

Set RACE_SEED to replay a failing seed's operation sequences (the OS still chooses
the interleaving), RACE_OPS to change the number of operations per worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis

from routing.clock import Clock
from routing.config import RoutingConfig
from routing.engine import Engine
from routing.events import read_range
from routing.invariants import check_accounted, check_snapshot
from routing.models import Presence
from tests.routing._race_events import compare_with_snapshot, replay
from tests.routing._race_worker import CHAT_CAPACITY, VOLUNTEER_IDS, VOLUNTEERS, profile, stop_key

WORKER = Path(__file__).with_name("_race_worker.py")
PROJECT = Path(__file__).resolve().parents[2]
WORKERS = 4
OPS_PER_WORKER = int(os.environ.get("RACE_OPS", "1500"))

# Short times so that every timer fires many times during a few seconds of racing.
RACE_CONFIG = RoutingConfig(
    widen_group_s=0.05,
    widen_region_s=0.1,
    widen_national_s=0.2,
    skill_relax_s=0.15,
    ring_s=0.05,
    max_no_answer=3,
    no_answer_delay_s=0.02,
    reject_delay_s=0.02,
    wrapup_s=0.05,
    resume_window_s=30,
    known_volunteer_s=0.03,
    transfer_wait_s=0.04,
    service_level_s=0.1,
    short_abandon_s=0.01,
    stream_maxlen=10_000_000,
)

# Each must happen during the race, or the race did not test what it claims to.
EXPECTED_EVENTS = (
    "task_created",
    "task_widened",
    "task_offered",
    "offer_declined",
    "offer_timeout",
    "task_assigned",
    "task_completed",
    "task_ended",
    "task_transferred",
    "volunteer_presence",
    "auto_pause",  # a volunteer paused "sans réponse" after missed offers
    "resumed",  # a returning caller got their old place back
)


async def _run(role: str, **args: Any) -> dict[str, Any]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")])),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(WORKER),
        json.dumps({"role": role, **args}),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise AssertionError(f"{role} process failed ({proc.returncode}):\n{err.decode()[-3000:]}")
    return json.loads(out.decode().strip().splitlines()[-1])


async def _drain(engine: Engine) -> None:
    """Run timers until none is due (new ones keep being scheduled in the future)."""
    for _ in range(10_000):
        ran = await engine.tick()
        next_due = await engine.next_timer_ms()
        if ran == 0 and (next_due is None or next_due > engine.clock.now_ms()):
            return
    raise AssertionError("timers never stopped falling due")


@pytest.mark.slow
async def test_processes_racing_on_one_line_keep_every_invariant(
    redis: Redis, redis_url: str, line: str, territories
) -> None:
    seed = int(os.environ.get("RACE_SEED") or random.randrange(1, 2**31))
    engine = Engine(redis, line=line, territories=territories, clock=Clock())
    await engine.configure(RACE_CONFIG)
    await engine.staffing()  # from here the transitions keep the counts the invariants check
    for vid in VOLUNTEER_IDS:
        await engine.log_in(profile(vid, VOLUNTEERS[vid][0][0]))
        await engine.set_presence(vid, Presence.AVAILABLE)
    common = {"redis_url": redis_url, "line": line}
    sampler = asyncio.create_task(_run("sampler", **common))
    try:
        try:
            reports = await asyncio.gather(
                *(
                    _run("worker", seed=seed * 100 + i, index=i, ops=OPS_PER_WORKER, **common)
                    for i in range(WORKERS)
                )
            )
        finally:
            await redis.set(stop_key(engine), "1")
            sampled = await sampler
        await _drain(engine)

        snap = await engine.snapshot()
        created = [tid for report in reports for tid in report["created"]]
        gone = [tid for tid in created if tid not in snap["tasks"]]
        async with redis.pipeline(transaction=False) as pipe:
            for tid in gone:
                pipe.hgetall(engine.keys.task(tid))
            ended = dict(zip(gone, await pipe.execute(), strict=True))
        events = await read_range(redis, engine.keys)
        story = replay(events, CHAT_CAPACITY)
        stream_tasks = {e.task for e in events if e.type.value == "task_created"}

        findings = {
            "workers' unexpected errors": [
                f"worker {i}: {u}" for i, r in enumerate(reports) for u in r["unexpected"]
            ],
            "invariants during the race": sampled["problems"],
            "invariants after the race": check_snapshot(snap),
            "accounting": check_accounted(created, snap, ended),
            "event stream": story.problems,
            "event stream vs Redis": compare_with_snapshot(story, snap),
        }
        if stream_tasks != set(created):
            findings["accounting"].append(
                f"tasks created per the stream but not per the workers: "
                f"{sorted(stream_tasks - set(created))[:10]}, and the reverse: "
                f"{sorted(set(created) - stream_tasks)[:10]}"
            )
        coverage = findings["coverage"] = []
        missing = [kind for kind in EXPECTED_EVENTS if not story.types[kind]]
        if missing:
            coverage.append(f"the race never produced {missing}: it tests less than it claims")
        if sampled["samples"] < 5:
            coverage.append(f"only {sampled['samples']} snapshots were checked during the race")

        done = sum(sum(r["done"].values()) + sum(r["refused"].values()) for r in reports)
        summary = (
            f"RACE_SEED={seed}: {WORKERS} processes, {done} operations in "
            f"{max(r['seconds'] for r in reports)} s, {len(created)} tasks "
            f"({len(snap['tasks'])} still live), "
            f"{len(events)} events {dict(story.types)}, {sampled['samples']} snapshots checked "
            f"during the race ({sampled['lagging']} timer-lag findings tolerated)"
        )
        print(summary)
        report = [
            f"{source} ({len(found)}):\n  " + "\n  ".join(found[:12])
            for source, found in findings.items()
            if found
        ]
        if report:
            pytest.fail(f"{summary}\n" + "\n".join(report))
    except AssertionError as exc:  # a process failed: say which seed to replay
        raise AssertionError(f"RACE_SEED={seed}: {exc}") from exc
    finally:
        keys = [key async for key in redis.scan_iter(match=engine.keys.pattern(), count=1000)]
        for i in range(0, len(keys), 500):
            await redis.delete(*keys[i : i + 500])
