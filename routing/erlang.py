"""Erlang C and Erlang A: waiting, abandonment and staffing of a queue served by n agents.

Pure math, no I/O. Times are in seconds, rates per second.

- Erlang C (M/M/n): Poisson arrivals, exponential service, callers never hang up.
- Erlang A (M/M/n+M, Palm 1943; Garnett, Mandelbaum and Reiman, "Designing a call
  center with impatient customers", MSOM 2002): the same with exponential patience.
  Unlike Erlang C it stays meaningful when the load exceeds the staff, which is the
  usual case of a volunteer helpline.

Numerical stability: Erlang B by its recurrence (never a factorial), Erlang A sums in
log space, and the offered-wait density of M/M/n+M (Baccelli and Hébuterne 1981;
Zeltyn and Mandelbaum 2005) integrated numerically for what depends on the wait.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

# Simpson panels per piece of the wait integrals: the integrand is smooth, so this is
# accurate to ~1e-7 relative (checked against the series in the tests), far below what
# staffing needs, and fast enough to staff a whole week.
_PANELS = 1000
_TAIL_LOG_DROP = 50.0  # the integrands are cut where they fall below e^-50 of their peak


def _check(servers: int, arrival_rate: float, aht_s: float) -> None:
    if servers < 0:
        raise ValueError("servers must be >= 0")
    if arrival_rate < 0 or not math.isfinite(arrival_rate):
        raise ValueError("arrival rate must be a finite number >= 0")
    if aht_s <= 0 or not math.isfinite(aht_s):
        raise ValueError("handle time must be a finite number > 0")


def erlang_b(servers: int, load: float) -> float:
    """Blocking probability of n servers offered `load` Erlangs (stable recurrence)."""
    if servers < 0 or load < 0:
        raise ValueError("servers and load must be >= 0")
    b = 1.0
    for k in range(1, servers + 1):
        b = load * b / (k + load * b)
    return b


def erlang_c(servers: int, load: float) -> float:
    """Probability that a call waits (Erlang C); 1 when the load reaches the servers."""
    if servers < 0 or load < 0:
        raise ValueError("servers and load must be >= 0")
    if load == 0:
        return 0.0
    if load >= servers:
        return 1.0
    b = erlang_b(servers, load)
    return servers * b / (servers - load * (1 - b))


@dataclass(frozen=True)
class ErlangC:
    """Steady state of an M/M/n queue."""

    servers: int
    arrival_rate: float  # calls per second
    aht_s: float  # mean handle time

    def __post_init__(self) -> None:
        _check(self.servers, self.arrival_rate, self.aht_s)

    @property
    def load(self) -> float:
        """Offered load in Erlangs (arrival rate × handle time)."""
        return self.arrival_rate * self.aht_s

    @property
    def stable(self) -> bool:
        return self.load < self.servers

    @property
    def occupancy(self) -> float:
        return min(1.0, self.load / self.servers) if self.servers else 1.0

    @property
    def p_wait(self) -> float:
        return erlang_c(self.servers, self.load)

    @property
    def asa_s(self) -> float:
        """Mean wait of all calls (all are answered); infinite when unstable."""
        if not self.stable:
            return math.inf
        return self.p_wait * self.aht_s / (self.servers - self.load)

    def service_level(self, t_s: float) -> float:
        """Share of calls answered within t_s seconds."""
        if not self.stable:
            return 0.0
        return 1 - self.p_wait * math.exp(-(self.servers - self.load) * t_s / self.aht_s)


@dataclass(frozen=True)
class ErlangA:
    """Steady state of an M/M/n+M queue (exponential patience of mean patience_s)."""

    servers: int
    arrival_rate: float
    aht_s: float
    patience_s: float

    def __post_init__(self) -> None:
        _check(self.servers, self.arrival_rate, self.aht_s)
        if self.patience_s <= 0 or not math.isfinite(self.patience_s):
            raise ValueError("patience must be > 0 (use ErlangC for callers who never leave)")
        if self.servers == 0:
            raise ValueError("Erlang A needs at least one agent")

    @property
    def load(self) -> float:
        return self.arrival_rate * self.aht_s

    # The offered wait V (what a caller of infinite patience would wait) has an atom
    # P(V = 0) = 1 - P(wait) and, for x > 0, the density nμ π_n exp(h(x)) with
    # h(x) = (λ/θ)(1 - e^{-θx}) - nμx. Everything below is an integral of it.

    def _h(self, x: float) -> float:
        lam, theta, nmu = self.arrival_rate, 1 / self.patience_s, self.servers / self.aht_s
        return (lam / theta) * -math.expm1(-theta * x) - nmu * x

    def _peak(self) -> float:
        """Where h is largest (h is concave): 0 unless arrivals outpace the servers."""
        lam, theta, nmu = self.arrival_rate, 1 / self.patience_s, self.servers / self.aht_s
        if nmu == 0:
            return math.inf
        return math.log(lam / nmu) / theta if lam > nmu else 0.0

    def _horizon(self) -> float:
        """A time past which exp(h) is negligible (below e^-50 of its peak)."""
        peak = self._peak()
        top = self._h(peak)
        x = max(peak, self.aht_s / max(self.servers, 1), 1e-3) * 2
        while self._h(x) > top - _TAIL_LOG_DROP:
            x *= 2
        return x

    def _integral(self, weight, upper: float | None = None) -> tuple[float, float]:
        """∫ exp(h(x) - top) · weight(x) dx over (0, upper], and top = max h (log scale).

        Two Simpson pieces: the weights change on the patience's scale, the density on
        the service's, and either may be much shorter than the other.
        """
        horizon = self._horizon()
        end = horizon if upper is None else min(upper, horizon)
        top = self._h(self._peak())
        split = min(end, 20 * self.patience_s)
        total = 0.0
        for lo, hi in ((0.0, split), (split, end)):
            if hi <= lo:
                continue
            step = (hi - lo) / _PANELS
            piece = 0.0
            for i in range(_PANELS + 1):
                x = lo + i * step
                coef = 1 if i in (0, _PANELS) else (4 if i % 2 else 2)
                piece += coef * math.exp(self._h(x) - top) * weight(x)
            total += piece * step / 3
        return total, top

    @cached_property
    def _area(self) -> tuple[float, float]:
        return self._integral(lambda x: 1.0)

    @cached_property
    def _density_constant(self) -> float:
        """nμ π_n e^{top}, so that the density is this times exp(h(x) - top)."""
        if self.arrival_rate == 0:
            return 0.0
        # Σ_{j<n} π_j = π_n (1/B - 1), with B the Erlang B of n servers, and
        # π_n (Σ_{j<n} π_j / π_n + nμ ∫ exp(h)) = 1.
        b = erlang_b(self.servers, self.load)
        if b == 0:
            return 0.0
        area, top = self._area
        below = (1 - b) / b
        return 1 / (below * math.exp(-top) * self.aht_s / self.servers + area)

    def _moment(self, weight, upper: float | None = None) -> float:
        """nμ π_n ∫ exp(h(x)) weight(x) dx: the offered-wait density against a weight."""
        const = self._density_constant
        if const == 0:
            return 0.0
        area, _top = self._integral(weight, upper)
        return const * area

    @cached_property
    def p_wait(self) -> float:
        """Probability that a caller has to wait (finds every agent busy)."""
        return min(1.0, self._density_constant * self._area[0])

    @cached_property
    def p_abandon(self) -> float:
        """Share of callers who hang up before being answered."""
        theta = 1 / self.patience_s
        return self._moment(lambda x: -math.expm1(-theta * x))

    @property
    def mean_wait_s(self) -> float:
        """Mean time in queue of all callers, answered or not (E[min(V, patience)])."""
        theta = 1 / self.patience_s
        return self._moment(lambda x: -math.expm1(-theta * x) / theta)

    @property
    def asa_s(self) -> float:
        """Mean wait of answered callers (ASA)."""
        theta = 1 / self.patience_s
        served = 1 - self.p_abandon
        if served <= 0:
            return math.inf
        return self._moment(lambda x: x * math.exp(-theta * x)) / served

    def answered_within(self, t_s: float) -> float:
        """Share of all callers answered within t_s seconds."""
        theta = 1 / self.patience_s
        waited = self._moment(lambda x: math.exp(-theta * x), upper=t_s) if t_s > 0 else 0.0
        return (1 - self.p_wait) + waited

    def service_level(self, t_s: float) -> float:
        """DESIGN.md's service level: answered within T over answered + abandoned (= all)."""
        return self.answered_within(t_s)

    @property
    def occupancy(self) -> float:
        if self.servers == 0:
            return 1.0
        return min(1.0, self.load * (1 - self.p_abandon) / self.servers)


def erlang_a_series(
    servers: int, arrival_rate: float, aht_s: float, patience_s: float
) -> tuple[float, float]:
    """(P(wait), P(abandon)) of M/M/n+M from the birth-death chain, summed in log space.

    An independent route to the same numbers as ``ErlangA`` (which integrates the
    offered-wait density); P(abandon) = θ E[queue] / λ by Little's law.
    """
    _check(servers, arrival_rate, aht_s)
    if arrival_rate == 0:
        return 0.0, 0.0
    lam, mu, theta = arrival_rate, 1 / aht_s, 1 / patience_s
    # log of π_{n+k} / π_n for k = 0, 1, ...: Π λ / (nμ + iθ)
    logs, log_r, k, top = [0.0], 0.0, 0, 0.0
    while True:
        k += 1
        log_r += math.log(lam) - math.log(servers * mu + k * theta)
        logs.append(log_r)
        top = max(top, log_r)
        if lam < servers * mu + k * theta and log_r < top - 60:
            break
    q_sum = sum(math.exp(v - top) for v in logs)
    q_len = sum(i * math.exp(v - top) for i, v in enumerate(logs))
    b = erlang_b(servers, lam * aht_s)
    if b == 0:
        return 0.0, 0.0
    below = (1 - b) / b  # Σ_{j<n} π_j / π_n
    log_below = math.log(below) if below > 0 else -math.inf
    # P(wait) = q / (below + q) with q = e^{top} q_sum
    log_q = top + math.log(q_sum)
    p_wait = 1 / (1 + math.exp(log_below - log_q)) if log_below > -math.inf else 1.0
    mean_queue = p_wait * q_len / q_sum
    return p_wait, theta * mean_queue / lam


def servers_needed(
    arrival_rate: float,
    aht_s: float,
    *,
    target_sl: float,
    t_s: float,
    patience_s: float | None = None,
    max_servers: int = 10_000,
) -> int:
    """Fewest agents reaching the target service level (Erlang A with a patience, else C).

    Zero arrivals need zero agents. Raises ValueError if max_servers is not enough.
    """
    if not 0 < target_sl < 1:
        raise ValueError("target service level must be between 0 and 1 (exclusive)")
    if t_s < 0:
        raise ValueError("service level threshold must be >= 0")
    _check(0, arrival_rate, aht_s)
    if arrival_rate == 0:
        return 0
    load = arrival_rate * aht_s
    n = math.floor(load) + 1  # Erlang C needs more agents than the load
    while ErlangC(n, arrival_rate, aht_s).service_level(t_s) < target_sl:
        n += 1
        if n > max_servers:
            raise ValueError(f"more than {max_servers} agents would be needed")
    if patience_s is None:
        return n
    # Erlang A never needs more than Erlang C (callers who leave lighten the load),
    # and its service level grows with the staff: bisect below Erlang C's answer.
    lo, hi = 0, n  # lo fails (or is zero agents), hi meets the target
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ErlangA(mid, arrival_rate, aht_s, patience_s).service_level(t_s) >= target_sl:
            hi = mid
        else:
            lo = mid
    return hi
