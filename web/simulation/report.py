"""A simulation's report: the headline metrics (routing.metrics, from the engine's own
counters) and what only per-call records can tell (territory, waits per région)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from routing.metrics import compute
from routing.models import RING_NAMES
from routing.territory import Territories, load_territories
from web.simulation.fast import CallRecord, SimResult

MIN_REGION_ANSWERED = 30  # régions with fewer answered calls are too noisy for a p90


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in [0, 100]); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def _share(num: int, den: int) -> float | None:
    return num / den if den else None


def territorial(records: Iterable[CallRecord]) -> dict[str, Any]:
    """Match by level, the locally matchable share, and waits per région (answered calls)."""
    answered = [r for r in records if r.outcome == "answered"]
    by_ring = {name: 0 for name in RING_NAMES.values()}
    for r in answered:
        by_ring[RING_NAMES[r.ring or 0]] += 1
    matchable = [r for r in answered if r.matchable]
    waits = [r.wait_ms / 1000 for r in answered if r.wait_ms is not None]
    per_region: dict[str, list[float]] = defaultdict(list)
    for r in answered:
        per_region[r.region].append((r.wait_ms or 0) / 1000)
    regions = {
        code: {"answered": len(w), "p50_s": percentile(w, 50), "p90_s": percentile(w, 90)}
        for code, w in sorted(per_region.items())
    }
    national_p90 = percentile(waits, 90)
    big = {c: v for c, v in regions.items() if v["answered"] >= MIN_REGION_ANSWERED}
    worst = max(big, key=lambda c: big[c]["p90_s"], default=None)
    ratio = None
    if worst is not None and national_p90:
        ratio = big[worst]["p90_s"] / national_p90
    return {
        "match": {name: _share(n, len(answered)) for name, n in by_ring.items()},
        "locally_matchable_answered": len(matchable),
        "locally_matchable_share": _share(len(matchable), len(answered)),
        "local_among_matchable": _share(sum(1 for r in matchable if r.ring == 0), len(matchable)),
        "p50_wait_s": percentile(waits, 50),
        "p90_wait_s": national_p90,
        "p_wait": _share(sum(1 for w in waits if w > 0), len(waits)),
        "worst_region": worst,
        "worst_region_p90_over_national": ratio,
        "regions": regions,
    }


def build(result: SimResult) -> dict[str, Any]:
    """The JSON report of one run."""
    records = result.records
    closed = sum(1 for r in records if r.outcome == "closed")
    return {
        "scenario": result.scenario,
        "calls": len(records),
        "closed_at_end": closed,
        "metrics": compute(result.counts).as_dict(),
        "territory": territorial(records),
        "run": {
            "wall_s": round(result.wall_s, 3),
            "engine_calls": result.engine_calls,
            "seed": result.options.seed,
            "territory_blind": result.options.territory_blind,
            "volunteer_half_hours": sum(result.staffing),
        },
    }


def pct(x: float | None) -> str:
    """A share as "12.3 %", or "-" when there is none."""
    return "   -" if x is None else f"{100 * x:5.1f} %"


def sec(x: float | None) -> str:
    """Seconds as "12.3 s", or "-" when there are none."""
    return "   -" if x is None else f"{x:6.1f} s"


def table(
    report: dict[str, Any],
    territories: Territories | None = None,
    *,
    contacts: str = "calls",
    requests: str = "engine calls",
) -> str:
    """A readable summary of one report; ``contacts`` and ``requests`` name what was counted
    (the live mode plays chats too and counts its requests, not engine calls)."""
    terr = territories or load_territories()
    m, t = report["metrics"], report["territory"]
    lines = [
        f"Scenario: {report['scenario']}  ({report['calls']} {contacts}, "
        f"{report['run']['engine_calls']} {requests} in {report['run']['wall_s']:.1f} s)",
        f"  Service level (60 s)      {pct(m['service_level'])}",
        f"  ASA                       {sec(m['asa_s'])}",
        f"  Abandonment               {pct(m['abandonment_rate'])}",
        f"  Answered at département   {pct(t['match']['departement'])}",
        f"  Answered in group         {pct(t['match']['groupe'])}",
        f"  Answered in région        {pct(t['match']['region'])}",
        f"  Answered nationally       {pct(t['match']['national'])}",
        f"  Local among matchable     {pct(t['local_among_matchable'])}"
        f"  ({t['locally_matchable_answered']} answered calls were locally matchable)",
        f"  Wait p50 / p90            {sec(t['p50_wait_s'])} / {sec(t['p90_wait_s'])}",
        "",
        f"  {'Région':<30} {'answered':>8} {'p50':>9} {'p90':>9}",
    ]
    for code, r in t["regions"].items():
        name = terr.regions[code].name if code in terr.regions else code
        lines.append(f"  {name[:30]:<30} {r['answered']:>8} {sec(r['p50_s'])} {sec(r['p90_s'])}")
    if report["closed_at_end"]:
        lines.append(f"  ({report['closed_at_end']} calls still waiting at the end were closed)")
    return "\n".join(lines)
