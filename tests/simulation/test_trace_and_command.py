"""The trace reader, scenarios built from it, and the ``permanence simulate`` command."""

from __future__ import annotations

import json
import random
from datetime import date
from pathlib import Path

import pytest
from typer.testing import CliRunner

from web.cli import cli
from web.simulation.scenario import ScenarioError, from_trace, poisson
from web.simulation.trace import (
    DEFAULT_TRACE_FILE,
    Patience,
    TraceCall,
    TraceDay,
    TraceError,
    daily_counts,
    load_trace,
)


@pytest.fixture(scope="module")
def trace():
    return load_trace(DEFAULT_TRACE_FILE)


def test_trace_days_calls_and_agents(trace) -> None:
    assert len(trace) == 15
    day = trace["2010-08-02"]
    # 2,363 rows that day; IVR hang-ups and PHANTOM rows never reached the queue.
    assert len(day.calls) == 2217
    assert all(a.arrival_s <= b.arrival_s for a, b in zip(day.calls, day.calls[1:], strict=False))
    assert max(day.agents_per_half_hour) == 12
    answered = [c for c in day.calls if c.answered]
    assert 180 < sum(c.service_s for c in answered) / len(answered) < 260


def test_patience_kaplan_meier_counts_answered_calls_as_censored() -> None:
    calls = [TraceCall(0, False, 10, 0, 0, ""), TraceCall(0, True, 20, 100, 0, ""),
             TraceCall(0, False, 30, 0, 0, ""), TraceCall(0, True, 40, 100, 0, "")]  # fmt: skip
    p = Patience(calls)
    # at 10: 1 of 4 hangs up -> 0.75; at 30: 1 of the 2 still at risk -> 0.375
    assert p.survival_at(5) == 1.0
    assert p.survival_at(10) == pytest.approx(0.75)
    assert p.survival_at(35) == pytest.approx(0.375)
    rng = random.Random(1)
    draws = [p.draw_beyond(20, rng) for _ in range(200)]
    assert all(d is None or d > 20 for d in draws)
    assert None in draws and 30.0 in draws  # beyond the last hang-up: never hangs up


def test_bad_trace_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="not found"):
        load_trace(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("date,outcome\n2010-08-01,AGENT\n", encoding="utf-8")
    with pytest.raises(TraceError, match="lacks columns"):
        load_trace(bad)


def test_overlaid_days_add_calls_and_staffing(trace) -> None:
    days = [trace["2010-08-02"], trace["2010-08-04"]]
    patience = Patience([c for d in days for c in d.calls])
    one = from_trace(days[:1], patience, seed=4)
    both = from_trace(days, patience, seed=4)
    assert len(both.calls) == len(days[0].calls) + len(days[1].calls)
    pairs = zip(days[0].agents_per_half_hour, days[1].agents_per_half_hour, strict=True)
    assert both.staffing == [a + b for a, b in pairs]
    assert len(both.volunteer_departements) == max(both.staffing)
    assert from_trace(days[:1], patience, seed=4).calls == one.calls  # same seed, same day
    with pytest.raises(ScenarioError):
        poisson(seed=1, calls_per_hour=0, aht_s=100, volunteers_on_duty=1, hours=1)


def test_a_trace_customer_id_never_puts_a_separator_in_the_caller_key() -> None:
    """The engine refuses a '|' in a caller key; a trace's customer ids are free text."""
    calls = [
        TraceCall(10, True, 5, 100, 0, "a|b"),
        TraceCall(20, True, 5, 100, 0, "a|b"),
        TraceCall(30, True, 5, 100, 0, "a%7Cb"),
        TraceCall(40, False, 9, 0, 0, ""),  # a hang-up: patience needs one
    ]
    day = TraceDay("2010-08-02", calls, [1] * 48)
    keys = [c.caller_key for c in from_trace([day], Patience(calls), seed=1).calls]
    assert all("|" not in k for k in keys)
    assert keys[0] == keys[1] != keys[2]  # the same caller twice; another one stays apart


def test_daily_counts_put_the_trace_week_on_a_french_week(trace) -> None:
    daily = daily_counts(trace)
    first = min(daily)
    assert first == date(2010, 8, 2) and first.weekday() == 0  # the trace's Sunday -> Monday
    assert sum(daily[first]) == len(trace["2010-08-01"].calls)
    quiet = [d for d in daily if d.weekday() == 5]  # the trace's Fridays: half days
    assert all(sum(daily[d]) < 1000 for d in quiet)


def test_simulate_command_prints_a_table_and_writes_json(redis_url: str, tmp_path: Path):
    out = tmp_path / "report.json"
    result = CliRunner().invoke(cli, [
        "simulate", "--poisson", "40", "--volunteers", "3", "--hours", "1",
        "--patience", "120", "--seed", "2", "--redis-url", redis_url, "--json", str(out),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Service level" in result.output and "Région" in result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["metrics"]["offered"] == report["calls"] > 10


def test_simulate_command_refuses_bad_input(redis_url: str) -> None:
    runner = CliRunner()
    bad_day = runner.invoke(cli, ["simulate", "--day", "1999-01-01", "--redis-url", redis_url])
    assert bad_day.exit_code == 2 and "unknown trace day" in bad_day.output
    bad_widen = runner.invoke(cli, ["simulate", "--widen", "10,x", "--redis-url", redis_url])
    assert bad_widen.exit_code == 2
    unknown_mode = runner.invoke(cli, ["simulate", "--mode", "warp"])
    assert unknown_mode.exit_code == 2
    blind_live = runner.invoke(cli, ["simulate", "--live", "--national", "--poisson", "10",
                                     "--volunteers", "1", "--hours", "1"])  # fmt: skip
    assert blind_live.exit_code == 2 and "territory" in blind_live.output
