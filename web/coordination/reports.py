"""Reports per day or per week, from the recorded history, with the one ``compute``.

Contact rows are reduced to ``routing.metrics.Counts`` (``history.contact_counts``)
and volunteer time is folded from the recorded events (``routing.occupancy``), then
``compute`` gives the metrics — the same function the live dashboard uses.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from routing.clock import PARIS
from routing.metrics import Counts, Metrics, compute
from routing.occupancy import OccupancyTracker
from volunteers.wrapup import OUTCOMES, REFERRALS
from web.coordination.history import Thresholds, contact_counts, from_row, run
from web.coordination.live import day_end_ms, day_start_ms
from web.coordination.models import Contact, RoutingEvent

VOLUNTEER_EVENT_TYPES = ("volunteer_presence", "task_assigned", "task_transferred", "task_ended")
LOOKBACK_MS = 12 * 3600 * 1000


@dataclass(frozen=True)
class ReportFilter:
    """Which contacts a report covers ('' = all)."""

    channel: str = ""
    topic: str = ""
    region: str = ""
    departement: str = ""

    def matches(self, c: Any) -> bool:
        return all(
            not want or getattr(c, name) == want
            for name, want in (
                ("channel", self.channel),
                ("topic", self.topic),
                ("region", self.region),
                ("departement", self.departement),
            )
        )


@dataclass(frozen=True)
class Period:
    """A day, or the ISO week (Monday to Sunday) holding a day; Europe/Paris dates."""

    kind: str  # "day" | "week"
    first: date
    last: date

    @classmethod
    def of(cls, kind: str, day: date) -> Period:
        """The period holding a day; ValueError for an unknown kind, or a period whose end
        (the midnight after its last day) falls off the calendar (9999-12-31)."""
        if kind not in ("day", "week"):
            raise ValueError("period must be 'day' or 'week'")
        first = day - timedelta(days=day.weekday()) if kind == "week" else day
        days = 7 if kind == "week" else 1
        if (date.max - first).days < days:
            raise ValueError("the period ends after the last day of the calendar")
        return cls(kind, first, first + timedelta(days=days - 1))

    def days(self) -> list[str]:
        n = (self.last - self.first).days + 1
        return [(self.first + timedelta(days=i)).isoformat() for i in range(n)]

    @property
    def label(self) -> str:
        if self.kind == "day":
            return f"journée du {self.first:%d/%m/%Y}"
        return f"semaine du {self.first:%d/%m/%Y} au {self.last:%d/%m/%Y}"


@dataclass
class Row:
    """One line of the report's table: a bucket (hour or day) or the total."""

    label: str
    counts: Counts
    metrics: Metrics


@dataclass
class VolunteerLine:
    volunteer: str
    name: str
    staffed_h: float
    occupied_h: float
    occupancy: float | None
    booked: int = 0
    attended: int = 0
    no_show: int = 0

    @property
    def adherence(self) -> float | None:
        return self.attended / self.booked if self.booked else None


@dataclass
class Report:
    period: Period
    filter: ReportFilter
    total: Row
    rows: list[Row]
    outcomes: list[tuple[str, int]] = field(default_factory=list)
    referrals: list[tuple[str, int]] = field(default_factory=list)
    volunteers: list[VolunteerLine] = field(default_factory=list)
    wrapups: int = 0


def _local(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(PARIS)


async def _contacts(session: AsyncSession, line: str, period: Period) -> list[Any]:
    cols = [getattr(Contact, c) for c in Contact.model_fields]
    rows = await run(session, 
        select(*cols).where(
            Contact.line == line, Contact.day >= period.days()[0], Contact.day <= period.days()[-1]
        )
    )
    return list(rows.all())


async def _volunteer_events(session: AsyncSession, line: str, start: int, end: int) -> list:
    rows = await run(session, 
        select(RoutingEvent)
        .where(
            RoutingEvent.line == line,
            RoutingEvent.at_ms >= start - LOOKBACK_MS,
            RoutingEvent.at_ms < end,
            RoutingEvent.volunteer_id != "",
            RoutingEvent.type.in_(VOLUNTEER_EVENT_TYPES),  # type: ignore[attr-defined]
        )
        .order_by(RoutingEvent.at_ms, RoutingEvent.id)
    )
    return [from_row(r) for r in rows.scalars()]


def bucket_rows(
    contacts: Iterable[Any], period: Period, th: Thresholds
) -> list[Row]:
    """Per hour for a day, per day for a week."""
    groups: dict[str, list[Any]] = defaultdict(list)
    for c in contacts:
        key = f"{_local(c.created_ms).hour:02d} h" if period.kind == "day" else c.day
        groups[key].append(c)
    if period.kind == "day":
        keys = [f"{h:02d} h" for h in range(24) if groups.get(f"{h:02d} h")]
    else:
        keys = period.days()
    rows = []
    for key in keys:
        counts = contact_counts(groups.get(key, []), th)
        label = key if period.kind == "day" else _day_label(key)
        rows.append(Row(label, counts, compute(counts)))
    return rows


_DAYS = ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"]


def _day_label(day: str) -> str:
    d = date.fromisoformat(day)
    return f"{_DAYS[d.weekday()]} {d:%d/%m}"


async def build_report(
    session: AsyncSession,
    line: str,
    period: Period,
    flt: ReportFilter,
    th: Thresholds,
    *,
    volunteer_info: VolunteerInfo | None = None,
    now_ms: int | None = None,
) -> Report:
    """The report of a period for the contacts matching a filter (time counted up to now)."""
    contacts = [c for c in await _contacts(session, line, period) if c.created_ms is not None]
    chosen = [c for c in contacts if flt.matches(c)]
    start, end = day_start_ms(period.days()[0]), day_end_ms(period.days()[-1])
    tracker = OccupancyTracker(start, end).apply_all(
        await _volunteer_events(session, line, start, end)
    )
    times = tracker.totals(end if now_ms is None else min(end, now_ms))
    allowed = None
    if volunteer_info is not None and (flt.region or flt.departement):
        allowed = volunteer_info.in_territory(flt.region, flt.departement)
    total_counts = contact_counts(chosen, th)
    occ = Counts()
    for t in times:
        if allowed is None or t.volunteer in allowed:
            occ.staffed_ms += t.staffed_ms
            occ.occupied_ms += t.occupied_ms
    total_counts = total_counts + occ
    report = Report(
        period=period,
        filter=flt,
        total=Row("Total", total_counts, compute(total_counts)),
        rows=bucket_rows(chosen, period, th),
    )
    lines = []
    for t in times:
        if allowed is not None and t.volunteer not in allowed:
            continue
        name = volunteer_info.names.get(t.volunteer, t.volunteer) if volunteer_info else t.volunteer
        lines.append(VolunteerLine(
            t.volunteer, name, t.staffed_ms / 3_600_000, t.occupied_ms / 3_600_000,
            t.occupied_ms / t.staffed_ms if t.staffed_ms else None,
        ))
    if volunteer_info is not None:
        by_id = {v.volunteer: v for v in lines}
        for vid, (booked, attended, no_show) in volunteer_info.bookings.items():
            if allowed is not None and vid not in allowed:
                continue
            line_ = by_id.get(vid)
            if line_ is None:
                line_ = VolunteerLine(vid, volunteer_info.names.get(vid, vid), 0.0, 0.0, None)
                by_id[vid] = line_
                lines.append(line_)
            line_.booked, line_.attended, line_.no_show = booked, attended, no_show
        outcomes, referrals = volunteer_info.wrapups_for({c.task_id for c in chosen})
        report.outcomes, report.referrals = outcomes, referrals
        report.wrapups = sum(n for _, n in outcomes)
    report.volunteers = sorted(lines, key=lambda v: v.name.lower())
    return report


@dataclass
class VolunteerInfo:
    """What the volunteers' tables say about a period: names, territories, bookings, wrap-ups."""

    names: dict[str, str] = field(default_factory=dict)
    departements: dict[str, str] = field(default_factory=dict)
    regions: dict[str, str] = field(default_factory=dict)
    bookings: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    wrapup_rows: list[tuple[str, str, str]] = field(default_factory=list)  # task, outcome, referral

    def in_territory(self, region: str, departement: str) -> set[str]:
        return {
            vid for vid in self.names
            if (not departement or self.departements.get(vid) == departement)
            and (not region or self.regions.get(vid) == region)
        }

    def wrapups_for(self, tasks: set[str]) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        """These tasks' wrap-up outcomes and referrals, named in French, commonest first."""
        outcomes: Counter[str] = Counter()
        referrals: Counter[str] = Counter()
        for task, outcome, referral in self.wrapup_rows:
            if task in tasks:
                outcomes[OUTCOMES.get(outcome, outcome)] += 1
                if referral:
                    referrals[REFERRALS.get(referral, referral)] += 1
        return outcomes.most_common(), referrals.most_common()


# CSV --------------------------------------------------------------------------------------

METRIC_COLUMNS: list[tuple[str, str]] = [
    ("offered", "Contacts reçus"),
    ("answered", "Répondus"),
    ("abandoned", "Abandons"),
    ("service_level", "Niveau de service"),
    ("service_level_answered", "Répondus dans le délai / répondus"),
    ("asa_s", "Attente moyenne avant réponse (s)"),
    ("abandonment_rate", "Taux d'abandon"),
    ("handle_time_s", "Durée moyenne de traitement (s)"),
    ("wrapup_time_s", "Durée moyenne du compte rendu (s)"),
    ("match_departement", "Réponse dans le département"),
    ("match_group", "Réponse dans le groupe"),
    ("match_region", "Réponse dans la région"),
    ("match_national", "Réponse nationale"),
    ("occupancy", "Occupation"),
]


# A text cell starting with one of these is a formula to a spreadsheet (tab and carriage
# return too, for some): volunteers choose their own names, so text must stay text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """One CSV cell: numbers as numbers, text quoted (a leading ') if it reads as a formula."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.0f}"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


class _Writer:
    """csv.writer whose every cell goes through ``_cell``, whatever the table."""

    def __init__(self, out: io.StringIO) -> None:
        self._writer = csv.writer(out, delimiter=";", lineterminator="\r\n")

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([_cell(value) for value in row])


def report_csv(report: Report, table: str = "volumes") -> str:
    """The report's numbers as CSV (';' separated, as French spreadsheets expect)."""
    out = io.StringIO()
    writer = _Writer(out)
    if table == "volumes":
        writer.writerow(["Période", *(label for _, label in METRIC_COLUMNS)])
        for row in [*report.rows, report.total]:
            values = row.metrics.as_dict()
            writer.writerow([row.label, *(values[key] for key, _ in METRIC_COLUMNS)])
    elif table == "comptes-rendus":
        writer.writerow(["Type", "Valeur", "Nombre"])
        for name, n in report.outcomes:
            writer.writerow(["Issue", name, n])
        for name, n in report.referrals:
            writer.writerow(["Orientation", name, n])
    elif table == "benevoles":
        writer.writerow(["Bénévole", "Heures en service", "Heures en traitement", "Occupation",
                         "Créneaux réservés", "Créneaux tenus", "Absences", "Assiduité"])
        for v in report.volunteers:
            writer.writerow([v.name, round(v.staffed_h, 2), round(v.occupied_h, 2),
                             v.occupancy, v.booked, v.attended, v.no_show, v.adherence])
    else:
        raise ValueError(f"unknown table {table!r}")
    return out.getvalue()
