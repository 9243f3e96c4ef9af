"""Erlang C and Erlang A against published worked examples and exact identities."""

from __future__ import annotations

import math

import pytest

from routing.erlang import ErlangA, ErlangC, erlang_a_series, erlang_b, erlang_c, servers_needed


def test_erlang_c_classic_worked_example() -> None:
    """The classic worked example of the Erlang C formula.

    Source: "The Erlang-C formula" (Westbay Engineers / mitan.co.uk, reproduced in the
    Wikipedia article "Erlang (unit)", section "Erlang C"): 360 calls per half hour,
    4-minute calls, 55 agents, 15-second target. Published: traffic 48 Erlangs,
    occupancy 87.3 %, probability of waiting 0.2387 (23.9 %), average speed of answer
    8.2 s, service level 84.6 %.
    """
    q = ErlangC(servers=55, arrival_rate=360 / 1800, aht_s=240)
    assert q.load == pytest.approx(48)
    assert q.occupancy == pytest.approx(0.873, abs=5e-4)
    assert q.p_wait == pytest.approx(0.2387, abs=5e-5)
    assert q.asa_s == pytest.approx(8.2, abs=0.05)
    assert q.service_level(15) == pytest.approx(0.846, abs=5e-4)


def test_erlang_c_call_centre_helper_example() -> None:
    """Call Centre Helper, "Erlang C formula – made simple with an Erlang calculator".

    100 calls in 30 minutes, 180 s handle time, target 80 % answered in 20 s:
    10 Erlangs; with 11 agents the probability of waiting is 68.21 % and the service
    level 39 %; 14 agents are the first to reach 80 % (88.8 %; 13 agents give 79.6 %).
    """
    rate = 100 / 1800
    assert ErlangC(11, rate, 180).p_wait == pytest.approx(0.6821, abs=5e-5)
    assert ErlangC(11, rate, 180).service_level(20) == pytest.approx(0.390, abs=5e-4)
    assert ErlangC(13, rate, 180).service_level(20) == pytest.approx(0.796, abs=5e-4)
    assert ErlangC(14, rate, 180).service_level(20) == pytest.approx(0.888, abs=5e-4)
    assert servers_needed(rate, 180, target_sl=0.8, t_s=20) == 14


def test_erlang_b_textbook_value_and_recurrence_stability() -> None:
    """Erlang B: 2 Erlangs on 2 lines block 40 % (exact: (a²/2)/(1 + a + a²/2) = 2/5)."""
    assert erlang_b(2, 2.0) == pytest.approx(0.4, abs=1e-15)
    # 5,000 servers would overflow a factorial; the recurrence stays finite and sane.
    b = erlang_b(5000, 4900.0)
    assert 0 < b < 0.01
    assert 0 < erlang_c(5000, 4900.0) < 1


def test_erlang_c_edges() -> None:
    assert erlang_c(10, 0.0) == 0.0
    assert erlang_c(10, 10.0) == 1.0  # unstable: everyone waits
    assert ErlangC(10, 0.1, 100).asa_s == math.inf
    assert ErlangC(10, 0.1, 100).service_level(20) == 0.0
    with pytest.raises(ValueError):
        ErlangC(10, 0.1, 0)
    with pytest.raises(ValueError):
        ErlangC(-1, 0.1, 10)


@pytest.mark.parametrize(
    ("servers", "rate", "aht", "patience"),
    [(10, 0.04, 200, 200), (10, 0.06, 200, 100), (55, 0.2, 240, 120), (3, 0.1, 180, 60)],
)
def test_erlang_a_two_derivations_agree(servers: int, rate: float, aht: float, patience: float):
    """The offered-wait density (integrated) and the birth-death chain (summed) agree.

    Two independent routes to P(wait) and P(abandon) of M/M/n+M (Garnett, Mandelbaum
    and Reiman 2002, section 3; Zeltyn and Mandelbaum 2005 for the density).
    """
    a = ErlangA(servers, rate, aht, patience)
    p_wait, p_abandon = erlang_a_series(servers, rate, aht, patience)
    assert a.p_wait == pytest.approx(p_wait, rel=1e-6)
    assert a.p_abandon == pytest.approx(p_abandon, rel=1e-6)
    # Little's law on the queue: abandonment rate = θ × mean queue = θ λ × mean wait.
    assert a.p_abandon == pytest.approx(a.mean_wait_s / patience, rel=1e-8)


def test_erlang_a_patience_equal_to_service_is_poisson() -> None:
    """With θ = μ the number in system of M/M/n+M is Poisson(λ/μ), as in M/M/∞.

    (Mandelbaum and Zeltyn, "The Palm/Erlang-A queue, with applications to call
    centers", 2007, remark on the case θ = μ.) So P(wait) = P(Poisson(a) ≥ n).
    """
    load, n = 8.0, 10
    tail = 1 - sum(math.exp(-load) * load**j / math.factorial(j) for j in range(n))
    a = ErlangA(n, load / 200, 200, patience_s=200)
    assert a.p_wait == pytest.approx(tail, rel=1e-6)
    assert tail == pytest.approx(0.283376, abs=1e-6)


def test_erlang_a_tends_to_erlang_c_when_nobody_leaves() -> None:
    c = ErlangC(10, 0.04, 200)
    a = ErlangA(10, 0.04, 200, patience_s=1e8)
    assert a.p_wait == pytest.approx(c.p_wait, rel=1e-5)
    assert a.asa_s == pytest.approx(c.asa_s, rel=1e-4)
    assert a.service_level(20) == pytest.approx(c.service_level(20), rel=1e-5)
    assert a.p_abandon < 1e-5


def test_erlang_a_overloaded_single_agent_serves_its_capacity() -> None:
    """One agent, 1 call/s of 100 s: the agent answers μ/λ = 1 % of callers, the rest leave."""
    a = ErlangA(1, 1.0, 100, patience_s=1e4)
    assert a.p_abandon == pytest.approx(0.99, abs=1e-9)
    assert a.occupancy == pytest.approx(1.0, abs=1e-9)


def test_erlang_a_needs_fewer_agents_than_erlang_c() -> None:
    rate = 100 / 1800
    with_abandon = servers_needed(rate, 180, target_sl=0.8, t_s=20, patience_s=120)
    assert with_abandon == 12
    assert ErlangA(11, rate, 180, 120).service_level(20) < 0.8
    assert ErlangA(12, rate, 180, 120).service_level(20) >= 0.8
    assert servers_needed(0.0, 180, target_sl=0.8, t_s=20) == 0
    with pytest.raises(ValueError):
        servers_needed(rate, 180, target_sl=1.0, t_s=20)
