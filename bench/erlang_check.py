"""Synthetic M/M/c load through the real engine versus the Erlang C formula.

Poisson arrivals, exponential service, callers who never hang up, volunteers who
answer at once and skip the wrap-up, every ring open at once (no territorial wait):
the engine then is an M/M/c queue and must reproduce Erlang C's probability of
waiting and mean wait. Several independent replications of a long day; the first
hour of each is left out (the queue starts empty).

Usage: .venv/bin/python bench/erlang_check.py [--servers 10] [--load 7] [--aht 180]
       [--hours 23] [--replications 8] [--seed 1]
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from routing.erlang import ErlangC  # noqa: E402
from web.simulation.fast import SimOptions  # noqa: E402
from web.simulation.runner import national_config, scratch_redis, simulate  # noqa: E402
from web.simulation.scenario import poisson  # noqa: E402

WARM_UP_S = 3600


async def run(args: argparse.Namespace) -> dict[str, object]:
    options = SimOptions(seed=args.seed, accept_delay_s=(0, 0), wrapup_s=(0, 0))
    waits: list[float] = []
    wall, engine_calls = 0.0, 0
    with scratch_redis() as url:
        for rep in range(args.replications):
            scenario = poisson(
                seed=args.seed + rep,
                calls_per_hour=args.load / args.aht * 3600,
                aht_s=args.aht,
                volunteers_on_duty=args.servers,
                hours=args.hours,
            )
            result = await simulate(url, scenario, national_config(), options)
            start = result.records[0].arrival_ms - int(scenario.calls[0].arrival_s * 1000)
            waits += [
                r.wait_ms / 1000
                for r in result.records
                if r.outcome == "answered" and r.arrival_ms - start >= WARM_UP_S * 1000
            ]
            wall += result.wall_s
            engine_calls += result.engine_calls
            print(f"replication {rep + 1}/{args.replications}: {len(result.records)} calls, "
                  f"{result.wall_s:.1f} s", file=sys.stderr)  # fmt: skip
    erlang = ErlangC(args.servers, args.load / args.aht, args.aht)
    p_sim = sum(1 for w in waits if w > 0) / len(waits)
    mean_sim = sum(waits) / len(waits)
    return {
        "bench": "erlang_check",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": f"{platform.node()} {platform.machine()} python {platform.python_version()}",
        "servers": args.servers,
        "load_erlangs": args.load,
        "aht_s": args.aht,
        "calls_measured": len(waits),
        "p_wait_sim": round(p_sim, 4),
        "p_wait_erlang": round(erlang.p_wait, 4),
        "p_wait_diff_points": round(100 * (p_sim - erlang.p_wait), 2),
        "mean_wait_sim_s": round(mean_sim, 2),
        "mean_wait_erlang_s": round(erlang.asa_s, 2),
        "sl20_sim": round(sum(1 for w in waits if w <= 20) / len(waits), 4),
        "sl20_erlang": round(erlang.service_level(20), 4),
        "engine_calls": engine_calls,
        "wall_s": round(wall, 1),
        "goal_met": abs(p_sim - erlang.p_wait) <= 0.03,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=10)
    parser.add_argument("--load", type=float, default=7.0, help="offered load, Erlangs")
    parser.add_argument("--aht", type=float, default=180.0, help="mean service time, s")
    parser.add_argument("--hours", type=float, default=23.0)
    parser.add_argument("--replications", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if not 0 < args.load < args.servers:
        parser.error("the load must be below the number of servers (a stable queue)")
    out = asyncio.run(run(args))
    print(f"{'':24}{'simulated':>12}{'Erlang C':>12}")
    print(f"{'P(wait)':24}{out['p_wait_sim']:>12.4f}{out['p_wait_erlang']:>12.4f}")
    print(f"{'mean wait (s)':24}{out['mean_wait_sim_s']:>12.2f}{out['mean_wait_erlang_s']:>12.2f}")
    print(f"{'answered within 20 s':24}{out['sl20_sim']:>12.4f}{out['sl20_erlang']:>12.4f}")
    print(f"difference in P(wait): {out['p_wait_diff_points']:+.2f} points "
          f"over {out['calls_measured']} calls (goal: within ±3)")  # fmt: skip
    print(json.dumps(out))


if __name__ == "__main__":
    main()
