"""Coordinator-defined groups of départements, stored in SQL and fed to the engine."""

from __future__ import annotations

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from routing.errors import UnknownDepartement
from routing.territory import (
    MASSIF_ALPIN,
    Group,
    Territories,
    load_territories,
    normalize_departement_code,
)
from web import audit
from web.models import TerritoryGroup, utcnow

DEFAULT_GROUPS = (MASSIF_ALPIN,)


class InvalidGroup(ValueError):
    """A group a coordinator tried to save is not valid; ``message`` is for them."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def to_group(row: TerritoryGroup) -> Group:
    return Group(id=row.id, name=row.name, departements=frozenset(row.departements))


async def list_groups(session: AsyncSession) -> list[TerritoryGroup]:
    """Every group, by name."""
    return list(await session.exec(select(TerritoryGroup).order_by(col(TerritoryGroup.name))))


async def load_group_territories(session: AsyncSession) -> Territories:
    """The packaged départements and régions with the groups stored in SQL."""
    groups = [to_group(row) for row in await list_groups(session)]
    return load_territories().with_groups(groups)


def validate_group(group_id: str, name: str, departements: list[str]) -> Group:
    """The group these fields describe, or InvalidGroup with a message in French."""
    name = name.strip()
    if not name or len(name) > 80:
        raise InvalidGroup("Le nom du groupe doit faire entre 1 et 80 caractères.")
    codes = sorted({normalize_departement_code(c) for c in departements if str(c).strip()})
    if not codes:
        raise InvalidGroup("Un groupe doit contenir au moins un département.")
    group = Group(id=group_id.strip(), name=name, departements=frozenset(codes))
    try:
        load_territories().with_groups([group])
    except UnknownDepartement as exc:
        raise InvalidGroup(f"Département inconnu : {exc.detail}.") from None
    except ValueError:
        raise InvalidGroup(
            "L'identifiant du groupe ne peut contenir que des minuscules, des chiffres et "
            "des tirets (40 caractères au plus)."
        ) from None
    return group


async def save_group(
    session: AsyncSession, group_id: str, name: str, departements: list[str], actor: str
) -> TerritoryGroup:
    """Create or replace a group (audited); the caller commits. Bad input changes nothing."""
    group = validate_group(group_id, name, departements)
    row = await session.get(TerritoryGroup, group.id)
    before = None if row is None else {"name": row.name, "departements": row.departements}
    if row is None:
        row = TerritoryGroup(id=group.id, name=group.name, departements=[])
    row.name = group.name
    row.departements = sorted(group.departements)
    row.updated_at = utcnow()
    session.add(row)
    audit.record(
        session,
        actor,
        "territory_group.save",
        group.id,
        {"before": before, "after": {"name": row.name, "departements": row.departements}},
    )
    return row


async def delete_group(session: AsyncSession, group_id: str, actor: str) -> bool:
    """Remove a group (audited); False if there was none. The caller commits."""
    row = await session.get(TerritoryGroup, group_id)
    if row is None:
        return False
    await session.delete(row)
    audit.record(
        session,
        actor,
        "territory_group.delete",
        group_id,
        {"before": {"name": row.name, "departements": row.departements}},
    )
    return True


async def seed_default_groups(session: AsyncSession, actor: str = "system") -> list[str]:
    """Add the default groups that are missing (the Massif alpin); returns the ids added."""
    added = []
    for group in DEFAULT_GROUPS:
        if await session.get(TerritoryGroup, group.id) is None:
            await save_group(session, group.id, group.name, sorted(group.departements), actor)
            added.append(group.id)
    return added
