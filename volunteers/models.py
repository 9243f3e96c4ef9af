"""What lasts of volunteers in SQL: accounts, bookings, wrap-ups, outbox, settings.

Times are stored as timezone-aware UTC datetimes; pages show them in Europe/Paris.
Lists (skills, languages) are stored as sorted comma-separated codes from
``routing.skills`` — small, fixed catalogues that never need a join.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, DateTime, Index, Text, UniqueConstraint
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC datetime on every backend (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _when(nullable: bool = False) -> Column:
    return Column(UTCDateTime(), nullable=nullable)


class Role(StrEnum):
    VOLUNTEER = "volunteer"
    COORDINATOR = "coordinator"
    ADMIN = "admin"


class AccountStatus(StrEnum):
    PENDING = "pending"  # signed up, waits for a coordinator's approval
    APPROVED = "approved"
    DISABLED = "disabled"


class PhoneMode(StrEnum):
    BROWSER = "browser"  # the console's softphone (Twilio Voice JS SDK) with a headset
    PHONE = "phone"  # their own phone number, called when they accept


class Account(SQLModel, table=True):
    """A person who can log in: volunteer, coordinator or admin."""

    __tablename__ = "volunteer_account"

    id: int | None = Field(default=None, primary_key=True)
    public_id: str = Field(max_length=40, unique=True, index=True)  # engine id, softphone identity
    email: str = Field(max_length=254, unique=True, index=True)  # stored lower-case
    password_hash: str = Field(max_length=255)
    name: str = Field(max_length=80)
    role: str = Field(default=Role.VOLUNTEER.value, max_length=16)
    status: str = Field(default=AccountStatus.PENDING.value, max_length=16, index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())
    approved_at: datetime | None = Field(default=None, sa_column=_when(True))
    approved_by: int | None = Field(default=None)
    session_version: int = 0  # bumped to end every session of the account at once
    postal_code: str = Field(default="", max_length=5)
    departement: str = Field(default="", max_length=3)
    skills: str = Field(default="", max_length=200)
    languages: str = Field(default="fr", max_length=100)
    structure: str = Field(default="", max_length=120)
    phone_mode: str = Field(default=PhoneMode.BROWSER.value, max_length=16)
    phone_sealed: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    chat_capacity: int = 2
    ical_token: str = Field(max_length=64, unique=True, index=True)

    @property
    def skill_set(self) -> frozenset[str]:
        return frozenset(s for s in self.skills.split(",") if s)

    @property
    def language_set(self) -> frozenset[str]:
        return frozenset(s for s in self.languages.split(",") if s)


class RegistrationNotice(SQLModel, table=True):
    """"Prévenez-moi à la réouverture": an address to write to when sign-up opens."""

    __tablename__ = "volunteer_registration_notice"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=254, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())
    notified_at: datetime | None = Field(default=None, sa_column=_when(True))


class VolunteerSetting(SQLModel, table=True):
    """A setting coordinators change at run time (e.g. registration open or closed)."""

    __tablename__ = "volunteer_setting"

    key: str = Field(primary_key=True, max_length=60)
    value: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_when())
    updated_by: int | None = None


class BookingStatus(StrEnum):
    BOOKED = "booked"
    STANDBY = "standby"  # the slot was full: called up if someone cancels or is missing
    CANCELLED = "cancelled"


class Booking(SQLModel, table=True):
    """One volunteer in one slot (booked or on standby); one row per pair, reused."""

    __tablename__ = "volunteer_booking"
    __table_args__ = (
        UniqueConstraint("account_id", "slot_start", name="uq_booking_account_slot"),
        Index("ix_booking_slot_status", "slot_start", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="volunteer_account.id", index=True)
    slot_start: datetime = Field(sa_column=_when())
    slot_end: datetime = Field(sa_column=_when())
    status: str = Field(default=BookingStatus.BOOKED.value, max_length=16)
    recurring_id: int | None = Field(default=None, foreign_key="volunteer_recurring.id")
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())
    changed_at: datetime = Field(default_factory=utcnow, sa_column=_when())
    present_at: datetime | None = Field(default=None, sa_column=_when(True))  # adherence
    no_show_at: datetime | None = Field(default=None, sa_column=_when(True))


class SlotLock(SQLModel, table=True):
    """One row per slot that has had a booking, locked by every change to its bookings.

    Booking, cancelling and promoting from the standby list first lock this row
    (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite, inserting it takes the
    database's write lock), so two sessions changing one slot run one after the
    other and always count what the other committed: no overbooking, no place
    left empty while someone waits.
    """

    __tablename__ = "volunteer_slot_lock"

    slot_start: datetime = Field(sa_column=Column(UTCDateTime(), primary_key=True))


class RecurringBooking(SQLModel, table=True):
    """"Every Tuesday 14h–16h": expanded into bookings over the booking horizon."""

    __tablename__ = "volunteer_recurring"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="volunteer_account.id", index=True)
    weekday: int  # 0 = Monday
    start_time: str = Field(max_length=5)  # "HH:MM", Europe/Paris
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())


class SlotTarget(SQLModel, table=True):
    """A coordinator's target for one slot, overriding the default."""

    __tablename__ = "volunteer_slot_target"

    slot_start: datetime = Field(sa_column=Column(UTCDateTime(), primary_key=True))
    target: int


class WrapUp(SQLModel, table=True):
    """The volunteer's closing form of one task: topic, outcome, consent, notes."""

    __tablename__ = "volunteer_wrapup"

    id: int | None = Field(default=None, primary_key=True)
    task_id: str = Field(max_length=80, unique=True)
    account_id: int = Field(foreign_key="volunteer_account.id", index=True)
    volunteer_id: str = Field(max_length=40)
    caller_key: str = Field(default="", max_length=80, index=True)
    channel: str = Field(default="", max_length=16)
    departement: str = Field(default="", max_length=3)
    topic: str = Field(max_length=32)
    outcome: str = Field(max_length=16)  # resolved | referred | callback
    referral: str = Field(default="", max_length=40)
    consent: bool = False
    consent_demarche: str = Field(default="", max_length=200)
    consent_at: datetime | None = Field(default=None, sa_column=_when(True))
    notes: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())


class OutboxStatus(StrEnum):
    PENDING = "pending"  # no SMS or e-mail configured: coordinators read it on the outbox page
    SENT = "sent"
    FAILED = "failed"


class OutboxMessage(SQLModel, table=True):
    """Every reminder, nudge or alert written to a person, whatever the channel."""

    __tablename__ = "volunteer_outbox"

    id: int | None = Field(default=None, primary_key=True)
    dedup_key: str = Field(max_length=160, unique=True)  # one reminder per booking and kind
    account_id: int | None = Field(default=None, foreign_key="volunteer_account.id", index=True)
    kind: str = Field(max_length=32)
    channel: str = Field(max_length=16)  # sms | email | outbox
    subject: str = Field(default="", max_length=200)
    body: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(default=OutboxStatus.PENDING.value, max_length=16)
    error: str = Field(default="", max_length=300)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_when())
    sent_at: datetime | None = Field(default=None, sa_column=_when(True))


class ShiftLog(SQLModel, table=True):
    """What the shift jobs did (slot started, no-show found, line opened...): one row each."""

    __tablename__ = "volunteer_shift_log"
    __table_args__ = (UniqueConstraint("job_key", name="uq_shift_log_job"),)

    id: int | None = Field(default=None, primary_key=True)
    job_key: str = Field(max_length=160)  # the job id and its run: runs once, logs once
    kind: str = Field(max_length=32)
    slot_start: datetime | None = Field(default=None, sa_column=_when(True))
    detail: str = Field(default="{}", sa_column=Column(Text, nullable=False, default="{}"))
    at: datetime = Field(default_factory=utcnow, sa_column=_when())
