"""Routing policy study on the real call-center trace: same calls, same seed, same run.

Compares (a) national longest-idle with no territory (what the 2020 line did),
(a') every ring open at once but closest volunteer first among idle ones,
(b) Permanence's current RoutingConfig (every ring open; a freed volunteer takes the closest
ring's task first and leaves tasks to closer volunteers on duty, until a task has waited
local_first_max_wait_s), (b') the closest ring first without leaving tasks to others,
(d) other caps with leave_to_closer, and (c) widening thresholds (the first default
15/30/90 among them), on:

- "trace": weekdays of the Anonymous Bank trace, volunteers on duty per half hour =
  the trace's distinct agents (~10 at the peak, so most départements have nobody);
- "trace x5": five weekdays overlaid on one day (five times the calls and the
  volunteers), a line big enough that many départements have someone on duty.

For each: service level, ASA, abandonment, share answered at département level,
share answered locally among locally matchable calls, worst région p90 / national p90.

Usage: .venv/bin/python bench/policy_study.py [--jobs 2] [--seed 1] [--quick]
       [--days 2010-08-04,...] [--policy NAME ...] [--write-readme]
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from routing.config import RoutingConfig  # noqa: E402
from routing.metrics import Counts  # noqa: E402
from web.simulation.fast import SimOptions, SimResult  # noqa: E402
from web.simulation.report import build  # noqa: E402
from web.simulation.runner import scratch_redis, simulate  # noqa: E402
from web.simulation.scenario import from_trace  # noqa: E402
from web.simulation.trace import Patience, load_trace  # noqa: E402

# name -> (territory-blind, RoutingConfig fields other than its defaults). WIDE: every ring
# open at once. local_first_max_wait_s 0: a freed volunteer takes strictly the longest-waiting
# task, as every policy did before the local-first choice existed.
WIDE = {"widen_group_s": 0, "widen_region_s": 0, "widen_national_s": 0}
FCFS = {"local_first_max_wait_s": 0, "leave_to_closer": False}


def _thresholds(group: float, region: float, national: float) -> dict[str, float | bool]:
    return {"widen_group_s": group, "widen_region_s": region, "widen_national_s": national}


def _local_first(cap_s: float, leave_to_closer: bool) -> dict[str, float | bool]:
    return {**WIDE, "local_first_max_wait_s": cap_s, "leave_to_closer": leave_to_closer}


POLICIES: dict[str, tuple[bool, dict[str, float | bool]]] = {
    "a national longest-idle": (True, {**WIDE, **FCFS}),
    "a' all rings open, closest first": (False, {**WIDE, **FCFS}),
    "b default": (False, {}),  # RoutingConfig() as it stands
    "b' local first 60 s (former default)": (False, _local_first(60, False)),
    "b' local first 120 s": (False, _local_first(120, False)),
    "d leave to closer 60 s": (False, _local_first(60, True)),
    "d leave to closer 180 s": (False, _local_first(180, True)),
    "d leave to closer 300 s": (False, _local_first(300, True)),
    "c 15/30/90 (first default)": (False, {**_thresholds(15, 30, 90), **FCFS}),
    "c 2/5/15": (False, {**_thresholds(2, 5, 15), **FCFS}),
    "c 5/10/30": (False, {**_thresholds(5, 10, 30), **FCFS}),
    "c 10/20/60": (False, {**_thresholds(10, 20, 60), **FCFS}),
    "c 30/60/120": (False, {**_thresholds(30, 60, 120), **FCFS}),
    "c 60/120/240": (False, {**_thresholds(60, 120, 240), **FCFS}),
}
SCENARIOS: dict[str, list[list[str]]] = {
    # each inner list is one simulated day (several trace days overlaid)
    "trace": [["2010-08-02"], ["2010-08-04"], ["2010-08-09"], ["2010-08-11"]],
    "trace x5": [["2010-08-01", "2010-08-02", "2010-08-03", "2010-08-04", "2010-08-05"]],
}
QUICK: dict[str, list[list[str]]] = {
    "trace": [["2010-08-04"]],
    "trace x5": [["2010-08-01", "2010-08-02", "2010-08-03", "2010-08-04", "2010-08-05"]],
}
README = ROOT / "bench" / "README.md"
START, END = "<!-- policy_study:start -->", "<!-- policy_study:end -->"


def policy_config(name: str) -> RoutingConfig:
    return RoutingConfig(**POLICIES[name][1])


def combine(results: list[SimResult]) -> SimResult:
    """Several simulated days as one run (records appended, counters summed)."""
    counts = sum((r.counts for r in results), Counts())
    return SimResult(
        scenario=" | ".join(r.scenario for r in results),
        records=[rec for r in results for rec in r.records],
        counts=counts,
        wall_s=sum(r.wall_s for r in results),
        engine_calls=sum(r.engine_calls for r in results),
        options=results[0].options,
        staffing=[sum(s) for s in zip(*(r.staffing for r in results), strict=True)],
    )


def run_one(job: tuple[str, list[list[str]], str, int]) -> dict[str, object]:
    """One policy on one scenario (all its days), in its own process and Redis."""
    scenario_name, day_sets, policy, seed = job
    days = load_trace()
    patience = Patience([c for d in days.values() for c in d.calls])
    config = policy_config(policy)
    options = SimOptions(seed=seed, territory_blind=POLICIES[policy][0])

    async def go() -> list[SimResult]:
        out = []
        with scratch_redis() as url:
            for i, dates in enumerate(day_sets):
                scenario = from_trace([days[d] for d in dates], patience, seed=seed + i)
                out.append(await simulate(url, scenario, config, options))
        return out

    report = build(combine(asyncio.run(go())))
    m, t = report["metrics"], report["territory"]
    return {
        "scenario": scenario_name,
        "policy": policy,
        "thresholds": [config.widen_group_s, config.widen_region_s, config.widen_national_s],
        "local_first_max_wait_s": config.local_first_max_wait_s,
        "leave_to_closer": config.leave_to_closer,
        "calls": report["calls"],
        "service_level": m["service_level"],
        "asa_s": m["asa_s"],
        "abandonment": m["abandonment_rate"],
        "answered_departement": t["match"]["departement"],
        "local_among_matchable": t["local_among_matchable"],
        "matchable_answered": t["locally_matchable_answered"],
        "worst_region_p90_ratio": t["worst_region_p90_over_national"],
        "p90_wait_s": t["p90_wait_s"],
        "wall_s": report["run"]["wall_s"],
    }


def _fmt(v: object, kind: str) -> str:
    if v is None:
        return "-"
    if kind == "pct":
        return f"{100 * float(v):.1f} %"
    if kind == "s":
        return f"{float(v):.1f} s"
    return f"{float(v):.2f}"


def markdown(rows: list[dict[str, object]]) -> str:
    """The study as a Markdown table per scenario, with gaps to (a)."""
    out = []
    for scenario in dict.fromkeys(r["scenario"] for r in rows):
        group = [r for r in rows if r["scenario"] == scenario]
        base = group[0]
        out += [
            f"**{scenario}** ({base['calls']} calls)",
            "",
            "| policy | SL 60 s | ASA | ASA vs (a) | abandonment | aband. vs (a) "
            "| at département | local among matchable | worst région p90 / national |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in group:
            asa_gap = (r["asa_s"] / base["asa_s"] - 1) if base["asa_s"] else None
            ab_gap = (r["abandonment"] / base["abandonment"] - 1) if base["abandonment"] else None
            out.append(
                f"| {r['policy']} | {_fmt(r['service_level'], 'pct')} | {_fmt(r['asa_s'], 's')} "
                f"| {_fmt(asa_gap, 'pct')} | {_fmt(r['abandonment'], 'pct')} "
                f"| {_fmt(ab_gap, 'pct')} | {_fmt(r['answered_departement'], 'pct')} "
                f"| {_fmt(r['local_among_matchable'], 'pct')} "
                f"| {_fmt(r['worst_region_p90_ratio'], 'x')} |"
            )
        out.append("")
    return "\n".join(out)


def write_readme(section: str) -> None:
    text = README.read_text(encoding="utf-8") if README.exists() else "# Benchmarks\n"
    block = f"{START}\n{section}\n{END}"
    if START in text and END in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    README.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="processes in parallel")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="one day per scenario")
    parser.add_argument(
        "--days", help="trace days for the 'trace' scenario (comma-separated), to shorten a run"
    )
    parser.add_argument(
        "--policy", action="append", choices=list(POLICIES), help="only these (repeatable)"
    )
    parser.add_argument("--write-readme", action="store_true", help="update bench/README.md")
    args = parser.parse_args()
    scenarios = dict(QUICK if args.quick else SCENARIOS)
    if args.days:
        scenarios["trace"] = [[d] for d in args.days.split(",")]
    policies = args.policy or list(POLICIES)
    jobs = [(s, days, p, args.seed) for s, days in scenarios.items() for p in policies]
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = []
        for row in pool.map(run_one, jobs):
            rows.append(row)
            print(f"{row['scenario']:>9} | {row['policy']:<34}"
                  f" | SL {_fmt(row['service_level'], 'pct')}"
                  f" | ASA {_fmt(row['asa_s'], 's')} | ab {_fmt(row['abandonment'], 'pct')}"
                  f" | dept {_fmt(row['answered_departement'], 'pct')}"
                  f" | local/matchable {_fmt(row['local_among_matchable'], 'pct')}"
                  f" | worst p90 {_fmt(row['worst_region_p90_ratio'], 'x')}"
                  f" | {row['wall_s']:.0f} s", file=sys.stderr)  # fmt: skip
    table = markdown(rows)
    print(table)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d")
    machine = f"{platform.node()} ({platform.machine()}, python {platform.python_version()})"
    if args.write_readme:
        days = " | ".join(",".join(d) for d in scenarios["trace"])
        quick = " (quick)" if args.quick else ""
        write_readme(f"Measured {stamp} on {machine}, seed {args.seed}{quick}; "
                     f"trace days {days}.\n\n{table}")  # fmt: skip
    wall = round(time.perf_counter() - started, 1)
    summary = {"bench": "policy_study", "date": stamp, "machine": machine, "seed": args.seed,
               "quick": args.quick, "days": scenarios, "wall_s": wall, "rows": rows}  # fmt: skip
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
