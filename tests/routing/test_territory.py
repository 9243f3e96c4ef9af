"""Territories: postal codes to départements, régions, and coordinator-defined groups."""

from __future__ import annotations

import pytest

from routing.errors import UnknownDepartement
from routing.territory import (
    MASSIF_ALPIN,
    Group,
    Territories,
    Territory,
    departement_code_for_postal_code,
    load_territories,
    normalize_departement_code,
)


@pytest.mark.parametrize(
    ("postal_code", "departement"),
    [
        ("05000", "05"),  # Gap
        ("05100", "05"),  # Briançon
        ("75001", "75"),
        ("13001", "13"),
        ("01000", "01"),
        ("38000", "38"),
        (" 75 011 ", "75"),  # spaces as people type them
        ("20000", "2A"),  # Ajaccio
        ("20090", "2A"),
        ("20190", "2A"),
        ("20200", "2B"),  # Bastia
        ("20250", "2B"),  # Corte
        ("20600", "2B"),
        ("97100", "971"),  # Guadeloupe
        ("97200", "972"),  # Martinique
        ("97300", "973"),  # Guyane
        ("97400", "974"),  # La Réunion
        ("97600", "976"),  # Mayotte
    ],
)
def test_postal_code_to_departement(postal_code: str, departement: str) -> None:
    territories = load_territories()
    assert departement_code_for_postal_code(postal_code) == departement
    assert territories.departement_for_postal_code(postal_code).code == departement


@pytest.mark.parametrize(
    "postal_code",
    ["", "7500", "750011", "75OO1", "abcde", "7500-1", "00000", "98714", "97500", "20"],
)
def test_malformed_or_unknown_postal_codes_are_refused(postal_code: str) -> None:
    with pytest.raises(UnknownDepartement) as err:
        load_territories().departement_for_postal_code(postal_code)
    assert err.value.code == "unknown_departement"
    assert "département" in err.value.message  # French, for the caller's chat form


@pytest.mark.parametrize(
    ("code", "normalized"), [("5", "05"), ("05", "05"), ("2a", "2A"), (" 974 ", "974")]
)
def test_departement_codes_are_normalized(code: str, normalized: str) -> None:
    assert normalize_departement_code(code) == normalized
    assert load_territories().departement(code).code == normalized


@pytest.mark.parametrize("code", ["99", "20", "00", "975", "", "Paris", "2C"])
def test_unknown_departement_codes_are_refused(code: str) -> None:
    with pytest.raises(UnknownDepartement):
        load_territories().departement(code)


def test_reference_data_is_complete() -> None:
    territories = load_territories()
    assert len(territories.departements) == 101  # 96 metropolitan + 5 overseas
    assert len(territories.regions) == 18
    for dep in territories.departements.values():
        assert dep.region in territories.regions, dep
        assert dep.population > 0


@pytest.mark.parametrize(
    ("departement", "region", "region_name"),
    [
        ("05", "93", "Provence-Alpes-Côte d'Azur"),
        ("13", "93", "Provence-Alpes-Côte d'Azur"),
        ("38", "84", "Auvergne-Rhône-Alpes"),
        ("75", "11", "Île-de-France"),
        ("2A", "94", "Corse"),
        ("2B", "94", "Corse"),
        ("974", "04", "La Réunion"),
    ],
)
def test_region_of_departement(departement: str, region: str, region_name: str) -> None:
    territories = load_territories()
    dep = territories.departement(departement)
    assert dep.region == region
    assert territories.regions[region].name == region_name


def test_groups_sit_between_departement_and_region(territories: Territories) -> None:
    # The Massif alpin spans two régions: PACA (04 05 06 83 84) and AURA (26 38 73 74).
    assert territories.territory("05") == Territory("05", "93", ("massif-alpin",))
    assert territories.territory("38") == Territory("38", "84", ("massif-alpin",))
    assert territories.territory("13") == Territory("13", "93", ())
    assert territories.territory("75") == Territory("75", "11", ())
    assert {territories.territory(d).region for d in MASSIF_ALPIN.departements} == {"84", "93"}


def test_a_departement_can_belong_to_several_groups() -> None:
    rhone_valley = Group("vallee-du-rhone", "Vallée du Rhône", frozenset({"26", "69", "84"}))
    territories = load_territories().with_groups([MASSIF_ALPIN, rhone_valley])
    assert territories.territory("26").groups == ("massif-alpin", "vallee-du-rhone")
    assert territories.territory("69").groups == ("vallee-du-rhone",)


def test_groups_are_replaced_not_shared() -> None:
    base = load_territories()
    assert base.territory("05").groups == ()  # known before the copy: not carried over
    with_massif = base.with_groups([MASSIF_ALPIN])
    assert with_massif.territory("05").groups == ("massif-alpin",)
    assert base.territory("05").groups == ()  # the packaged data is left alone
    assert with_massif.with_groups([]).territory("05").groups == ()
    assert with_massif.territory(" 5") is with_massif.territory("05")  # one answer per code


def test_groups_with_unknown_departements_or_bad_ids_are_refused() -> None:
    base = load_territories()
    with pytest.raises(UnknownDepartement):
        base.with_groups([Group("bad", "Mauvais", frozenset({"05", "99"}))])
    with pytest.raises(ValueError):
        base.with_groups([Group("Massif Alpin!", "Massif alpin", frozenset({"05"}))])


def test_a_group_id_holding_the_engines_separator_is_refused_however_built() -> None:
    base = load_territories()
    odd = Group("a|b", "Groupe mal formé", frozenset({"05"}))  # not through with_groups
    with pytest.raises(ValueError, match="invalid group id"):
        Territories(base.departements, base.regions, {odd.id: odd})


def test_ring_between_a_task_and_a_volunteers_home() -> None:
    territories = load_territories().with_groups([MASSIF_ALPIN])
    assert territories.ring("05", "05") == 0
    assert territories.ring("05", "38") == 1  # the Massif alpin, across two régions
    assert territories.ring("13", "06") == 2  # Provence-Alpes-Côte d'Azur, no shared group
    assert territories.ring("2A", "75") == 3
