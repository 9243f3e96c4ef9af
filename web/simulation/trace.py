"""Reading a call-center trace in the shared CSV format (the "Anonymous Bank" columns).

From each day we keep what a simulation needs: when calls reached the queue, how long
callers who hung up were willing to wait, how long service took, and how many agents
were working in each half hour.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

HALF_HOUR_S = 1800
# A copy of the shared reference trace ships with the project (gzip: 0.6 MB instead of
# 2.6), so neither the app's forecast nor the simulator reads outside the package.
DEFAULT_TRACE_FILE = Path(__file__).resolve().parent / "data" / "anonymous-bank-days-01-15.csv.gz"
REQUIRED_COLUMNS = {
    "customer_id", "priority", "date", "vru_exit", "q_start", "q_time", "outcome",
    "ser_start", "ser_exit", "ser_time", "server",
}  # fmt: skip


class TraceError(ValueError):
    """The trace file is missing, malformed, or lacks what was asked."""


@dataclass(frozen=True)
class TraceCall:
    """One call that reached the queue (or an agent directly)."""

    arrival_s: int  # seconds since the day's midnight
    answered: bool  # served by an agent in the trace
    wait_s: int  # time in queue in the trace (for a hang-up: the caller's patience)
    service_s: int  # 0 when not served
    priority: int
    customer: str  # "" when unidentified


@dataclass
class TraceDay:
    date: str
    calls: list[TraceCall]
    agents_per_half_hour: list[int] = field(default_factory=lambda: [0] * 48)

    @property
    def service_times(self) -> list[int]:
        return [c.service_s for c in self.calls if c.answered]


def _seconds(text: str) -> int:
    h, m, s = (int(p) for p in text.split(":"))
    return h * 3600 + m * 60 + s


def load_trace(path: Path | str = DEFAULT_TRACE_FILE) -> dict[str, TraceDay]:
    """Every day of a trace, keyed by date (YYYY-MM-DD), calls in arrival order.

    Calls that hung up in the IVR (never queued) and PHANTOM rows are left out: they
    never reached an agent's queue, so routing cannot change anything for them.
    """
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"trace file not found: {path}")
    days: dict[str, TraceDay] = {}
    agents: dict[str, list[set[str]]] = defaultdict(lambda: [set() for _ in range(48)])
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        missing = REQUIRED_COLUMNS - set(reader.fieldnames or ())
        if missing:
            raise TraceError(f"trace lacks columns: {', '.join(sorted(missing))}")
        for line, row in enumerate(reader, start=2):
            try:
                call = _parse(row)
            except (KeyError, ValueError) as exc:
                raise TraceError(f"line {line}: {exc}") from None
            date = row["date"]
            day = days.setdefault(date, TraceDay(date, []))
            if call is None:
                continue
            day.calls.append(call)
            if call.answered:
                start, end = _seconds(row["ser_start"]), _seconds(row["ser_exit"])
                if end < start:  # served across midnight
                    end = 24 * 3600 - 1
                for slot in range(start // HALF_HOUR_S, min(end // HALF_HOUR_S, 47) + 1):
                    agents[date][slot].add(row["server"])
    for date, day in days.items():
        day.calls.sort(key=lambda c: c.arrival_s)
        day.agents_per_half_hour = [len(s) for s in agents[date]]
    return dict(sorted(days.items()))


def _parse(row: dict[str, str]) -> TraceCall | None:
    outcome = row["outcome"]
    queued = row["q_start"] != "0:00:00"
    if outcome == "PHANTOM" or (outcome == "HANG" and not queued):
        return None
    if outcome not in {"AGENT", "HANG"}:
        raise ValueError(f"unknown outcome {outcome!r}")
    answered = outcome == "AGENT"
    arrival = _seconds(row["q_start"] if queued else row["vru_exit"])
    customer = row["customer_id"].strip()
    return TraceCall(
        arrival_s=arrival,
        answered=answered,
        wait_s=int(row["q_time"]),
        service_s=max(1, int(row["ser_time"])) if answered else 0,
        priority=int(row["priority"] or 0),
        customer="" if customer in {"", "0"} else customer,
    )


class Patience:
    """The callers' patience, estimated from a trace by Kaplan-Meier.

    A hang-up after w seconds in queue is an observed patience; an answered call that
    waited w seconds only says the patience was longer (censored), which is why the
    plain average of hang-up times would underestimate it (Brown et al. 2005, §6).
    """

    def __init__(self, calls: list[TraceCall]) -> None:
        events: dict[int, list[int]] = defaultdict(lambda: [0, 0])  # t -> [hang-ups, censored]
        for c in calls:
            events[c.wait_s][0 if not c.answered else 1] += 1
        at_risk = len(calls)
        survival = 1.0
        self.times: list[int] = []
        self.survival: list[float] = []  # S(t) just after t
        for t in sorted(events):
            hangs, censored = events[t]
            if hangs and at_risk:
                survival *= 1 - hangs / at_risk
                self.times.append(t)
                self.survival.append(survival)
            at_risk -= hangs + censored
        if not self.times:
            raise TraceError("no caller hung up in queue: patience cannot be estimated")

    def survival_at(self, t: float) -> float:
        """P(patience > t)."""
        i = bisect.bisect_right(self.times, t)
        return 1.0 if i == 0 else self.survival[i - 1]

    def draw_beyond(self, waited_s: float, rng: random.Random) -> float | None:
        """A patience longer than waited_s (None: beyond anything observed, never hangs up)."""
        target = rng.random() * self.survival_at(waited_s)
        # first time whose survival drops to the target or below (survival decreases)
        lo, hi = bisect.bisect_right(self.times, waited_s), len(self.times)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.survival[mid] <= target:
                hi = mid
            else:
                lo = mid + 1
        return float(self.times[lo]) if lo < len(self.times) else None

    def mean(self, horizon_s: float = 3600) -> float:
        """Mean patience restricted to [0, horizon_s] (area under the survival curve)."""
        area, prev_t, prev_s = 0.0, 0.0, 1.0
        for t, s in zip(self.times, self.survival, strict=True):
            if t >= horizon_s:
                break
            area += (t - prev_t) * prev_s
            prev_t, prev_s = t, s
        return area + (horizon_s - prev_t) * prev_s


def daily_counts(days: dict[str, TraceDay], shift_days: int = 1) -> dict[date, list[int]]:
    """Each trace day's 48 half-hour arrival counts, dated for a French week.

    The trace's working week runs Sunday to Thursday (an Israeli bank): shifting by one
    day puts it on Monday to Friday, with the quiet Friday and Saturday on the weekend.
    """
    out: dict[date, list[int]] = {}
    for key, day in days.items():
        counts = [0] * 48
        for c in day.calls:
            counts[min(47, c.arrival_s // HALF_HOUR_S)] += 1
        out[date.fromisoformat(key) + timedelta(days=shift_days)] = counts
    return out
