"""Territory groups: stored in SQL, validated, audited, loaded into the engine's rings."""

from __future__ import annotations

import pytest
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from web.models import AuditLog, TerritoryGroup
from web.territories import (
    InvalidGroup,
    delete_group,
    list_groups,
    load_group_territories,
    save_group,
    seed_default_groups,
)


async def audit_rows(session: AsyncSession) -> list[AuditLog]:
    return list(await session.exec(select(AuditLog).order_by(AuditLog.id)))


async def test_a_saved_group_becomes_a_ring_between_departement_and_region(
    db_session: AsyncSession,
) -> None:
    await save_group(db_session, "pyrenees", "Pyrénées", ["64", "65", "9", "66"], actor="coord-1")
    await db_session.commit()

    territories = await load_group_territories(db_session)
    assert territories.territory("65").groups == ("pyrenees",)
    assert territories.territory("09").groups == ("pyrenees",)  # "9" was normalised
    assert territories.territory("75").groups == ()
    [row] = await list_groups(db_session)
    assert row.departements == ["09", "64", "65", "66"]
    [entry] = await audit_rows(db_session)
    assert (entry.actor, entry.action) == ("coord-1", "territory_group.save")
    assert entry.target == "pyrenees"
    assert entry.details["before"] is None
    assert entry.details["after"]["name"] == "Pyrénées"


async def test_saving_again_replaces_and_audits_the_change(db_session: AsyncSession) -> None:
    await save_group(db_session, "savoies", "Savoies", ["73"], actor="coord-1")
    await db_session.commit()
    await save_group(db_session, "savoies", "Les deux Savoie", ["73", "74"], actor="coord-2")
    await db_session.commit()

    territories = await load_group_territories(db_session)
    assert territories.groups["savoies"].name == "Les deux Savoie"
    assert territories.territory("74").groups == ("savoies",)
    last = (await audit_rows(db_session))[-1]
    assert last.actor == "coord-2"
    assert last.details["before"] == {"name": "Savoies", "departements": ["73"]}


@pytest.mark.parametrize(
    ("group_id", "name", "departements", "says"),
    [
        ("alpes", "Alpes", ["05", "99"], "Département inconnu"),
        ("alpes", "Alpes", [], "au moins un département"),
        ("alpes", "  ", ["05"], "nom du groupe"),
        ("Alpes du Sud!", "Alpes", ["05"], "identifiant du groupe"),
    ],
)
async def test_bad_groups_are_refused_in_french_and_change_nothing(
    db_session: AsyncSession, group_id: str, name: str, departements: list[str], says: str
) -> None:
    with pytest.raises(InvalidGroup) as info:
        await save_group(db_session, group_id, name, departements, actor="coord-1")
    assert says in info.value.message
    await db_session.commit()
    assert await list_groups(db_session) == []
    assert await audit_rows(db_session) == []


async def test_delete_removes_the_ring(db_session: AsyncSession) -> None:
    await save_group(db_session, "corse", "Corse", ["2A", "2B"], actor="coord-1")
    await db_session.commit()
    assert await delete_group(db_session, "corse", actor="coord-1") is True
    await db_session.commit()
    assert (await load_group_territories(db_session)).territory("2A").groups == ()
    assert await delete_group(db_session, "corse", actor="coord-1") is False
    assert [e.action for e in await audit_rows(db_session)] == [
        "territory_group.save",
        "territory_group.delete",
    ]


async def test_default_groups_are_seeded_once(db_session: AsyncSession) -> None:
    assert await seed_default_groups(db_session) == ["massif-alpin"]
    await db_session.commit()
    assert await seed_default_groups(db_session) == []
    await db_session.commit()
    rows = list(await db_session.exec(select(TerritoryGroup)))
    assert [(r.id, r.name) for r in rows] == [("massif-alpin", "Massif alpin")]
    territories = await load_group_territories(db_session)
    assert territories.territory("05").groups == ("massif-alpin",)
    assert territories.territory("13").groups == ()
