"""The audit log: who changed what, and when."""

from __future__ import annotations

from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from web.models import AuditLog


def record(
    session: AsyncSession,
    actor: str,
    action: str,
    target: str = "",
    details: dict[str, Any] | None = None,
) -> AuditLog:
    """Add an entry to the session; it is written with the change it describes."""
    entry = AuditLog(actor=actor, action=action, target=target, details=details or {})
    session.add(entry)
    return entry


async def recent(session: AsyncSession, limit: int = 100) -> list[AuditLog]:
    """The latest entries, newest first."""
    rows = await session.exec(
        select(AuditLog).order_by(col(AuditLog.at).desc(), col(AuditLog.id).desc()).limit(limit)
    )
    return list(rows)
