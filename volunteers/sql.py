"""Small SQL helpers shared by the services (SQLModel's async session)."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession


async def first(session: AsyncSession, statement: Any) -> Any:
    """The first row of a one-entity select (or a scalar such as a count), None if none."""
    return (await session.exec(statement)).first()
