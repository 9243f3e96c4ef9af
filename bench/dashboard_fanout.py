"""Dashboard fan-out: how stale coordinators' dashboards get while the line is busy.

The set-up of dispatch_latency.py (the real server with several workers, N volunteer
consoles working, signed Twilio webhooks at R calls/s) plus M coordinator dashboards
on the dashboard websocket (``/coordination/ws``).

State changes are probes: one more volunteer, kept paused, changes the reason of their
pause through their own console every ``--probe-every-s`` ("sonde 1", "sonde 2"...);
the dashboard lists paused volunteers with their reason. Staleness of probe n on a
dashboard = arrival of the first update showing probe n or later − when the probe's
request left this client (one clock, this process). Every (probe, dashboard) pair
counts; a pair never shown by the end of the run counts as missed.

Baseline, same run: the same probes with the consoles and dashboards connected but no
calls coming in (``--baseline-s``), then the load. Also: the probe request's own round
trip, updates per second and bytes per update received by each dashboard.

    .venv/bin/python bench/dashboard_fanout.py [--dashboards 200] [--consoles 2000]
        [--rate 200] [--duration 30] [--workers 4] [--probe-every-s 0.5]

Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import dispatch_latency as dl  # noqa: E402
from _clients import ConsoleClient, ConsoleStats, DashboardClient  # noqa: E402
from _server import (  # noqa: E402
    RssSampler,
    Seeded,
    Server,
    clock,
    fmt_summary,
    install_uvloop,
    machine,
    running_server,
    seed_accounts,
    summary,
)

STALENESS_GOAL_S = 1.0


class Prober:
    """The probe volunteer: changes their pause reason at a steady pace, timing each."""

    def __init__(self, console: ConsoleClient) -> None:
        self.console = console
        self.sent: list[tuple[int, float]] = []  # (seq, when the request left)
        self.rtt: list[float] = []
        self.seq = 0

    async def probe(self) -> None:
        self.seq += 1
        sent = clock()
        self.sent.append((self.seq, sent))
        await self.console.request("presence", state="paused", reason=f"sonde {self.seq}")
        self.rtt.append(clock() - sent)

    async def run(self, every_s: float, stop: asyncio.Event) -> None:
        start = clock()
        i = 0
        while not stop.is_set():
            await self.probe()
            i += 1
            delay = start + i * every_s - clock()
            if delay > 0:
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass


def staleness(
    boards: list[DashboardClient], probes: list[tuple[int, float]]
) -> tuple[list[float], int]:
    """Per (probe, dashboard): first update showing it (or later) − probe sent; and misses."""
    out: list[float] = []
    missed = 0
    for board in boards:
        updates = board.updates
        newest, best = [], -1
        for _at, seq, _size in updates:
            best = max(best, seq)
            newest.append(best)
        i = 0  # probes grow in time and number: the first update showing one only moves on
        for seq, sent in probes:
            while i < len(updates) and (updates[i][0] < sent or newest[i] < seq):
                i += 1
            if i < len(updates):
                out.append(updates[i][0] - sent)
            else:
                missed += 1
    return out, missed


def update_figures(boards: list[DashboardClient], t0: float, t1: float) -> dict[str, Any]:
    window = t1 - t0
    counts = [sum(1 for u in b.updates if t0 <= u[0] <= t1) for b in boards]
    sizes = [u[2] for b in boards for u in b.updates if t0 <= u[0] <= t1]
    total = sum(sizes)
    return {
        "updates_per_s_per_dashboard": round(sum(counts) / len(boards) / window, 2)
        if boards and window > 0
        else None,
        "bytes_per_update": round(total / len(sizes)) if sizes else None,
        "mb_per_s_all_dashboards": round(total / window / 1e6, 2) if window > 0 else None,
    }


async def open_dashboards(server: Server, seeded: Seeded) -> list[DashboardClient]:
    boards = [DashboardClient(server.ws_url, server.base_url, c) for _id, c in seeded.coordinators]
    sem = asyncio.Semaphore(16)
    failed: list[str] = []

    async def one(b: DashboardClient) -> DashboardClient | None:
        async with sem:
            try:
                await b.connect()
                return b
            except Exception as exc:
                failed.append(f"{type(exc).__name__}: {exc}"[:200])
                return None

    t0 = clock()
    ok = [b for b in await asyncio.gather(*(one(b) for b in boards)) if b is not None]
    print(
        f"{len(ok):,} dashboards connected in {clock() - t0:.1f} s"
        + (f"; {len(failed)} failed, e.g. {failed[0]}" if failed else "")
    )
    return ok


async def main(args: argparse.Namespace, loop: str) -> dict[str, Any]:
    print(f"machine: {machine()}")
    async with (
        dl.twilio_side(args) as (twilio_env, fake),
        running_server(args.workers, extra_env=twilio_env) as server,
    ):
        backend = (
            f"Redis {'REDIS_URL' if server.env['REDIS_URL'] else 'embedded'}, "
            f"database {'DATABASE_URL' if server.env['DATABASE_URL'] else 'SQLite'}"
        )
        print(f"server: permanence serve, {args.workers} workers, {backend}, line {server.line}")
        seeded = await seed_accounts(server, args.consoles + 1, args.dashboards)
        probe_vid, _dep, probe_cookie = seeded.volunteers.pop()
        stats = ConsoleStats()
        probe_console = ConsoleClient(
            server.ws_url, server.base_url, probe_vid, probe_cookie, ConsoleStats()
        )
        await probe_console.connect()
        prober = Prober(probe_console)
        await prober.probe()  # paused from now on: never offered a call
        consoles = await dl.start_consoles(server, seeded, args, stats)
        boards = await open_dashboards(server, seeded)
        rss = RssSampler(server)
        rss.start()
        stop = asyncio.Event()
        try:
            await asyncio.sleep(1.0)  # the first full state reached every dashboard
            base_t0 = clock()
            probing = asyncio.create_task(prober.run(args.probe_every_s, stop))
            idle = await dl.idle_cpu(server, args.baseline_s)  # probes only: the idle figure
            base_t1 = clock()
            print(
                f"load: {args.rate:g} calls/s for {args.duration:g} s, IVR {args.ivr}, "
                f"probes every {args.probe_every_s:g} s"
            )
            load = await dl.run_load(server, seeded, args, stats, fake)
            stop.set()
            await probing
            await asyncio.sleep(2.0)  # let the last probes reach every dashboard
        finally:
            stop.set()
            rss_mb = rss.stop()
            await asyncio.gather(*(c.close() for c in consoles))
            await asyncio.gather(*(b.close() for b in boards))
            await probe_console.close()
        base_probes = [(s, t) for s, t in prober.sent if base_t0 <= t < base_t1]
        load_since = load.start + args.warmup_s
        load_probes = [(s, t) for s, t in prober.sent if load_since <= t <= load.end]
        base_stale, base_missed = staleness(boards, base_probes)
        load_stale, load_missed = staleness(boards, load_probes)
        base = summary(base_stale)
        under = summary(load_stale)
        rtt_base = summary(
            [r for (_s, t), r in zip(prober.sent[1:], prober.rtt[1:], strict=False)
             if base_t0 <= t < base_t1]
        )  # fmt: skip
        rtt_load = summary(
            [r for (_s, t), r in zip(prober.sent[1:], prober.rtt[1:], strict=False)
             if load_since <= t <= load.end]
        )  # fmt: skip
        ups_base = update_figures(boards, base_t0, base_t1)
        ups_load = update_figures(boards, load.start, load.end)
        print(f"staleness, no calls (baseline): {fmt_summary(base)}; missed {base_missed}")
        print(f"staleness, under load:          {fmt_summary(under)}; missed {load_missed}")
        print(f"probe request round trip, no calls: {fmt_summary(rtt_base)}")
        print(f"probe request round trip, load:     {fmt_summary(rtt_load)}")
        r50 = dl.ratio(under["p50_ms"], base["p50_ms"])
        r99 = dl.ratio(under["p99_ms"], base["p99_ms"])
        print(f"under load / baseline: p50 ×{r50}, p99 ×{r99}")
        print(
            f"dashboard updates, no calls: {ups_base['updates_per_s_per_dashboard']}/s each, "
            f"{ups_base['bytes_per_update']} bytes each; under load: "
            f"{ups_load['updates_per_s_per_dashboard']}/s each, {ups_load['bytes_per_update']} "
            f"bytes each, {ups_load['mb_per_s_all_dashboards']} MB/s to all dashboards"
        )
        closed = sum(1 for b in boards if b.closed)
        by_task = await dl.task_calls(server, load.calls)
        dispatch = dl.dispatch_figures(stats, by_task, load, args.warmup_s)
        hooks = dl.webhook_figures(load)
        print(f"dispatch latency (as dispatch_latency.py): {fmt_summary(dispatch['all'])}")
        print(
            f"webhooks: {hooks['served_per_s']}/s served, {fmt_summary(hooks['latency'])}; "
            f"failed calls: {hooks['calls_failed'] or 0}; dashboards closed by the server: "
            f"{closed}"
        )
        common = dl.print_common(args, server, load, rss_mb, loop, idle)
    p99 = under["p99_ms"]
    met = p99 is not None and load_missed == 0 and p99 <= STALENESS_GOAL_S * 1000
    print(
        f"goal: p99 staleness ≤ {STALENESS_GOAL_S:g} s: {'met' if met else 'NOT met'} "
        f"({p99} ms, {load_missed} missed)"
    )
    return {
        "staleness_p50_ms": under["p50_ms"],
        "staleness_p99_ms": p99,
        "staleness_missed": load_missed,
        "baseline_staleness_p50_ms": base["p50_ms"],
        "baseline_staleness_p99_ms": base["p99_ms"],
        "ratio_p50": r50,
        "ratio_p99": r99,
        "goal_staleness_ms": STALENESS_GOAL_S * 1000,
        "goal_met": met,
        "staleness": under,
        "baseline_staleness": base,
        "baseline_missed": base_missed,
        "probe_rtt": rtt_load,
        "baseline_probe_rtt": rtt_base,
        "updates": ups_load,
        "baseline_updates": ups_base,
        "dashboards": len(boards),
        "dashboards_closed": closed,
        "consoles": len(consoles),
        "dispatch": dispatch,
        "webhooks": hooks,
        **common,
        "calls": len(load.calls),
        "handled": stats.handled,
        "config": dict(vars(args)),
        "backend": backend,
    }


def parser() -> argparse.ArgumentParser:
    p = dl.parser(__doc__)
    p.add_argument("--dashboards", type=int, default=200, help="coordinator dashboards")
    p.add_argument("--probe-every-s", type=float, default=0.5, help="probe period")
    p.add_argument("--baseline-s", type=float, default=5.0, help="probes before the calls")
    return p


if __name__ == "__main__":
    arguments = parser().parse_args()
    event_loop = install_uvloop()
    print(json.dumps(asyncio.run(main(arguments, event_loop))))
