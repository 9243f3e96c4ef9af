"""What lasts of callers' contacts: callback requests and chat transcripts (SQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Column, DateTime, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class CallbackSource(StrEnum):
    VOICE = "voice"  # asked on the phone while the line was closed or nobody was on duty
    CHAT_FORM = "chat_form"  # "laisser un message" on /aide


class CallbackState(StrEnum):
    PENDING = "pending"  # waits for the line to open
    QUEUED = "queued"  # a callback task is in the engine
    CANCELLED = "cancelled"


class CallbackRequest(SQLModel, table=True):
    """A request to be called (or written) back; contact details are encrypted at rest."""

    __tablename__ = "callback_request"

    id: str = Field(primary_key=True, max_length=40)
    created_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )
    source: str = Field(max_length=16)
    state: str = Field(default=CallbackState.PENDING.value, max_length=16, index=True)
    departement: str = Field(max_length=3)
    skill: str = Field(default="", max_length=32)
    caller_key: str = Field(default="", max_length=40, index=True)
    phone_sealed: str = Field(default="")
    email_sealed: str = Field(default="")
    message_sealed: str = Field(default="")
    preferred_time: str = Field(default="", max_length=120)
    first_name: str = Field(default="", max_length=60)
    task_id: str = Field(default="", max_length=40, index=True)
    queued_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True), nullable=True)
    )


class ChatMessage(SQLModel, table=True):
    """One line of a chat transcript, copied from the live room when the chat ends."""

    __tablename__ = "chat_message"
    __table_args__ = (UniqueConstraint("task_id", "stream_id", name="uq_chat_message_stream"),)

    id: int | None = Field(default=None, primary_key=True)
    task_id: str = Field(max_length=40, index=True)
    stream_id: str = Field(max_length=40)
    at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    author: str = Field(max_length=16)  # caller, volunteer, system
    name: str = Field(default="", max_length=60)
    volunteer_id: str = Field(default="", max_length=40)
    text: str = Field(max_length=2000)


async def fetch_all(session: Any, statement: Any) -> list[Any]:
    """Rows of a select, with SQLModel's session (exec) or SQLAlchemy's (execute)."""
    if hasattr(session, "exec"):
        return list((await session.exec(statement)).all())
    return list((await session.execute(statement)).scalars().all())
