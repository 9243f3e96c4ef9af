"""From events to history, and from history to metrics.

A contact row is a pure function of its task's events (whatever order they were
recorded in), so recording the same events twice, or late, gives the same row.
Reports reduce contact rows to ``routing.metrics.Counts``, exactly as the live
counters do, and the one ``compute`` turns either into metrics.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from routing.clock import buckets
from routing.events import Event, EventType
from routing.metrics import Counts
from web.coordination.models import Contact, RoutingEvent


async def run(session: Any, statement: Any) -> Any:
    """Execute on a SQLModel session (``exec``) or a plain SQLAlchemy one (``execute``)."""
    exec_ = getattr(session, "exec", None)
    return await (exec_(statement) if exec_ is not None else session.execute(statement))


def stream_order(stream_id: str) -> tuple[int, int]:
    """Sort key of a stream id ('1700000000000-3')."""
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq or 0)


def to_row(line: str, event: Event) -> dict[str, Any]:
    """The routing_event row of a stream event."""
    return {
        "line": line,
        "stream_id": event.id,
        "type": event.type.value,
        "at_ms": event.at_ms,
        "task_id": event.task,
        "volunteer_id": event.volunteer,
        "data": json.dumps(event.data, ensure_ascii=False, sort_keys=True),
    }


def from_row(row: RoutingEvent) -> Event:
    """The stream event a routing_event row holds."""
    return Event(
        id=row.stream_id,
        type=EventType(row.type),
        at_ms=row.at_ms,
        task=row.task_id,
        volunteer=row.volunteer_id,
        data=json.loads(row.data or "{}"),
    )


def _int(value: str | None, default: int = 0) -> int:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default


def contact_fields(events: Iterable[Event]) -> dict[str, Any]:
    """Every column of a contact row but its keys, from the events of one task."""
    ordered = sorted(events, key=lambda e: (e.at_ms, stream_order(e.id)))
    row: dict[str, Any] = {
        "day": "", "channel": "", "departement": "", "region": "", "topic": "",
        "priority": 0, "resumed": False, "created_ms": None, "first_offered_ms": None,
        "assigned_ms": None, "completed_ms": None, "ended_ms": None, "offers": 0,
        "declines": 0, "timeouts": 0, "transfers": 0, "level": 0, "ring": None,
        "volunteer_id": "", "last_volunteer_id": "", "wait_ms": None, "handle_ms": None,
        "wrapup_ms": None, "outcome": "", "reason": "", "event_count": len(ordered),
    }
    for e in ordered:
        d = e.data
        if d.get("channel"):
            row["channel"] = d["channel"]
        match e.type:
            case EventType.TASK_CREATED:
                row["created_ms"] = e.at_ms
                row["day"] = buckets(e.at_ms)[0]
                row["departement"] = d.get("dept", "")
                row["region"] = d.get("region", "")
                row["topic"] = d.get("skill", "")
                row["priority"] = _int(d.get("priority"))
                row["resumed"] = d.get("resumed") == "1"
                row["level"] = max(row["level"], _int(d.get("level")))
            case EventType.TASK_WIDENED:
                row["level"] = max(row["level"], _int(d.get("level")))
            case EventType.TASK_OFFERED:
                row["offers"] += 1
                if row["first_offered_ms"] is None:
                    row["first_offered_ms"] = e.at_ms
            case EventType.OFFER_DECLINED:
                row["declines"] += 1
            case EventType.OFFER_TIMEOUT:
                row["timeouts"] += 1
            case EventType.TASK_ASSIGNED:
                if row["assigned_ms"] is None:  # the first answer is the one the caller waited for
                    row["assigned_ms"] = e.at_ms
                    row["ring"] = _int(d.get("ring"), 3)
                    row["volunteer_id"] = e.volunteer
                    row["wait_ms"] = _int(d.get("waited_ms"))
                row["last_volunteer_id"] = e.volunteer
            case EventType.TASK_COMPLETED:
                row["completed_ms"] = e.at_ms
                row["handle_ms"] = _int(d.get("handle_ms"))
            case EventType.TASK_ENDED:
                row["ended_ms"] = e.at_ms
                row["outcome"] = d.get("outcome", "")
                row["reason"] = d.get("reason", "")[:80]
            case EventType.TASK_TRANSFERRED:
                row["transfers"] += 1
            case EventType.TASK_PRIORITY:
                row["priority"] = _int(d.get("priority"))
            case _:
                pass
    if row["outcome"] == "completed" and row["completed_ms"] is not None and row["ended_ms"]:
        row["wrapup_ms"] = row["ended_ms"] - row["completed_ms"]
    if row["assigned_ms"] is None and row["ended_ms"] is not None and row["created_ms"]:
        row["wait_ms"] = row["ended_ms"] - row["created_ms"]  # how long they waited before leaving
    return row


@dataclass(frozen=True)
class Thresholds:
    """The service level's T and the short-abandon limit, in milliseconds."""

    service_level_ms: int = 60_000
    short_abandon_ms: int = 5_000


def contact_counts(contacts: Iterable[Contact], th: Thresholds) -> Counts:
    """Reduce contact rows to the additive counts the live counters also keep."""
    contacts = list(contacts)
    # A callback that replaced a waiting call is that contact under another form: offered
    # once, as the live counters count it (the call's row names its callback in `reason`).
    replaced_by = {k.reason for k in contacts if k.outcome == "callback"}
    c = Counts()
    for k in contacts:
        if k.created_ms is None:
            continue  # its creation is not recorded (yet): not a contact of this period
        if k.task_id not in replaced_by:
            c.offered += 1
        c.transferred += k.transfers
        if k.assigned_ms is not None:
            wait = k.wait_ms or 0
            c.answered += 1
            c.wait_ms += wait
            if wait <= th.service_level_ms:
                c.answered_within_sl += 1
            ring = k.ring if k.ring in (0, 1, 2, 3) else 3
            setattr(c, f"answered_ring{ring}", getattr(c, f"answered_ring{ring}") + 1)
        if k.completed_ms is not None:
            c.completed += 1
            c.handle_ms += k.handle_ms or 0
            c.wrapup_ms += k.wrapup_ms or 0
        if k.outcome == "abandoned" and k.assigned_ms is None:  # left after an answer: answered
            c.abandoned += 1
            if (k.wait_ms or 0) < th.short_abandon_ms:
                c.abandoned_short += 1
        elif k.outcome == "callback":
            c.callback += 1
        elif k.outcome == "closed":
            c.closed += 1
    return c
