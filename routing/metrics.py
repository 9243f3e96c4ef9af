"""The metrics of DESIGN.md, computed one way from counts.

The live counters in Redis and the durable history in SQL both reduce to
``Counts``; dashboard, reports and benchmarks all call ``compute`` on them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from routing.models import Channel

# Counted per channel only ('offered_voice'...; one HINCRBY less per event): totals are sums.
_PER_CHANNEL = ("offered", "answered", "abandoned")


@dataclass
class Counts:
    """Additive counts over a period (a day, a 15-minute interval, a report's filter)."""

    offered: int = 0
    answered: int = 0
    answered_within_sl: int = 0
    wait_ms: int = 0  # total wait of answered tasks
    abandoned: int = 0  # left before anyone answered (after an answer: answered only)
    abandoned_short: int = 0  # abandoned before short_abandon_s
    answered_ring0: int = 0  # département
    answered_ring1: int = 0  # group
    answered_ring2: int = 0  # région
    answered_ring3: int = 0  # national
    completed: int = 0
    handle_ms: int = 0  # answered → completed, wrap-up excluded
    wrapup_ms: int = 0
    callback: int = 0
    closed: int = 0
    transferred: int = 0
    staffed_ms: int = 0  # volunteer time logged in and not paused, or handling (occupancy's base)
    occupied_ms: int = 0  # volunteer time holding at least one task, wrap-up included

    @classmethod
    def from_hash(cls, h: dict[str, str]) -> Counts:
        """From a live counter hash: offered, answered and abandoned summed over channels."""
        names = {f.name for f in fields(cls)}.difference(_PER_CHANNEL)
        counts = cls(**{k: int(v) for k, v in h.items() if k in names})
        for total in _PER_CHANNEL:
            setattr(counts, total, sum(int(h.get(f"{total}_{ch.value}", 0)) for ch in Channel))
        return counts

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)}
        )


@dataclass(frozen=True)
class Metrics:
    """Ratios are in [0, 1] or None when there is nothing to divide by."""

    offered: int
    answered: int
    abandoned: int
    service_level: float | None  # answered within T / (answered + abandoned - short abandons)
    service_level_answered: float | None  # answered within T / answered (Asterisk's SL)
    asa_s: float | None  # mean wait of answered tasks
    abandonment_rate: float | None  # abandoned / offered
    match_departement: float | None  # share of answered tasks answered at each ring
    match_group: float | None
    match_region: float | None
    match_national: float | None
    handle_time_s: float | None  # mean, wrap-up excluded
    wrapup_time_s: float | None
    occupancy: float | None = None  # time handling / time logged in and not paused

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def compute(c: Counts) -> Metrics:
    """The DESIGN.md metrics of a period's counts."""
    sl_base = c.answered + c.abandoned - c.abandoned_short
    asa = _ratio(c.wait_ms, c.answered)
    handle = _ratio(c.handle_ms, c.completed)
    wrapup = _ratio(c.wrapup_ms, c.completed)
    return Metrics(
        offered=c.offered,
        answered=c.answered,
        abandoned=c.abandoned,
        service_level=_ratio(c.answered_within_sl, sl_base),
        service_level_answered=_ratio(c.answered_within_sl, c.answered),
        asa_s=None if asa is None else asa / 1000,
        abandonment_rate=_ratio(c.abandoned, c.offered),
        match_departement=_ratio(c.answered_ring0, c.answered),
        match_group=_ratio(c.answered_ring1, c.answered),
        match_region=_ratio(c.answered_ring2, c.answered),
        match_national=_ratio(c.answered_ring3, c.answered),
        handle_time_s=None if handle is None else handle / 1000,
        wrapup_time_s=None if wrapup is None else wrapup / 1000,
        occupancy=_ratio(c.occupied_ms, c.staffed_ms),
    )
