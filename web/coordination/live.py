"""What the coordinator's dashboard shows, read from the engine's live state.

Everything here comes from Redis (live tasks, volunteers, today's counters, who is on
duty) plus the occupancy fold kept by the hub; the same ``compute`` as the reports
turns the counters into metrics. The result is plain JSON for the websocket.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from typing import Any

from routing.clock import PARIS, buckets
from routing.engine import Engine
from routing.metrics import Counts, Metrics, compute
from routing.models import NO_ANSWER_REASON, Task, TaskState, Volunteer, VolunteerState
from routing.skills import SKILLS

LEVEL_NAMES = {0: "département", 1: "groupe", 2: "région", 3: "national"}
CHANNEL_NAMES = {"voice": "Appel", "chat": "Chat", "callback": "Rappel"}
STATE_NAMES = {
    "available": "Disponible",
    "reserved": "Sonnerie",
    "call": "En appel",
    "chats": "En chat",
    "wrapup": "Compte rendu",
    "paused": "En pause",
    "logged_out": "Déconnecté",
}
STATE_ORDER = list(STATE_NAMES)
WAITING_STATES = (TaskState.WAITING, TaskState.RESERVED)


def queue_order(item: dict[str, Any]) -> tuple[Any, ...]:
    """Queue rows in the engine's order (``Engine.live_tasks`` sorts tasks so): priority,
    then place (static/dashboard.js mirrors it)."""
    return (-item["priority"], item["place_ms"], item["id"])


def volunteer_order(item: dict[str, Any]) -> tuple[Any, ...]:
    """Volunteer rows by state, then name (static/dashboard.js mirrors it)."""
    return (STATE_ORDER.index(item["state"]), item["name"].lower(), item["id"])


# The dashboard's lists of rows with an "id": deltas carry only the rows that changed and
# the page puts them back in this order.
LIST_ORDERS = {"queue": queue_order, "volunteers": volunteer_order}


@dataclass(frozen=True)
class AlertRules:
    """When the dashboard raises an alert."""

    service_level_target: float = 0.8
    service_level_min_contacts: int = 3  # in the last half hour, before judging the SL


@dataclass
class Slots:
    """Today's volunteer slots as the shift tables describe them (loaded by the hub)."""

    current_start_ms: int | None = None
    current_end_ms: int | None = None
    booked: int = 0
    target: int = 0
    booked_volunteers: dict[str, str] = field(default_factory=dict)  # engine id -> name
    day: list[dict[str, Any]] = field(default_factory=list)  # every slot of today
    target_source: str = ""  # coordinator | forecast | fallback (volunteers.targets)
    target_source_label: str = ""


def day_start_ms(day: str) -> int:
    """Midnight Europe/Paris of a 'YYYY-MM-DD' day, in epoch milliseconds."""
    d = datetime.strptime(day, "%Y-%m-%d").date()
    return int(datetime.combine(d, time(0), PARIS).timestamp() * 1000)


def day_end_ms(day: str) -> int:
    d = datetime.strptime(day, "%Y-%m-%d").date() + timedelta(days=1)
    return int(datetime.combine(d, time(0), PARIS).timestamp() * 1000)


def _previous_quarter(interval: str) -> str:
    moment = datetime.strptime(interval, "%Y-%m-%dT%H:%M").replace(tzinfo=PARIS)
    return (moment - timedelta(minutes=15)).strftime("%Y-%m-%dT%H:%M")


def metrics_json(m: Metrics) -> dict[str, Any]:
    return m.as_dict()


def _volunteer_state(v: Volunteer, held: list[Task]) -> tuple[str, int]:
    """The coordinator's state name of a volunteer and since when (ms)."""
    wrapup_only = bool(held) and all(t.state is TaskState.WRAPUP for t in held)
    state = v.state(wrapup_only)
    presence_since = max(v.presence_since_ms, v.idle_since_ms)
    if state is VolunteerState.RESERVED:
        return "reserved", presence_since
    if state is VolunteerState.WRAPUP:
        return "wrapup", max(int(t.raw.get("completed_at", "0")) for t in held)
    if state is VolunteerState.BUSY:
        active = [t for t in held if t.state is TaskState.ASSIGNED]
        since = min((int(t.raw.get("assigned_at", "0")) for t in active), default=presence_since)
        kind = "call" if any(t.channel.capacity_class == "voice" for t in active) else "chats"
        return kind, since
    if state is VolunteerState.AVAILABLE:
        return "available", presence_since
    return state.value, v.presence_since_ms


async def build_state(
    engine: Engine,
    *,
    occupancy: Counts | None = None,
    slots: Slots | None = None,
    line_status: dict[str, Any] | None = None,
    registration_open: bool | None = None,
    rules: AlertRules | None = None,
    volunteers: list[Volunteer] | None = None,
) -> dict[str, Any]:
    """The whole dashboard at this instant, as JSON-ready data.

    ``volunteers``: the line's volunteers as the caller read them (the dashboard's builder
    reads only those that changed); else read here.
    """
    now = engine.clock.now_ms()
    day, interval = buckets(now)
    territories = engine.territories
    tasks = await engine.live_tasks()
    if volunteers is None:
        volunteers = await engine.volunteers()
    on_duty_scopes = await engine.redis.hgetall(engine.keys.on)
    today = await engine.counts(day)
    recent = await engine.counts(interval) + await engine.counts(_previous_quarter(interval))
    cfg = await engine.config()
    rules = rules or AlertRules()
    names = {v.id: v.name or v.id for v in volunteers}

    waiting = [t for t in tasks if t.state in WAITING_STATES]
    by_channel = Counter(t.channel.value for t in waiting)
    queue = [
        {
            "id": t.id,
            "channel": t.channel.value,
            "channel_name": CHANNEL_NAMES[t.channel.value],
            "topic": SKILLS.get(t.skill, "Sans précision") if t.skill else "Sans précision",
            "departement": t.departement,
            "departement_name": _dep_name(territories, t.departement),
            "region": t.region,
            "since_ms": t.created_ms,
            "place_ms": t.place_ms,
            "level": t.level,
            "level_name": LEVEL_NAMES.get(t.level, "national"),
            "priority": t.priority,
            "ringing": names.get(t.volunteer, t.volunteer) if t.state is TaskState.RESERVED else "",
        }
        for t in waiting
    ]

    held: dict[str, list[Task]] = defaultdict(list)
    for t in tasks:
        if t.volunteer and t.state in (TaskState.ASSIGNED, TaskState.WRAPUP):
            held[t.volunteer].append(t)
    vols = []
    for v in volunteers:
        state, since = _volunteer_state(v, held.get(v.id, []))
        label = STATE_NAMES[state]
        if state == "chats":
            label = f"En chat ({len([t for t in held[v.id] if t.state is TaskState.ASSIGNED])})"
        if state == "paused" and v.reason:
            label = f"En pause : {v.reason}"
        vols.append({
            "id": v.id, "name": v.name or v.id, "state": state, "label": label,
            "since_ms": since, "reason": v.reason, "departement": v.departement,
            "region": v.region, "misses": v.misses, "presence": v.presence.value,
        })
    vols.sort(key=volunteer_order)
    by_state = Counter(x["state"] for x in vols)

    on_duty_by_dep = Counter(v.departement for v in volunteers if v.presence.value == "available")
    waiting_by_dep = Counter(t.departement for t in waiting)

    today_counts = today + (occupancy or Counts())
    logged_in = {v.id for v in volunteers if v.presence.value != "logged_out"}
    missing = []
    if slots is not None:
        missing = sorted(
            ({"id": vid, "name": name} for vid, name in slots.booked_volunteers.items()
             if vid not in logged_in),
            key=lambda x: x["name"].lower(),
        )

    return {
        "now_ms": now,
        "day": day,
        "waiting": {
            "total": len(waiting),
            "voice": by_channel.get("voice", 0),
            "chat": by_channel.get("chat", 0),
            "callback": by_channel.get("callback", 0),
            "oldest_since_ms": min((t.created_ms for t in waiting), default=None),
        },
        "today": metrics_json(compute(today_counts)),
        "recent": metrics_json(compute(recent)),
        "service_level_s": cfg.service_level_s,
        "queue": queue,
        "volunteers": [v for v in vols if v["state"] != "logged_out"],
        "volunteers_by_state": {s: by_state.get(s, 0) for s in STATE_ORDER},
        "map": {"waiting": dict(waiting_by_dep), "on_duty": dict(on_duty_by_dep)},
        "slots": None if slots is None else {
            "current_start_ms": slots.current_start_ms,
            "current_end_ms": slots.current_end_ms,
            "booked": slots.booked,
            "target": slots.target,
            "target_source": slots.target_source,
            "target_source_label": slots.target_source_label,
            "missing": missing,
            "day": slots.day,
        },
        "line": line_status,
        "registration_open": registration_open,
        "config": {"ring_s": cfg.ring_s, "widen_group_s": cfg.widen_group_s,
                   "widen_region_s": cfg.widen_region_s,
                   "widen_national_s": cfg.widen_national_s},
        "alerts": alerts(recent, waiting, volunteers, on_duty_scopes, territories, rules),
    }


def _dep_name(territories: Any, code: str) -> str:
    dep = territories.departements.get(code)
    return dep.name if dep else code


def alerts(
    recent: Counts,
    waiting: list[Task],
    volunteers: list[Volunteer],
    on_duty_scopes: dict[str, str],
    territories: Any,
    rules: AlertRules,
) -> list[dict[str, str]]:
    """What needs a coordinator's attention now, most serious first."""
    out: list[dict[str, str]] = []
    m = compute(recent)
    base = recent.answered + recent.abandoned - recent.abandoned_short
    if (
        m.service_level is not None
        and base >= rules.service_level_min_contacts
        and m.service_level < rules.service_level_target
    ):
        out.append({
            "kind": "service_level",
            "level": "danger",
            "text": (
                f"Niveau de service en baisse : {m.service_level:.0%} sur la dernière "
                f"demi-heure (objectif {rules.service_level_target:.0%})."
            ).replace("%", " %"),
        })
    waiting_by_region = Counter(t.region for t in waiting)
    for region, n in sorted(waiting_by_region.items()):
        if int(on_duty_scopes.get(f"r:{region}", "0")) <= 0:
            name = territories.regions[region].name if region in territories.regions else region
            people = "personne attend" if n == 1 else "personnes attendent"
            out.append({
                "kind": "region_uncovered",
                "level": "warning",
                "text": f"{name} : {n} {people} et aucun bénévole de la région n'est en service.",
            })
    for v in sorted(volunteers, key=lambda v: (v.name or v.id).lower()):
        name = v.name or v.id
        if v.presence.value == "paused" and v.reason == NO_ANSWER_REASON:
            out.append({
                "kind": "no_answer",
                "level": "warning",
                "text": f"{name} n'a pas répondu à {v.misses} appels de suite : mis en pause.",
            })
        elif v.misses > 0 and v.presence.value == "available":
            text = (
                f"{name} n'a pas décroché au dernier appel proposé."
                if v.misses == 1
                else f"{name} n'a pas décroché aux {v.misses} derniers appels proposés."
            )
            out.append({"kind": "no_answer", "level": "info", "text": text})
    return out
