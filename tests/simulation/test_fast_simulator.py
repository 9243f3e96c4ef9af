"""The fast simulator drives the real engine (real Redis, manual clock) through whole days."""

from __future__ import annotations

import heapq

from routing.config import RoutingConfig
from routing.erlang import ErlangC
from web.simulation.fast import SimOptions, SimResult
from web.simulation.report import build, table
from web.simulation.runner import national_config, simulate
from web.simulation.scenario import Scenario, SimCall, poisson

INSTANT = SimOptions(seed=1, accept_delay_s=(0, 0), wrapup_s=(0, 0))


def fcfs_waits_ms(scenario: Scenario, servers: int) -> dict[str, int]:
    """Waits of a first-come-first-served queue with n servers, computed by hand (ms)."""
    free = [0] * servers
    waits = {}
    for call in sorted(scenario.calls, key=lambda c: c.arrival_s):
        arrival = int(round(call.arrival_s * 1000))
        start = max(heapq.heappop(free), arrival)
        waits[call.id] = start - arrival
        heapq.heappush(free, start + int(round(call.service_s * 1000)))
    return waits


async def test_engine_without_territory_is_exactly_a_fcfs_multi_server_queue(redis_url: str):
    """Rings all open, instant volunteers, nobody hangs up: every wait equals M/M/c FCFS's."""
    scenario = poisson(seed=7, calls_per_hour=100, aht_s=150, volunteers_on_duty=5, hours=3,
                       start_s=9 * 3600)  # fmt: skip
    result = await simulate(redis_url, scenario, national_config(), INSTANT)
    expected = fcfs_waits_ms(scenario, 5)
    got = {r.id: r.wait_ms for r in result.records}
    assert len(got) == len(scenario.calls) > 200
    assert all(r.outcome == "answered" for r in result.records)
    assert got == expected
    assert sum(1 for w in got.values() if w > 0) > 20  # the queue did form


async def test_simulated_probability_of_waiting_is_close_to_erlang_c(redis_url: str):
    """A loose check against the formula (the bench measures it closely over ~27,000 calls).

    Seeded, so deterministic; 10 points is far outside the sampling noise of ~1,200
    calls at this load (about 3 points) but would catch a broken simulator or engine.
    """
    servers, load, aht = 6, 4.2, 120.0
    scenario = poisson(seed=11, calls_per_hour=load / aht * 3600, aht_s=aht,
                       volunteers_on_duty=servers, hours=10, start_s=6 * 3600)  # fmt: skip
    result = await simulate(redis_url, scenario, national_config(), INSTANT)
    answered = [r for r in result.records if r.outcome == "answered"]
    p_sim = sum(1 for r in answered if r.wait_ms) / len(answered)
    erlang = ErlangC(servers, load / aht, aht)
    assert abs(p_sim - erlang.p_wait) <= 0.10
    mean_sim = sum(r.wait_ms for r in answered) / len(answered) / 1000
    assert 0.5 * erlang.asa_s <= mean_sim <= 1.5 * erlang.asa_s


def _counts_match_records(result: SimResult) -> None:
    by_outcome = {o: 0 for o in ("answered", "abandoned", "closed", "waiting")}
    for r in result.records:
        by_outcome[r.outcome] += 1
    c = result.counts
    assert by_outcome["waiting"] == 0  # every call ended
    assert c.offered == len(result.records)
    assert c.answered == by_outcome["answered"]
    assert c.abandoned == by_outcome["abandoned"]
    assert c.closed == by_outcome["closed"]
    assert c.wait_ms == sum(r.wait_ms for r in result.records if r.outcome == "answered")


async def test_impatient_callers_and_territory_counters_agree_with_records(redis_url: str):
    """With hang-ups, human delays and the default widening, the engine's counters and
    the simulator's own records tell the same story, and territorial rings line up."""
    scenario = poisson(seed=3, calls_per_hour=90, aht_s=200, volunteers_on_duty=4, hours=4,
                       patience_s=90, start_s=10 * 3600)  # fmt: skip
    result = await simulate(redis_url, scenario, RoutingConfig(), SimOptions(seed=2))
    _counts_match_records(result)
    assert result.counts.abandoned > 0 and result.counts.answered > 0
    rings = [result.counts.answered_ring0, result.counts.answered_ring1,
             result.counts.answered_ring2, result.counts.answered_ring3]  # fmt: skip
    from_records = [sum(1 for r in result.records if r.ring == i) for i in range(4)]
    assert rings == from_records  # the engine's rings are the true ones when it sees territory
    report = build(result)
    assert report["metrics"]["offered"] == len(scenario.calls)
    assert "Service level" in table(report)


def _one_departement(n_calls: int, dept: str, volunteers: list[str]) -> Scenario:
    calls = [SimCall(id=f"k{i}", arrival_s=9 * 3600 + 400 * i, departement=dept,
                     patience_s=None, service_s=60) for i in range(n_calls)]  # fmt: skip
    staffing = [len(volunteers) if 18 <= s < 24 else 0 for s in range(48)]
    return Scenario("one département", calls, staffing, volunteers)


async def test_local_volunteer_answers_locally_and_blind_mode_ignores_territory(redis_url: str):
    """Calls from the 05 with one volunteer from the 05 and one from the 59 on duty.

    The territorial engine gives every call to the local volunteer; the territory-blind
    baseline spreads them by longest idle, and the report still measures true rings.
    """
    scenario = _one_departement(12, "05", ["05", "59"])
    local = build(await simulate(redis_url, scenario, RoutingConfig(), SimOptions(seed=1)))
    assert local["territory"]["match"]["departement"] == 1.0
    assert local["territory"]["local_among_matchable"] == 1.0
    assert local["territory"]["locally_matchable_answered"] == 12
    blind_options = SimOptions(seed=1, territory_blind=True)
    blind = build(await simulate(redis_url, scenario, RoutingConfig(), blind_options))
    assert blind["metrics"]["match_departement"] == 1.0  # the engine saw one territory...
    assert 0 < blind["territory"]["match"]["departement"] < 1  # ...the truth is mixed
    assert blind["territory"]["match"]["national"] > 0


async def test_same_seed_same_day(redis_url: str):
    scenario = poisson(seed=5, calls_per_hour=60, aht_s=200, volunteers_on_duty=3, hours=2,
                       patience_s=120, start_s=14 * 3600)  # fmt: skip
    a = await simulate(redis_url, scenario, RoutingConfig(), SimOptions(seed=9))
    b = await simulate(redis_url, scenario, RoutingConfig(), SimOptions(seed=9))
    assert [(r.id, r.outcome, r.wait_ms, r.volunteer) for r in a.records] == [
        (r.id, r.outcome, r.wait_ms, r.volunteer) for r in b.records
    ]
