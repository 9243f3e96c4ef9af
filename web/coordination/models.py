"""History tables: every routing event as recorded, and one row per contact (task).

Times are epoch milliseconds (UTC), so SQLite and PostgreSQL agree to the
millisecond; ``day`` is the Europe/Paris date the contact arrived, for reports.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class RoutingEvent(SQLModel, table=True):
    """One entry of a line's event stream, keyed by its stream id (a replay inserts nothing)."""

    __tablename__ = "routing_event"
    __table_args__ = (
        UniqueConstraint("line", "stream_id", name="uq_routing_event_stream"),
        Index("ix_routing_event_line_task", "line", "task_id"),
        Index("ix_routing_event_line_at", "line", "at_ms"),
    )

    id: int | None = Field(default=None, primary_key=True)
    line: str = Field(max_length=40)
    stream_id: str = Field(max_length=40)
    type: str = Field(max_length=32)
    at_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    task_id: str = Field(default="", max_length=80)
    volunteer_id: str = Field(default="", max_length=80)
    data: str = Field(default="{}", sa_column=Column(Text, nullable=False))  # JSON


class Contact(SQLModel, table=True):
    """A call, chat or callback from arrival to its end, derived from its events."""

    __tablename__ = "contact"
    __table_args__ = (Index("ix_contact_line_day", "line", "day"),)

    line: str = Field(primary_key=True, max_length=40)
    task_id: str = Field(primary_key=True, max_length=80)
    day: str = Field(default="", max_length=10)  # Europe/Paris date of arrival, YYYY-MM-DD
    channel: str = Field(default="", max_length=16)
    departement: str = Field(default="", max_length=3)
    region: str = Field(default="", max_length=3)
    topic: str = Field(default="", max_length=32)  # the skill asked for ('' = none)
    priority: int = 0
    resumed: bool = False
    created_ms: int | None = Field(default=None, sa_column=Column(BigInteger))
    first_offered_ms: int | None = Field(default=None, sa_column=Column(BigInteger))
    assigned_ms: int | None = Field(default=None, sa_column=Column(BigInteger))
    completed_ms: int | None = Field(default=None, sa_column=Column(BigInteger))
    ended_ms: int | None = Field(default=None, sa_column=Column(BigInteger))
    offers: int = 0
    declines: int = 0
    timeouts: int = 0
    transfers: int = 0
    level: int = 0  # widest territorial ring reached while waiting
    ring: int | None = None  # ring of the volunteer who answered first
    volunteer_id: str = Field(default="", max_length=80)  # who answered first
    last_volunteer_id: str = Field(default="", max_length=80)  # who held it last
    wait_ms: int | None = Field(default=None, sa_column=Column(BigInteger))  # to answer or leave
    handle_ms: int | None = Field(default=None, sa_column=Column(BigInteger))
    wrapup_ms: int | None = Field(default=None, sa_column=Column(BigInteger))
    outcome: str = Field(default="", max_length=16)
    reason: str = Field(default="", max_length=80)
    event_count: int = 0
