"""Tables owned by web/: territory groups and the audit log."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class TerritoryGroup(SQLModel, table=True):
    """A coordinator-defined group of départements, a ring between département and région."""

    __tablename__ = "territory_group"

    id: str = Field(primary_key=True, max_length=40)  # slug, e.g. "massif-alpin"
    name: str = Field(max_length=80)
    departements: list[str] = Field(sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(
        default_factory=utcnow, sa_column=Column(DateTime(timezone=True), nullable=False)
    )


class AuditLog(SQLModel, table=True):
    """Who did what, when: one row per action that changes how the line runs."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(
        default_factory=utcnow,
        sa_column=Column(DateTime(timezone=True), nullable=False, index=True),
    )
    actor: str = Field(max_length=120, index=True)  # an account id, or "system"
    action: str = Field(max_length=80, index=True)  # dotted verb, e.g. "territory_group.save"
    target: str = Field(default="", max_length=120)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
