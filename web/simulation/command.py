"""``permanence simulate``: traffic through the routing engine, from a trace or Poisson load.

Fast mode drives the engine in-process on a manual clock, on a throwaway Redis (or
--redis-url / REDIS_URL, on a fresh line deleted afterwards); it plays phone calls only,
so it refuses --chat-share. Live mode (--live) drives a running server from outside:
signed Twilio webhooks, web chats over the public page's websocket (--chat-share),
volunteers' consoles, a coordinator's dashboard (web/simulation/live.py).
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
from web.simulation.clients import Line
from web.simulation.fast import SimOptions, SimResult
from web.simulation.live import LiveOptions, LiveTarget, live_table, simulate_live
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
    chat_share: float = 0.0,
) -> Scenario:
    if rate is not None:
        if volunteers is None:
            raise ScenarioError("--volunteers is required with --poisson")
        return poisson(seed=seed, calls_per_hour=rate, aht_s=aht, volunteers_on_duty=volunteers,
                       hours=hours, patience_s=patience, volunteers=homes,
                       start_s=8 * 3600 if hours <= 16 else 0,
                       chat_share=chat_share)  # fmt: skip
    loaded = load_trace(trace)
    chosen = days or [next(d for d, day in loaded.items() if len(day.calls) > 1000)]
    unknown = [d for d in chosen if d not in loaded]
    if unknown:
        raise ScenarioError(f"unknown trace day(s): {', '.join(unknown)} "
                            f"(the trace has {', '.join(loaded)})")  # fmt: skip
    pat = Patience([c for d in loaded.values() for c in d.calls])
    scenario = from_trace([loaded[d] for d in chosen], pat, seed=seed, volunteers=homes,
                          chat_share=chat_share)  # fmt: skip
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
        float | None, typer.Option("--poisson", help="synthetic load instead: contacts per hour")
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
    live: Annotated[
        bool, typer.Option("--live", help="drive a running server (same as --mode live)")
    ] = False,
    url: Annotated[str, typer.Option(help="live: the server's base URL")] = (
        "http://127.0.0.1:8000"
    ),
    public_url: Annotated[
        str | None, typer.Option(help="live: its PUBLIC_BASE_URL (default: --url)")
    ] = None,
    twilio_listen: Annotated[
        str,
        typer.Option(
            help="live: HOST:PORT of the simulator's Twilio REST API; "
            "start the server with TWILIO_API_BASE=http://HOST:PORT"
        ),
    ] = "127.0.0.1:8765",  # fmt: skip
    speedup: Annotated[float, typer.Option(help="live: scenario seconds per real second")] = 10.0,
    drain: Annotated[
        float, typer.Option(help="live: real seconds to let the queue empty at the end")
    ] = 120.0,
    open_line: Annotated[
        bool, typer.Option(help="live: set the line's hours to every day, all day (test servers)")
    ] = False,
    chat_share: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="live: share of contacts that are web chats, 0 to 1 (drawn with --seed). All "
            "chats come from this machine's address: start the server with CHAT_STARTS_PER_HOUR_IP "
            "and CHAT_MESSAGES_PER_MINUTE_IP above what the run sends (defaults 20 and 40)",
        ),
    ] = 0.0,
    phone_share: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="live: share of volunteers who take calls on their own phone (phone mode: "
            "it rings with a whisper, they press 1), drawn with --seed; the others use the "
            "console's softphone",
        ),
    ] = 0.0,
) -> None:
    """Simulate a day of calls (and, live, web chats) through the routing engine and report."""
    if live:
        mode = "live"
    if mode not in ("fast", "live"):
        raise typer.BadParameter("fast or live", param_hint="--mode")
    if homes not in DISTRIBUTIONS:
        raise typer.BadParameter(f"choose from {', '.join(DISTRIBUTIONS)}", param_hint="--homes")
    if chat_share and mode != "live":
        raise typer.BadParameter(
            "the fast mode plays phone calls only: add --live to simulate chats",
            param_hint="--chat-share",
        )
    if phone_share and mode != "live":
        raise typer.BadParameter(
            "the fast mode has no telephones: add --live", param_hint="--phone-share"
        )
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
                             homes, seed, chat_share)  # fmt: skip
    except (ScenarioError, TraceError) as exc:
        typer.echo(f"simulate: {exc}", err=True)
        raise typer.Exit(2) from None
    if mode == "live":
        if national:
            raise typer.BadParameter("the live server routes by territory", param_hint="--national")
        report = _run_live(scenario, url, public_url, twilio_listen, speedup, drain, open_line,
                           seed, (config.widen_group_s, config.widen_region_s,
                                  config.widen_national_s) if widen else None,
                           phone_share)  # fmt: skip
        typer.echo(table(report, default_territories(), contacts="contacts", requests="requests"))
        typer.echo(live_table(report["live"]))
    else:
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


def _run_live(
    scenario: Scenario,
    url: str,
    public_url: str | None,
    listen: str,
    speedup: float,
    drain: float,
    open_line: bool,
    seed: int,
    widen: tuple[float, float, float] | None,
    phone_share: float = 0.0,
) -> dict:
    """Accounts go to the database of this environment's settings (the server's own)."""
    from callers.web import callers_settings
    from web.settings import Settings

    if speedup <= 0:
        raise typer.BadParameter("must be > 0", param_hint="--speedup")
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise typer.BadParameter("HOST:PORT", param_hint="--twilio-listen")
    settings = Settings()
    server = callers_settings(settings)  # the account the server trusts, fallbacks included
    line = Line(
        base_url=url.rstrip("/"),
        public_base_url=(public_url or url).rstrip("/"),
        account_sid=server.twilio_account_sid,
        auth_token=server.twilio_auth_token,
        number=server.twilio_number,
    )
    options = LiveOptions(seed=seed, speedup=speedup, drain_s=drain, widen=widen,
                          open_line=open_line, phone_share=phone_share)  # fmt: skip
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, transient=True) as progress:
        bar = progress.add_task("contacts simulés (serveur réel)", total=len(scenario.calls))

        def on_progress(done: int, total: int) -> None:
            progress.update(bar, completed=done, total=total)

        return asyncio.run(simulate_live(LiveTarget(line, host, int(port)), scenario, options,
                                         settings=settings, on_progress=on_progress))  # fmt: skip
