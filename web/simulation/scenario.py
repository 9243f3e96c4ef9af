"""What a simulated day is made of: callers (when, from where, how patient, how long,
by phone or web chat) and volunteers (from where, how many on duty in each half hour).

Scenarios come from a trace (one or several of its days overlaid on one day, for a
bigger line) or from a synthetic Poisson load. Everything random is drawn from seeded
generators, so the same seed gives the same day. Which contacts are chats
(``chat_share``) is drawn from a generator of its own: a share of 0 leaves the calls
exactly as they were without it.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import quote

from routing.territory import Territories, load_territories
from web.simulation.trace import HALF_HOUR_S, Patience, TraceDay, TraceError

DAY_S = 24 * 3600

# Départements of France's largest cities (INSEE 2019 municipal populations above
# ~150,000): where volunteers concentrate when recruited "in the cities".
CITY_DEPARTEMENTS = (
    "75", "13", "69", "31", "06", "44", "67", "34", "33", "59", "35", "51", "42", "83",
    "38", "21", "49", "37", "63", "76",
)  # fmt: skip
DISTRIBUTIONS = ("population", "cities", "uniform")
CHANNELS = ("voice", "chat")  # routing.models.Channel values a caller can start


class ScenarioError(ValueError):
    """A scenario's parameters make no sense."""


@dataclass(frozen=True)
class SimCall:
    """One caller of the simulated day: a phone call, or a web chat (``channel``)."""

    id: str
    arrival_s: float  # since the day's start
    departement: str
    patience_s: float | None  # None: waits as long as it takes
    service_s: float
    priority: int = 0
    caller_key: str = ""
    channel: str = "voice"  # "voice" | "chat"


@dataclass
class Scenario:
    name: str
    calls: list[SimCall]
    staffing: list[int]  # volunteers on duty in each half hour of the day (48 entries)
    volunteer_departements: list[str]  # home of each volunteer of the pool
    notes: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.staffing) != 48:
            raise ScenarioError("staffing needs one count per half hour (48)")
        if any(n < 0 for n in self.staffing):
            raise ScenarioError("staffing counts must be >= 0")
        if max(self.staffing, default=0) > len(self.volunteer_departements):
            raise ScenarioError("more volunteers on duty than in the pool")


def departement_weights(kind: str, territories: Territories | None = None) -> dict[str, float]:
    """Weights of each département for drawing homes: by population, cities or uniform."""
    terr = territories or load_territories()
    deps = terr.departements
    if kind == "population":
        return {code: float(d.population) for code, d in deps.items()}
    if kind == "cities":
        return {code: float(deps[code].population) for code in CITY_DEPARTEMENTS}
    if kind == "uniform":
        return {code: 1.0 for code in deps}
    raise ScenarioError(f"unknown distribution {kind!r} (choose from {', '.join(DISTRIBUTIONS)})")


def draw_departements(weights: dict[str, float], n: int, rng: random.Random) -> list[str]:
    codes = sorted(weights)
    return rng.choices(codes, weights=[weights[c] for c in codes], k=n)


def draw_channels(calls: Sequence[SimCall], chat_share: float, seed: int) -> list[SimCall]:
    """The same contacts, each a web chat with probability ``chat_share``.

    Drawn in the given order from a generator of its own (seeded from ``seed``), so a
    scenario's other draws do not move when the share changes, and the same seed picks
    the same chats.
    """
    if not 0 <= chat_share <= 1:
        raise ScenarioError("the chat share must be between 0 and 1")
    if chat_share == 0:
        return list(calls)
    rng = random.Random(f"chat-share:{seed}")
    return [replace(c, channel="chat") if rng.random() < chat_share else c for c in calls]


def _volunteer_pool(staffing: Sequence[int], kind: str, rng: random.Random) -> list[str]:
    return draw_departements(departement_weights(kind), max(staffing, default=0), rng)


def from_trace(
    days: Sequence[TraceDay],
    patience: Patience,
    *,
    seed: int,
    volunteers: str = "population",
    staffing_factor: float = 1.0,
    use_priority: bool = False,
    returning_callers: bool = True,
    chat_share: float = 0.0,
) -> Scenario:
    """One simulated day made of these trace days overlaid (a line that many times bigger).

    Arrivals, service times and hang-ups are the trace's; callers who were answered get a
    patience drawn by Kaplan-Meier beyond the wait they had. Callers who hung up get a
    service time drawn from the same day's answered calls, should they be answered now.
    Volunteers on duty per half hour: the distinct agents who worked in it, summed over
    the overlaid days, times ``staffing_factor``. A ``chat_share`` of the contacts are
    web chats (with the trace's times: the trace has calls only).
    """
    if not days:
        raise ScenarioError("no trace day given")
    if staffing_factor <= 0:
        raise ScenarioError("staffing factor must be > 0")
    rng = random.Random(seed)
    callers = departement_weights("population")
    calls: list[SimCall] = []
    staffing = [0] * 48
    homes: dict[str, str] = {}
    for d_index, day in enumerate(days):
        services = day.service_times
        if not services:
            raise TraceError(f"{day.date}: no answered call to take service times from")
        for slot, n in enumerate(day.agents_per_half_hour):
            staffing[slot] += n
        for i, c in enumerate(day.calls):
            # Quoted: the engine refuses a '|' in a caller key, and a trace's ids are free text.
            key = f"{day.date}:{quote(c.customer)}" if returning_callers and c.customer else ""
            if key and key not in homes:
                homes[key] = draw_departements(callers, 1, rng)[0]
            dept = homes[key] if key else draw_departements(callers, 1, rng)[0]
            if c.answered:
                patience_s = patience.draw_beyond(c.wait_s, rng)
                service = float(c.service_s)
            else:
                patience_s = float(c.wait_s)
                service = float(rng.choice(services))
            calls.append(
                SimCall(
                    id=f"c{d_index}-{i}",
                    arrival_s=float(c.arrival_s),
                    departement=dept,
                    patience_s=patience_s,
                    service_s=service,
                    priority=min(c.priority, 9) if use_priority else 0,
                    caller_key=key,
                )
            )
    calls.sort(key=lambda c: (c.arrival_s, c.id))
    staffing = [round(n * staffing_factor) for n in staffing]
    return Scenario(
        name="trace " + "+".join(d.date for d in days),
        calls=draw_channels(calls, chat_share, seed),
        staffing=staffing,
        volunteer_departements=_volunteer_pool(staffing, volunteers, rng),
        notes={"days": [d.date for d in days], "volunteers": volunteers,
               "staffing_factor": staffing_factor, "chat_share": chat_share},
    )  # fmt: skip


def poisson(
    *,
    seed: int,
    calls_per_hour: float,
    aht_s: float,
    volunteers_on_duty: int,
    hours: float,
    patience_s: float | None = None,
    departements: str = "population",
    volunteers: str = "population",
    start_s: float = 0.0,
    chat_share: float = 0.0,
) -> Scenario:
    """Synthetic M/M/n(+M) load: Poisson arrivals, exponential service and patience.
    ``calls_per_hour`` counts every contact; a ``chat_share`` of them are web chats.

    The same volunteers are on duty from start_s until an hour after the last arrival
    (rounded to half hours, within the day), so the queue can drain.
    """
    if calls_per_hour <= 0 or aht_s <= 0 or hours <= 0 or volunteers_on_duty < 0:
        raise ScenarioError("rate, handle time and hours must be > 0, volunteers >= 0")
    if start_s < 0 or start_s + hours * 3600 > DAY_S:
        raise ScenarioError("the load must fit in one day")
    rng = random.Random(seed)
    weights = departement_weights(departements)
    rate = calls_per_hour / 3600
    calls: list[SimCall] = []
    t, end = start_s, start_s + hours * 3600
    while True:
        t += rng.expovariate(rate)
        if t >= end:
            break
        calls.append(
            SimCall(
                id=f"p{len(calls)}",
                arrival_s=t,
                departement=draw_departements(weights, 1, rng)[0],
                patience_s=rng.expovariate(1 / patience_s) if patience_s else None,
                service_s=rng.expovariate(1 / aht_s),
            )
        )
    first, last = int(start_s // HALF_HOUR_S), min(48, int(-(-end // HALF_HOUR_S)) + 2)
    staffing = [volunteers_on_duty if first <= s < last else 0 for s in range(48)]
    return Scenario(
        name=f"poisson {calls_per_hour:g}/h, {aht_s:g} s, {volunteers_on_duty} on duty",
        calls=draw_channels(calls, chat_share, seed),
        staffing=staffing,
        volunteer_departements=_volunteer_pool(staffing, volunteers, rng),
        notes={"calls_per_hour": calls_per_hour, "aht_s": aht_s, "patience_s": patience_s,
               "hours": hours, "chat_share": chat_share},
    )  # fmt: skip
