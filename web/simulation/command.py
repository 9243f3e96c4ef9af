"""``permanence simulate``: traffic through the routing engine, from a trace or Poisson load.

Fast mode (the only one so far) drives the engine in-process on a manual clock, on a
throwaway Redis (or --redis-url / REDIS_URL, on a fresh line deleted afterwards).
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from routing.config import RoutingConfig
from web.simulation.fast import SimOptions, SimResult
from web.simulation.report import build, table
from web.simulation.runner import default_territories, scratch_redis, simulate
from web.simulation.scenario import (
    DISTRIBUTIONS,
    Scenario,
    ScenarioError,
    departement_weights,
    draw_departements,
    from_trace,
    poisson,
)
from web.simulation.trace import DEFAULT_TRACE_FILE, Patience, TraceError, load_trace


def _scenario(
    trace: Path,
    days: list[str],
    rate: float | None,
    aht: float,
    volunteers: int | None,
    hours: float,
    patience: float | None,
    homes: str,
    seed: int,
) -> Scenario:
    if rate is not None:
        if volunteers is None:
            raise ScenarioError("--volunteers is required with --poisson")
        return poisson(seed=seed, calls_per_hour=rate, aht_s=aht, volunteers_on_duty=volunteers,
                       hours=hours, patience_s=patience, volunteers=homes,
                       start_s=8 * 3600 if hours <= 16 else 0)  # fmt: skip
    loaded = load_trace(trace)
    chosen = days or [next(d for d, day in loaded.items() if len(day.calls) > 1000)]
    unknown = [d for d in chosen if d not in loaded]
    if unknown:
        raise ScenarioError(f"unknown trace day(s): {', '.join(unknown)} "
                            f"(the trace has {', '.join(loaded)})")  # fmt: skip
    pat = Patience([c for d in loaded.values() for c in d.calls])
    scenario = from_trace([loaded[d] for d in chosen], pat, seed=seed, volunteers=homes)
    if volunteers is not None:  # a fixed number on duty whenever the trace had anyone
        if volunteers < 1:
            raise ScenarioError("--volunteers must be at least 1")
        scenario.staffing = [volunteers if n else 0 for n in scenario.staffing]
        rng = random.Random(seed)
        scenario.volunteer_departements = draw_departements(
            departement_weights(homes), volunteers, rng
        )
    return scenario


def simulate_command(
    trace: Annotated[Path, typer.Option(help="trace CSV (Anonymous Bank columns)")] = (
        DEFAULT_TRACE_FILE
    ),
    day: Annotated[
        list[str] | None,
        typer.Option(help="trace day YYYY-MM-DD; repeat to overlay days (a bigger line)"),
    ] = None,
    poisson_rate: Annotated[
        float | None, typer.Option("--poisson", help="synthetic load instead: calls per hour")
    ] = None,
    aht: Annotated[float, typer.Option(help="Poisson: mean handle time, s")] = 200.0,
    hours: Annotated[float, typer.Option(help="Poisson: hours of arrivals")] = 8.0,
    patience: Annotated[
        float | None, typer.Option(help="Poisson: mean patience, s (default: never hang up)")
    ] = None,
    volunteers: Annotated[
        int | None,
        typer.Option(help="volunteers on duty (default: the trace's agents per half hour)"),
    ] = None,
    homes: Annotated[
        str, typer.Option(help=f"volunteers' départements: {', '.join(DISTRIBUTIONS)}")
    ] = "population",
    widen: Annotated[
        str | None,
        typer.Option(help="group,région,national thresholds in s (default: RoutingConfig())"),
    ] = None,
    national: Annotated[
        bool, typer.Option(help="baseline: ignore territory, national longest idle")
    ] = False,
    seed: Annotated[int, typer.Option(help="random seed (same seed, same day)")] = 1,
    mode: Annotated[str, typer.Option(help="fast (in-process engine) or live")] = "fast",
    redis_url: Annotated[
        str | None, typer.Option(help="Redis to run on (default: a throwaway server)")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="write the JSON report to this file")
    ] = None,
) -> None:
    """Simulate a day of calls through the routing engine and report how it went."""
    if mode != "fast":
        typer.echo(
            "only --mode fast exists so far: the live mode (signed Twilio webhooks, chat "
            "and console websockets against a running server) is not written yet",
            err=True,
        )
        raise typer.Exit(2)
    if homes not in DISTRIBUTIONS:
        raise typer.BadParameter(f"choose from {', '.join(DISTRIBUTIONS)}", param_hint="--homes")
    config = RoutingConfig()
    if widen:
        try:
            group, region, nat = (float(x) for x in widen.split(","))
            config = RoutingConfig(widen_group_s=group, widen_region_s=region,
                                   widen_national_s=nat)  # fmt: skip
        except ValueError:
            raise typer.BadParameter(
                "three numbers >= 0, e.g. 15,30,90", param_hint="--widen"
            ) from None
    try:
        scenario = _scenario(trace, day or [], poisson_rate, aht, volunteers, hours, patience,
                             homes, seed)  # fmt: skip
    except (ScenarioError, TraceError) as exc:
        typer.echo(f"simulate: {exc}", err=True)
        raise typer.Exit(2) from None
    options = SimOptions(seed=seed, territory_blind=national)
    result = _run(scenario, config, options, redis_url)
    report = build(result)
    report["config"] = config.model_dump()
    typer.echo(table(report, default_territories()))
    if json_out:
        json_out.write_text(json.dumps(report, indent=2, ensure_ascii=False), encoding="utf-8")
        typer.echo(f"JSON report written to {json_out}")


def _run(
    scenario: Scenario, config: RoutingConfig, options: SimOptions, url: str | None
) -> SimResult:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, transient=True) as progress, scratch_redis(url) as redis_url:
        bar = progress.add_task("appels simulés", total=len(scenario.calls))

        def on_progress(done: int, total: int) -> None:
            progress.update(bar, completed=done, total=total)

        return asyncio.run(simulate(redis_url, scenario, config, options,
                                    on_progress=on_progress))  # fmt: skip
