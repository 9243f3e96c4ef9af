"""Occupancy from the event stream: staffed and handling time per volunteer.

DESIGN.md defines occupancy as time handling tasks over time logged in and not
paused. Read here as: *staffed* is time available, plus any time spent holding a
task while paused (a volunteer who pauses to finish a call is still working);
*occupied* is time holding at least one task, wrap-up included (after-call work
is work, as in contact-center practice). Concurrent chats count once, so
occupancy never exceeds 1.

The live counters do not hold these durations, so the dashboard (from the
stream) and the reports (from the recorded events) both fold events here, then
hand the totals to ``routing.metrics.Counts``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from routing.events import Event, EventType
from routing.metrics import Counts


@dataclass
class _VolunteerTime:
    available: bool = False
    held: set[str] = field(default_factory=set)
    since_ms: int | None = None
    staffed_ms: int = 0
    occupied_ms: int = 0

    def staffed(self) -> bool:
        return self.available or bool(self.held)


@dataclass(frozen=True)
class VolunteerTime:
    """One volunteer's totals over a window."""

    volunteer: str
    staffed_ms: int
    occupied_ms: int


class OccupancyTracker:
    """Folds events (in stream order) into per-volunteer time within [start_ms, end_ms)."""

    def __init__(self, start_ms: int, end_ms: int | None = None) -> None:
        self.start_ms = start_ms
        self.end_ms = end_ms
        self._vols: dict[str, _VolunteerTime] = {}

    def restart(self, start_ms: int, end_ms: int | None = None) -> None:
        """A new window (e.g. a new day): states carry over, totals start from zero."""
        for vol in self._vols.values():
            vol.staffed_ms = vol.occupied_ms = 0
            if vol.since_ms is not None:
                vol.since_ms = max(vol.since_ms, start_ms)
        self.start_ms, self.end_ms = start_ms, end_ms

    def _clip(self, a: int, b: int) -> int:
        lo = max(a, self.start_ms)
        hi = b if self.end_ms is None else min(b, self.end_ms)
        return max(0, hi - lo)

    def _advance(self, vol: _VolunteerTime, to_ms: int) -> None:
        if vol.since_ms is not None and to_ms > vol.since_ms:
            span = self._clip(vol.since_ms, to_ms)
            if vol.staffed():
                vol.staffed_ms += span
            if vol.held:
                vol.occupied_ms += span
        if vol.since_ms is None or to_ms > vol.since_ms:
            vol.since_ms = to_ms

    def apply(self, event: Event) -> None:
        """Take one event into account; events of no interest are ignored."""
        if not event.volunteer:
            return
        kind = event.type
        if kind not in (
            EventType.VOLUNTEER_PRESENCE,
            EventType.TASK_ASSIGNED,
            EventType.TASK_TRANSFERRED,
            EventType.TASK_ENDED,
        ):
            return
        vol = self._vols.setdefault(event.volunteer, _VolunteerTime())
        self._advance(vol, event.at_ms)
        if kind is EventType.VOLUNTEER_PRESENCE:
            vol.available = event.data.get("presence") == "available"
        elif kind is EventType.TASK_ASSIGNED:
            vol.held.add(event.task)
        else:  # transferred away, or ended (wrap-up over): the task no longer holds them
            vol.held.discard(event.task)

    def apply_all(self, events: Iterable[Event]) -> OccupancyTracker:
        for event in events:
            self.apply(event)
        return self

    def totals(self, until_ms: int) -> list[VolunteerTime]:
        """Each volunteer's time up to ``until_ms`` (open intervals counted so far)."""
        out: list[VolunteerTime] = []
        for vid, vol in sorted(self._vols.items()):
            staffed, occupied = vol.staffed_ms, vol.occupied_ms
            if vol.since_ms is not None and until_ms > vol.since_ms:
                span = self._clip(vol.since_ms, until_ms)
                staffed += span if vol.staffed() else 0
                occupied += span if vol.held else 0
            if staffed or occupied:
                out.append(VolunteerTime(vid, staffed, occupied))
        return out

    def counts(self, until_ms: int, volunteers: set[str] | None = None) -> Counts:
        """The occupancy part of ``Counts`` (all volunteers, or only these)."""
        c = Counts()
        for t in self.totals(until_ms):
            if volunteers is None or t.volunteer in volunteers:
                c.staffed_ms += t.staffed_ms
                c.occupied_ms += t.occupied_ms
        return c
