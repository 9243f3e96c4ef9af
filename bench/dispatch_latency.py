"""Dispatch latency: from the event that makes a match possible to the offer on the socket.

The real server (``permanence serve`` with several worker processes), N volunteer
consoles on the console websocket, and Twilio's signed webhooks bringing R new calls
per second for D seconds. Volunteers accept at once, talk ``--handle-s``, complete,
wrap up after ``--wrapup-s`` and are free again.

For every offer a console receives, the moment the match became possible is the later
of (a) when the webhook that put the call in the queue left this client and (b) when
the volunteer who got it last became free (their wrap-up, or going available, left
this client); dispatch latency = arrival of the offer on the socket − that moment, all
on one clock in this one process. Offers are split by which came last: "arrival" (a
volunteer was idle when the call came) and "freed" (the call waited for a wrap-up).
Territorial widening is set to 0/0/0 so no widening timer ever is that event.

Baselines, same run, same server: the console heartbeat (``ping`` → ``pong``) round
trip on the same sockets, sampled on every console during the load, and GET /healthz
(Redis and database pinged) from this client. Also: webhooks/s served and their
latency, RSS and CPU of every server process, and how far this client fell behind.

    .venv/bin/python bench/dispatch_latency.py [--consoles 2000] [--rate 200] [--duration 30]
        [--workers 4] [--ivr full|short] [--handle-s 1] [--wrapup-s 0.5]

REDIS_URL / DATABASE_URL are used when set (a fresh line; its keys are deleted after),
else the embedded Redis and SQLite in a temporary DATA_DIR. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _clients import (  # noqa: E402
    CallRecord,
    ConsoleClient,
    ConsoleStats,
    TwilioCaller,
    connect_all,
)
from _server import (  # noqa: E402
    ACCOUNT_SID,
    AUTH_TOKEN,
    Pacer,
    RssSampler,
    Seeded,
    Server,
    clock,
    cpu_times,
    fmt_summary,
    install_uvloop,
    machine,
    running_server,
    seed_accounts,
    summary,
)

P99_GOAL_MS = 50.0
RSS_GOAL_MB = 150.0
TOPICS = ("1", "2", "3", "4")


@dataclass
class Load:
    """What happened during the arrivals window."""

    start: float
    end: float
    calls: list[CallRecord] = field(default_factory=list)
    health_rtt: list[tuple[float, float]] = field(default_factory=list)
    health_errors: int = 0
    pacer_lag_s: list[float] = field(default_factory=list)
    not_finished: int = 0
    client_cpu_s: float = 0.0
    server_cpu_s: dict[str, float] = field(default_factory=dict)
    backlog_after_s: float = 0.0
    unoffered: int = 0


async def start_consoles(
    server: Server, seeded: Seeded, args: argparse.Namespace, stats: ConsoleStats
) -> list[ConsoleClient]:
    """Connect every volunteer's console and make them available; then start them working."""
    clients = [
        ConsoleClient(server.ws_url, server.base_url, vid, cookie, stats)
        for vid, _dep, cookie in seeded.volunteers
    ]
    t0 = clock()
    ok, errors = await connect_all(clients)
    print(
        f"{len(ok):,} consoles connected and available in {clock() - t0:.1f} s"
        + (f"; {len(errors)} failed, e.g. {errors[0]}" if errors else "")
    )
    rng = random.Random(args.seed)
    for c in ok:
        c.start_work(args.handle_s, args.wrapup_s, args.ping_s, rng.uniform(0, args.ping_s))
    return ok


async def idle_cpu(server: Server, seconds: float) -> dict[str, float]:
    """Share of one core each server process uses with everyone connected and no calls."""
    cpu0, t0 = cpu_times(server), clock()
    await asyncio.sleep(seconds)
    cpu1, t1 = cpu_times(server), clock()
    return {k: (cpu1[k] - cpu0.get(k, 0.0)) / (t1 - t0) for k in cpu1}


async def health_sampler(server: Server, load: Load, stop: asyncio.Event, every_s: float) -> None:
    """GET /healthz one at a time while the load runs: the trivial-request baseline."""
    import aiohttp

    async with aiohttp.ClientSession() as http:
        while not stop.is_set():
            sent = clock()
            try:
                async with http.get(server.base_url + "/healthz") as reply:
                    await reply.read()
                    if reply.status == 200:
                        load.health_rtt.append((sent, clock() - sent))
                    else:
                        load.health_errors += 1
            except Exception:
                load.health_errors += 1
            await asyncio.sleep(every_s)


@contextlib.asynccontextmanager
async def twilio_side(args: argparse.Namespace) -> AsyncIterator[tuple[dict[str, str], Any]]:
    """Where the app's Twilio REST calls go: (server environment, the fake's state or None).

    "network": web/simulation/clients.py's TwilioNetwork serves Twilio's REST API from
    this process over HTTP, as Twilio would from outside; "inprocess": the app's own
    fake (TWILIO_FAKE), answered inside each worker, whose log of requests then grows in
    the workers' memory.
    """
    if args.twilio == "inprocess":
        yield {"TWILIO_FAKE": "true"}, None
        return
    from web.simulation.clients import Line, TwilioNetwork

    net = TwilioNetwork(Line("http://127.0.0.1", account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN))
    await net.start()
    try:
        yield {"TWILIO_FAKE": "false", "TWILIO_API_BASE": net.rest_url}, net.fake
    finally:
        await net.stop()


async def run_load(
    server: Server,
    seeded: Seeded,
    args: argparse.Namespace,
    stats: ConsoleStats,
    fake: Any = None,
) -> Load:
    """Calls at --rate for --duration seconds, then wait for the queue to empty."""
    rng = random.Random(args.seed + 1)
    departements = sorted({dep for _v, dep, _c in seeded.volunteers})
    caller = TwilioCaller(server.base_url, server.base_url, ivr=args.ivr, fake=fake)
    await caller.start()
    pacer = Pacer(args.rate, args.duration)
    load = Load(start=clock(), end=0.0)
    stop = asyncio.Event()
    sampler = asyncio.create_task(health_sampler(server, load, stop, args.health_every_s))
    cpu0, proc0 = cpu_times(server), time.process_time()

    async def one(_i: int) -> None:
        call = await caller.call(rng.choice(departements), rng.choice(TOPICS))
        load.calls.append(call)

    try:
        load.start = clock()
        n = await pacer.run(one)
        load.end = clock()
        cpu1, proc1 = cpu_times(server), time.process_time()
        load.client_cpu_s = proc1 - proc0
        load.server_cpu_s = {k: cpu1[k] - cpu0.get(k, 0.0) for k in cpu1}
        stop.set()
        load.not_finished = await pacer.drain(60)
        load.pacer_lag_s = pacer.lags_s
        # Let every queued call be offered and handled before the clients stop.
        queued = [c for c in load.calls if c.queued]
        deadline = clock() + args.drain_s
        while clock() < deadline and stats.handled < len(queued):  # noqa: ASYNC110 - a count
            await asyncio.sleep(0.2)
        load.backlog_after_s = clock() - load.end
        print(
            f"{n:,} calls started in {load.end - load.start:.1f} s; "
            f"{len(queued):,} queued; {stats.handled:,} handled by volunteers "
            f"{load.backlog_after_s:.1f} s after the last arrival"
        )
    finally:
        stop.set()
        await sampler
        await caller.close()
    return load


async def task_calls(server: Server, calls: list[CallRecord]) -> dict[str, CallRecord]:
    """task id → call, read after the run from the callers' per-call state in Redis."""
    from callers.keys import CallerKeys
    from web.runtime import open_runtime

    keys = CallerKeys(server.line)
    found: dict[str, CallRecord] = {}
    queued = [c for c in calls if c.queued]
    async with open_runtime(server.settings()) as runtime:
        for i in range(0, len(queued), 500):
            batch = queued[i : i + 500]
            async with runtime.redis.pipeline(transaction=False) as pipe:
                for c in batch:
                    pipe.hget(keys.call(c.sid), "task")
                tasks = await pipe.execute()
            for c, task in zip(batch, tasks, strict=True):
                if task:
                    found[task] = c
    return found


def dispatch_figures(
    stats: ConsoleStats, by_task: dict[str, CallRecord], load: Load, warmup_s: float
) -> dict[str, Any]:
    """Latency of every first offer whose match became possible after the warm-up."""
    since = load.start + warmup_s
    lat: dict[str, list[float]] = {"arrival": [], "freed": []}
    skipped = Counter()
    for offer in stats.offers:
        call = by_task.get(offer.task)
        if call is None or call.enqueue_sent is None:
            skipped["task not from this run's calls"] += 1
            continue
        if offer.repeat:
            skipped["offered again (declined or timed out first)"] += 1
            continue
        possible = max(call.enqueue_sent, offer.free_since)
        if possible < since:
            skipped["warm-up"] += 1
            continue
        kind = "arrival" if call.enqueue_sent >= offer.free_since else "freed"
        lat[kind].append(offer.at - possible)
    every = lat["arrival"] + lat["freed"]
    return {
        "all": summary(every),
        "arrival": summary(lat["arrival"]),
        "freed": summary(lat["freed"]),
        "skipped": dict(skipped),
    }


def webhook_figures(load: Load) -> dict[str, Any]:
    hooks = [h for c in load.calls for h in c.hooks]
    window = load.end - load.start
    in_window = [h for h in hooks if load.start <= h.sent + h.took <= load.end]
    by_step: dict[str, list[float]] = {}
    for h in hooks:
        by_step.setdefault(h.step, []).append(h.took)
    enqueue = [c.enqueue_done - c.enqueue_sent for c in load.calls if c.enqueue_sent]
    failures = Counter(c.failure.split(":")[0] for c in load.calls if c.failure)
    return {
        "served_per_s": round(len(in_window) / window, 1) if window > 0 else None,
        "total": len(hooks),
        "per_call": round(len(hooks) / max(1, len(load.calls)), 2),
        "non_200": sum(1 for h in hooks if h.status != 200),
        "calls_failed": dict(failures),
        "latency": summary([h.took for h in hooks]),
        "enqueue_latency": summary(enqueue),
        "by_step_p99_ms": {k: summary(v)["p99_ms"] for k, v in sorted(by_step.items())},
    }


def in_window(samples: list[tuple[float, float]], load: Load, warmup_s: float) -> list[float]:
    return [rtt for sent, rtt in samples if load.start + warmup_s <= sent <= load.end]


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a is not None and b else None


def print_common(
    args: argparse.Namespace,
    server: Server,
    load: Load,
    rss: dict[str, Any],
    loop: str,
    idle: dict[str, float],
) -> dict[str, Any]:
    """Server resources, client health: printed, and returned for the JSON."""
    window = load.end - load.start
    workers = {k: v for k, v in rss.items() if k.startswith("worker") or k == "main"}
    if server.workers > 1:
        workers = {k: v for k, v in workers.items() if k != "main"}
    worst = max((v["max_mb"] for v in workers.values()), default=None)
    print("RSS per server process (MB, start → max → end of the run):")
    for role, v in rss.items():
        cpu = load.server_cpu_s.get(role, 0.0)
        print(
            f"  {role:9} {v['start_mb']:7.1f} → {v['max_mb']:7.1f} → {v['end_mb']:7.1f}"
            f"   CPU {cpu / window:5.0%} of one core during the arrivals "
            f"({idle.get(role, 0.0):.0%} idle)"
        )
    extra = sum(load.server_cpu_s.values()) - sum(idle.values()) * window
    per_call_ms = 1000 * extra / max(1, len(load.calls))
    print(
        f"server CPU per call (all processes, above idle): {per_call_ms:.0f} ms; "
        f"{2000 / per_call_ms if per_call_ms > 0 else float('inf'):.0f} calls/s would fill "
        "two cores"
    )
    lag = summary(load.pacer_lag_s)
    client_cpu = load.client_cpu_s / window if window else 0.0
    print(
        f"client: {loop}, CPU {client_cpu:.0%} of one core; arrivals late by "
        f"p50 {lag['p50_ms']} ms, p99 {lag['p99_ms']} ms; "
        f"{load.not_finished} calls unfinished at the end"
    )
    return {
        "rss_mb": rss,
        "rss_max_worker_mb": worst,
        "server_cpu_share": {k: round(v / window, 3) for k, v in load.server_cpu_s.items()},
        "server_cpu_share_idle": {k: round(v, 3) for k, v in idle.items()},
        "server_cpu_ms_per_call": round(per_call_ms, 1),
        "client_cpu_share": round(client_cpu, 3),
        "client_loop": loop,
        "arrival_lag": lag,
        "server_log": server.log_counts(),
    }


async def main(args: argparse.Namespace, loop: str) -> dict[str, Any]:
    print(f"machine: {machine()}")
    async with (
        twilio_side(args) as (twilio_env, fake),
        running_server(args.workers, extra_env=twilio_env) as server,
    ):
        backend = (
            f"Redis {'REDIS_URL' if server.env['REDIS_URL'] else 'embedded'}, "
            f"database {'DATABASE_URL' if server.env['DATABASE_URL'] else 'SQLite'}"
        )
        print(
            f"server: permanence serve, {args.workers} workers, {backend}, line {server.line}, "
            f"Twilio REST {args.twilio}"
        )
        t0 = clock()
        seeded = await seed_accounts(server, args.consoles, 0)
        print(f"{args.consoles:,} volunteer accounts written to SQL in {clock() - t0:.1f} s")
        stats = ConsoleStats()
        consoles = await start_consoles(server, seeded, args, stats)
        rss = RssSampler(server)
        rss.start()
        try:
            idle = await idle_cpu(server, args.idle_s)
            print(
                f"load: {args.rate:g} calls/s for {args.duration:g} s, IVR {args.ivr}; volunteers "
                f"accept at once, talk {args.handle_s:g} s, wrap up after {args.wrapup_s:g} s"
            )
            load = await run_load(server, seeded, args, stats, fake)
        finally:
            rss_mb = rss.stop()
            await asyncio.gather(*(c.close() for c in consoles))
        by_task = await task_calls(server, load.calls)
        dispatch = dispatch_figures(stats, by_task, load, args.warmup_s)
        hooks = webhook_figures(load)
        ping = summary(in_window(stats.ping_rtt, load, args.warmup_s))
        ping_busy = summary(in_window(stats.ping_rtt_busy, load, args.warmup_s))
        health = summary(in_window(load.health_rtt, load, args.warmup_s))
        requests = {
            kind: summary(in_window(rtts, load, args.warmup_s))
            for kind, rtts in sorted(stats.request_rtt.items())
            if kind != "presence"  # going available happens before the load
        }
        print(f"dispatch latency, every first offer:   {fmt_summary(dispatch['all'])}")
        print(f"  idle volunteer when the call came:   {fmt_summary(dispatch['arrival'])}")
        print(f"  call waited, a wrap-up freed someone: {fmt_summary(dispatch['freed'])}")
        if dispatch["skipped"]:
            print(f"  not counted: {dispatch['skipped']}")
        print(f"baseline, console ping → pong:        {fmt_summary(ping)}")
        print(f"  (pings behind a pending request:    {fmt_summary(ping_busy)}, not counted)")
        print(f"baseline, GET /healthz:               {fmt_summary(health)}")
        print("console requests, sent → answered (what a volunteer waits after a click):")
        for kind, figures in requests.items():
            print(f"  {kind + ':':<10} {fmt_summary(figures)}")
        p50_ratio = ratio(dispatch["all"]["p50_ms"], ping["p50_ms"])
        p99_ratio = ratio(dispatch["all"]["p99_ms"], ping["p99_ms"])
        print(f"dispatch / ping: p50 ×{p50_ratio}, p99 ×{p99_ratio}")
        print(
            f"webhooks: {hooks['served_per_s']}/s served ({hooks['per_call']} per call), "
            f"{fmt_summary(hooks['latency'])}; non-200: {hooks['non_200']}; "
            f"failed calls: {hooks['calls_failed'] or 0}"
        )
        print(f"  the webhook that enqueues: {fmt_summary(hooks['enqueue_latency'])}")
        print(
            f"offers gone: {dict(stats.offers_gone) or 0}; refused requests: "
            f"{dict(stats.refused) or 0}; consoles closed by the server: {stats.closed}"
        )
        common = print_common(args, server, load, rss_mb, loop, idle)
    p99 = dispatch["all"]["p99_ms"]
    rss_worst = common["rss_max_worker_mb"]
    p99_met = p99 is not None and p99 <= P99_GOAL_MS
    rss_met = rss_worst is not None and rss_worst <= RSS_GOAL_MB
    print(
        f"goals: p99 ≤ {P99_GOAL_MS:g} ms: {'met' if p99_met else 'NOT met'} ({p99} ms); "
        f"RSS ≤ {RSS_GOAL_MB:g} MB per process: {'met' if rss_met else 'NOT met'} "
        f"({rss_worst} MB)"
    )
    return {
        "dispatch_p50_ms": dispatch["all"]["p50_ms"],
        "dispatch_p99_ms": p99,
        "ping_p50_ms": ping["p50_ms"],
        "ping_p99_ms": ping["p99_ms"],
        "ratio_p50": p50_ratio,
        "ratio_p99": p99_ratio,
        "webhooks_per_s": hooks["served_per_s"],
        "goal_p99_ms": P99_GOAL_MS,
        "goal_rss_mb": RSS_GOAL_MB,
        "p99_goal_met": p99_met,
        "rss_goal_met": rss_met,
        "dispatch": dispatch,
        "ping": ping,
        "ping_behind_request": ping_busy,
        "healthz": health,
        "console_requests": requests,
        "webhooks": hooks,
        **common,
        "offers_gone": dict(stats.offers_gone),
        "refused": dict(stats.refused),
        "calls": len(load.calls),
        "handled": stats.handled,
        "consoles": len(consoles),
        "config": {k: v for k, v in vars(args).items()},
        "backend": backend,
    }


def parser(doc: str = __doc__) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--consoles", type=int, default=2000, help="volunteer consoles connected")
    p.add_argument("--rate", type=float, default=200.0, help="new calls per second")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of arrivals")
    p.add_argument("--workers", type=int, default=4, help="server worker processes")
    p.add_argument("--ivr", choices=("full", "short"), default="full",
                   help="full: every webhook Twilio sends (8 per call); short: the 3 that "
                   "change state")  # fmt: skip
    p.add_argument("--twilio", choices=("network", "inprocess"), default="network",
                   help="Twilio's REST API: served by this process (web/simulation/clients.py's "
                   "TwilioNetwork) or the app's in-process fake (TWILIO_FAKE)")  # fmt: skip
    p.add_argument("--handle-s", type=float, default=1.0, help="talk time after accepting")
    p.add_argument("--wrapup-s", type=float, default=0.5, help="time before the wrap-up")
    p.add_argument("--ping-s", type=float, default=10.0, help="console heartbeat period")
    p.add_argument("--health-every-s", type=float, default=0.05, help="/healthz sampling")
    p.add_argument("--idle-s", type=float, default=3.0, help="idle CPU measured before")
    p.add_argument("--warmup-s", type=float, default=2.0, help="first seconds not counted")
    p.add_argument("--drain-s", type=float, default=30.0, help="wait for the queue to empty")
    p.add_argument("--seed", type=int, default=2020)
    return p


if __name__ == "__main__":
    arguments = parser().parse_args()
    event_loop = install_uvloop()
    print(json.dumps(asyncio.run(main(arguments, event_loop))))
