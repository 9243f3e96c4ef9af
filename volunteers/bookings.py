"""Booking slots: book, cancel (with a cut-off), recurring weekly bookings, standby list.

Rules, each refusal a clear French message and nothing changed:
- only approved accounts book; only real future slots within the booking horizon;
- no two active bookings of one volunteer overlap;
- a slot holds at most ``slot_max`` volunteers; beyond, bookings go on its standby list
  (first come, first promoted when someone cancels);
- cancelling is refused less than ``cancel_cutoff_hours`` before the slot starts.

Every change to a slot's bookings first locks that slot (``SlotLock``), so concurrent
sessions — several app processes — change one slot one after the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from volunteers.errors import VolunteerError
from volunteers.models import (
    Account,
    AccountStatus,
    Booking,
    BookingStatus,
    RecurringBooking,
    SlotLock,
    SlotTarget,
)
from volunteers.settings import VolunteersSettings
from volunteers.slots import DAY_NAMES, OpeningProvider, Slot, SlotPlan, hour_label, paris
from volunteers.sql import first
from volunteers.targets import ForecastProvider, SlotGoal, TargetSource, slot_goals

ACTIVE = (BookingStatus.BOOKED.value, BookingStatus.STANDBY.value)


def _utc(moment: datetime) -> datetime:
    """Aware UTC (SQLite hands back naive datetimes: they are UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class BookingResult:
    booking: Booking
    slot: Slot
    standby: bool

    @property
    def message(self) -> str:
        if self.standby:
            return (
                f"Ce créneau est complet ({self.slot.label}) : vous êtes sur la liste "
                "d'attente. Nous vous préviendrons si une place se libère."
            )
        return f"Créneau réservé : {self.slot.label}. Merci !"


@dataclass(frozen=True)
class SlotNeed:
    """One slot of the week view: how many booked against the target."""

    slot: Slot
    target: int
    booked: int
    standby: int
    mine: str  # '' | 'booked' | 'standby'
    source: TargetSource = TargetSource.FALLBACK
    capacity: int = 0  # the slot's maximum (0: no maximum)
    forecast: int | None = None  # what the forecast alone asks (None: no forecast)

    @property
    def reachable(self) -> int:
        """The target as far as bookings can reach it (a forecast may exceed the maximum)."""
        return min(self.target, self.capacity) if self.capacity else self.target

    @property
    def missing(self) -> int:
        return max(0, self.reachable - self.booked)

    @property
    def level(self) -> str:
        """'urgent' (half or less of the target), 'besoin', or 'complet'."""
        if self.booked >= self.reachable:
            return "complet"
        return "urgent" if self.booked * 2 <= self.reachable else "besoin"


class Bookings:
    """Booking services over one SQL session."""

    def __init__(
        self,
        session: AsyncSession,
        settings: VolunteersSettings,
        forecast: ForecastProvider | None = None,
        opening: OpeningProvider | None = None,
    ) -> None:
        self.session = session
        self.settings = settings
        self.plan = SlotPlan(settings, opening)  # the line's hours (web/ installs them)
        self.forecast = forecast  # volunteers needed per slot, from web/ (see targets.py)
        self.promoted: list[Booking] = []  # standby bookings promoted by this service: notify them

    # Reading ---------------------------------------------------------------------------

    async def _row(self, account_id: int, start: datetime) -> Booking | None:
        # populate_existing: sessions keep objects across commits; read what is stored now.
        return await first(
            self.session,
            select(Booking)
            .where(Booking.account_id == account_id, Booking.slot_start == start)
            .execution_options(populate_existing=True),
        )

    async def _lock_slot(self, start: datetime) -> None:
        """Hold the slot's lock until this transaction ends. A refusal (VolunteerError)
        leaves the transaction to the caller, whose commit or closing releases it."""
        dialect = postgresql if self.session.get_bind().dialect.name == "postgresql" else sqlite
        await self.session.exec(
            dialect.insert(SlotLock).values(slot_start=start).on_conflict_do_nothing()
        )
        await self.session.exec(
            select(SlotLock).where(SlotLock.slot_start == start).with_for_update()
        )

    async def count(self, start: datetime, status: BookingStatus) -> int:
        return int(
            await first(
                self.session,
                select(func.count())
                .select_from(Booking)
                .where(Booking.slot_start == start, Booking.status == status.value),
            )
            or 0
        )

    async def goals(self, slots: list[Slot]) -> dict[datetime, SlotGoal]:
        """The slots' targets and where they come from (override, forecast, fallback)."""
        return await slot_goals(self.session, slots, self.settings.slot_target, self.forecast)

    async def target(self, start: datetime) -> int:
        slot = await self.plan.slot_at(start)
        if slot is None:
            return self.settings.slot_target
        return (await self.goals([slot]))[slot.start].target

    async def mine(self, account_id: int, since: datetime) -> list[Booking]:
        """A volunteer's active bookings ending after ``since``, in time order."""
        rows = await self.session.exec(
            select(Booking)
            .where(
                Booking.account_id == account_id,
                Booking.status.in_(ACTIVE),
                Booking.slot_end > since,
            )
            .order_by(Booking.slot_start)
        )
        return list(rows)

    async def for_feed(self, account_id: int, since: datetime) -> list[Booking]:
        """Bookings for the iCal feed: recent and upcoming, cancelled ones included."""
        rows = await self.session.exec(
            select(Booking)
            .where(Booking.account_id == account_id, Booking.slot_end > since)
            .order_by(Booking.slot_start)
        )
        return list(rows)

    async def in_slot(self, start: datetime, status: BookingStatus) -> list[Booking]:
        """The bookings of a slot with a status, first come first."""
        rows = await self.session.exec(
            select(Booking)
            .where(Booking.slot_start == start, Booking.status == status.value)
            .order_by(Booking.changed_at, Booking.id)
            .execution_options(populate_existing=True)
        )
        return list(rows)

    async def closed_reasons(self, bookings: list[Booking]) -> dict[datetime, str]:
        """Why each booking's slot is closed now, by slot start (open slots left out).

        Hours or closures may change after a booking: such bookings are kept, not
        cancelled behind the volunteer's back (a closure may be lifted, and the
        volunteer must learn of the change), and shown as « créneau fermé ».
        """
        if not bookings:
            return {}
        spans = sorted((_utc(b.slot_start), _utc(b.slot_end)) for b in bookings)
        days = await self.plan.days(paris(spans[0][0]).date(), paris(spans[-1][0]).date())
        by_day = {d.day: d for d in days}
        open_ = {s.start for d in days for s in self.plan.cut(d)}
        out: dict[datetime, str] = {}
        for start, end in spans:
            if start in open_:
                continue
            day = by_day.get(paris(start).date())
            if day is None:
                out[start] = "les horaires ont changé"
                continue
            in_hours = any(a < end and start < b for a, b in day.hours)
            in_open = any(a <= start and end <= b for a, b in day.open)
            cut = day.closure if in_hours and not in_open else ""
            out[start] = day.closed or cut or "les horaires ont changé"
        return out

    async def closed_between(self, first: datetime, last: datetime) -> list[tuple[Booking, str]]:
        """Active bookings starting in [first, last) whose slot the line no longer opens."""
        rows = list(
            await self.session.exec(
                select(Booking)
                .where(
                    Booking.slot_start >= first,
                    Booking.slot_start < last,
                    Booking.status.in_(ACTIVE),
                )
                .order_by(Booking.slot_start, Booking.id)
            )
        )
        reasons = await self.closed_reasons(rows)
        return [(b, reasons[_utc(b.slot_start)]) for b in rows if _utc(b.slot_start) in reasons]

    async def week(self, monday: date, account_id: int | None = None) -> list[SlotNeed]:
        """Every slot of the week with its needs (and the asker's own booking)."""
        slots = await self.plan.slots_between(monday, monday + timedelta(days=6))
        if not slots:
            return []
        first, last = slots[0].start, slots[-1].start
        counts: dict[tuple[datetime, str], int] = {}
        own: dict[datetime, str] = {}
        for b in await self.session.exec(
            select(Booking).where(
                Booking.slot_start >= first,
                Booking.slot_start <= last,
                Booking.status.in_(ACTIVE),
            )
        ):
            start = _utc(b.slot_start)
            counts[(start, b.status)] = counts.get((start, b.status), 0) + 1
            if account_id is not None and b.account_id == account_id:
                own[start] = b.status
        goals = await self.goals(slots)
        return [
            SlotNeed(
                slot=s,
                target=goals[s.start].target,
                booked=counts.get((s.start, BookingStatus.BOOKED.value), 0),
                standby=counts.get((s.start, BookingStatus.STANDBY.value), 0),
                mine=own.get(s.start, ""),
                source=goals[s.start].source,
                capacity=self.settings.slot_max,
                forecast=goals[s.start].forecast,
            )
            for s in slots
        ]

    # Booking ---------------------------------------------------------------------------

    async def _check_slot(self, start: datetime, now: datetime) -> Slot:
        slot = await self.plan.slot_at(start)
        if slot is None:
            raise VolunteerError(
                "no_such_slot", "Ce créneau n'existe pas : la ligne est fermée à cette heure-là."
            )
        if slot.start <= now:
            raise VolunteerError("slot_past", "Ce créneau est déjà commencé ou passé.")
        if slot.start > now + timedelta(days=self.settings.booking_horizon_days):
            raise VolunteerError(
                "slot_too_far",
                f"On ne peut réserver que {self.settings.booking_horizon_days} jours à l'avance.",
            )
        return slot

    async def _check_overlap(self, account_id: int, slot: Slot) -> None:
        clash = await first(
            self.session,
            select(Booking).where(
                Booking.account_id == account_id,
                Booking.status.in_(ACTIVE),
                Booking.slot_start < slot.end,
                Booking.slot_end > slot.start,
                Booking.slot_start != slot.start,
            ),
        )
        if clash is not None:
            other = Slot(_utc(clash.slot_start), _utc(clash.slot_end))
            raise VolunteerError(
                "overlap",
                "Ce créneau chevauche un autre créneau que vous avez déjà réservé "
                f"({other.label}).",
            )

    async def book(
        self,
        account: Account,
        start: datetime,
        now: datetime,
        *,
        recurring_id: int | None = None,
    ) -> BookingResult:
        """Book a slot (or join its standby list when full)."""
        if account.status != AccountStatus.APPROVED:
            raise VolunteerError(
                "not_approved",
                "Votre compte doit être validé par un coordinateur avant de réserver un créneau.",
            )
        slot = await self._check_slot(start, now)
        assert account.id is not None
        await self._lock_slot(slot.start)
        row = await self._row(account.id, slot.start)
        if row is not None and row.status in ACTIVE:
            if row.status == BookingStatus.STANDBY.value:
                raise VolunteerError(
                    "already_standby", "Vous êtes déjà sur la liste d'attente de ce créneau."
                )
            raise VolunteerError("already_booked", "Vous avez déjà réservé ce créneau.")
        await self._check_overlap(account.id, slot)
        full = await self.count(slot.start, BookingStatus.BOOKED) >= self.settings.slot_max
        status = BookingStatus.STANDBY if full else BookingStatus.BOOKED
        stamp = datetime.now(UTC)
        if row is None:
            row = Booking(
                account_id=account.id,
                slot_start=slot.start,
                slot_end=slot.end,
                status=status.value,
                recurring_id=recurring_id,
                created_at=stamp,
                changed_at=stamp,
            )
            self.session.add(row)
        else:
            row.status, row.changed_at, row.recurring_id = status.value, stamp, recurring_id
            row.slot_end, row.present_at, row.no_show_at = slot.end, None, None
        await self.session.commit()
        return BookingResult(row, slot, row.status == BookingStatus.STANDBY.value)

    async def cancel(self, account: Account, start: datetime, now: datetime) -> list[Booking]:
        """Cancel a booking (or leave a standby list); returns the standby bookings promoted
        into the places freed (also added to ``self.promoted``, for notices)."""
        assert account.id is not None
        await self._lock_slot(start)
        row = await self._row(account.id, start)
        if row is None or row.status not in ACTIVE:
            raise VolunteerError("not_booked", "Vous n'avez pas réservé ce créneau.")
        was_booked = row.status == BookingStatus.BOOKED.value
        slot = Slot(_utc(row.slot_start), _utc(row.slot_end))
        # A slot the line no longer opens needs nobody: leaving it is never too late.
        if was_booked and await self.plan.slot_at(slot.start) is not None:
            cutoff = timedelta(hours=self.settings.cancel_cutoff_hours)
            if slot.start - now < cutoff:
                hours = self.settings.cancel_cutoff_hours
                shown = f"{hours:g} heure" + ("s" if hours >= 2 else "")
                raise VolunteerError(
                    "cancel_too_late",
                    f"Il est trop tard pour annuler ce créneau en ligne (moins de {shown} "
                    "avant le début). Prévenez un coordinateur.",
                )
        row.status, row.changed_at = BookingStatus.CANCELLED.value, datetime.now(UTC)
        promoted: list[Booking] = []
        if slot.start > now:
            await self.session.flush()
            # Counted under the slot's lock: what other sessions did is committed and seen.
            free = self.settings.slot_max - await self.count(slot.start, BookingStatus.BOOKED)
            for waiting in (await self.in_slot(slot.start, BookingStatus.STANDBY))[: max(0, free)]:
                waiting.status, waiting.changed_at = BookingStatus.BOOKED.value, datetime.now(UTC)
                promoted.append(waiting)
        await self.session.commit()
        self.promoted.extend(promoted)
        return promoted

    # Recurring -------------------------------------------------------------------------

    async def add_recurring(
        self, account: Account, weekday: int, start_time: str, now: datetime
    ) -> tuple[RecurringBooking, list[BookingResult], list[str]]:
        """Book a weekday's slot every week over the horizon; returns what was booked/skipped."""
        if account.status != AccountStatus.APPROVED:
            raise VolunteerError(
                "not_approved",
                "Votre compte doit être validé par un coordinateur avant de réserver un créneau.",
            )
        starts = await self.plan.weekly_starts(paris(now).date())
        if not 0 <= weekday <= 6 or start_time not in starts.get(weekday, []):
            raise VolunteerError(
                "no_such_slot", "Ce créneau n'existe pas : la ligne est fermée à cette heure-là."
            )
        assert account.id is not None
        existing = await first(
            self.session,
            select(RecurringBooking).where(
                RecurringBooking.account_id == account.id,
                RecurringBooking.weekday == weekday,
                RecurringBooking.start_time == start_time,
                RecurringBooking.active.is_(True),
            ),
        )
        if existing is not None:
            raise VolunteerError(
                "already_recurring",
                f"Vous réservez déjà ce créneau chaque {DAY_NAMES[weekday]}.",
            )
        rule = RecurringBooking(account_id=account.id, weekday=weekday, start_time=start_time)
        self.session.add(rule)
        await self.session.commit()
        booked, skipped = await self.expand(account, rule, now)
        return rule, booked, skipped

    async def expand(
        self, account: Account, rule: RecurringBooking, now: datetime
    ) -> tuple[list[BookingResult], list[str]]:
        """Book the rule's slots not yet booked within the horizon (idempotent)."""
        booked: list[BookingResult] = []
        skipped: list[str] = []
        today = paris(now).date()
        horizon = today + timedelta(days=self.settings.booking_horizon_days)
        for slot in await self.plan.slots_between(today, horizon):
            local = paris(slot.start)
            if (
                local.weekday() != rule.weekday
                or local.strftime("%H:%M") != rule.start_time
                or slot.start <= now
            ):
                continue
            row = await self._row(account.id or 0, slot.start)
            if row is not None and (row.status in ACTIVE or row.recurring_id == rule.id):
                continue  # booked already, or cancelled on purpose: never rebook it
            try:
                booked.append(await self.book(account, slot.start, now, recurring_id=rule.id))
            except VolunteerError as exc:
                skipped.append(f"{slot.label} : {exc.message}")
        return booked, skipped

    async def stop_recurring(self, account: Account, rule_id: int, now: datetime) -> int:
        """Stop a recurring booking and cancel its future slots beyond the cut-off."""
        rule = await self.session.get(RecurringBooking, rule_id)
        if rule is None or rule.account_id != account.id or not rule.active:
            raise VolunteerError("unknown_recurring", "Cette réservation régulière n'existe pas.")
        rule.active = False
        await self.session.commit()
        cancelled = 0
        cutoff = now + timedelta(hours=self.settings.cancel_cutoff_hours)
        for row in list(
            await self.session.exec(
                select(Booking).where(
                    Booking.recurring_id == rule_id,
                    Booking.status.in_(ACTIVE),
                    Booking.slot_start > cutoff,
                )
            )
        ):
            await self.cancel(account, _utc(row.slot_start), now)
            cancelled += 1
        return cancelled

    async def recurring_of(self, account_id: int) -> list[RecurringBooking]:
        rows = await self.session.exec(
            select(RecurringBooking)
            .where(RecurringBooking.account_id == account_id, RecurringBooking.active.is_(True))
            .order_by(RecurringBooking.weekday, RecurringBooking.start_time)
        )
        return list(rows)

    async def set_target(self, start: datetime, target: int) -> None:
        """A coordinator sets how many volunteers a slot needs."""
        if await self.plan.slot_at(start) is None:
            raise VolunteerError("no_such_slot", "Ce créneau n'existe pas.")
        if not 0 <= target <= 100:
            raise VolunteerError("bad_target", "L'objectif doit être entre 0 et 100.")
        row = await self.session.get(SlotTarget, start)
        if row is None:
            self.session.add(SlotTarget(slot_start=start, target=target))
        else:
            row.target = target
        await self.session.commit()

    async def clear_target(self, start: datetime) -> bool:
        """A coordinator hands the slot back to the forecast; False if it had no override."""
        row = await self.session.get(SlotTarget, start)
        if row is None:
            return False
        await self.session.delete(row)
        await self.session.commit()
        return True


def recurring_label(rule: RecurringBooking, plan: SlotPlan) -> str:
    """'chaque mardi, 14 h – 16 h'."""
    start = datetime.strptime(rule.start_time, "%H:%M")
    end = start + plan.length
    shown_end = f"{end.hour} h" + (f" {end.minute:02d}" if end.minute else "")
    shown_start = f"{start.hour} h" + (f" {start.minute:02d}" if start.minute else "")
    return f"chaque {DAY_NAMES[rule.weekday]}, {shown_start} – {shown_end}"


__all__ = [
    "ACTIVE",
    "BookingResult",
    "Bookings",
    "SlotNeed",
    "hour_label",
    "recurring_label",
]
