"""French territories: départements, régions, coordinator-defined groups, postal codes.

The reference data is packaged with the engine (``routing/data``) so the app never
reads anything outside the project at run time.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from routing.errors import UnknownDepartement

_POSTAL_CODE = re.compile(r"^\d{5}$")
_GROUP_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


@dataclass(frozen=True)
class Region:
    code: str
    name: str


@dataclass(frozen=True)
class Departement:
    code: str
    name: str
    region: str
    population: int


@dataclass(frozen=True)
class Group:
    """A coordinator-defined ring between département and région (e.g. a massif)."""

    id: str
    name: str
    departements: frozenset[str]


@dataclass(frozen=True)
class Territory:
    """Where a task comes from or where a volunteer lives: the rings it belongs to."""

    departement: str
    region: str
    groups: tuple[str, ...] = ()


@dataclass
class Territories:
    """Lookup of départements, régions and groups; groups can be replaced at run time."""

    departements: dict[str, Departement]
    regions: dict[str, Region]
    # Replaced as a whole (with_groups), never changed in place: territory() keeps its answers.
    groups: dict[str, Group] = field(default_factory=dict)
    _rings: dict[str, Territory] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def departement(self, code: str) -> Departement:
        """The département with this INSEE code ('05', '2A', '974'); raises if unknown."""
        normalized = normalize_departement_code(code)
        try:
            return self.departements[normalized]
        except KeyError:
            raise UnknownDepartement(code) from None

    def territory(self, code: str) -> Territory:
        """The rings of a département: itself, its groups (sorted), its région."""
        normalized = normalize_departement_code(code)
        try:
            return self._rings[normalized]  # every task and log-in asks: once is enough
        except KeyError:
            pass
        dep = self.departement(normalized)
        groups = tuple(sorted(g.id for g in self.groups.values() if dep.code in g.departements))
        self._rings[dep.code] = Territory(departement=dep.code, region=dep.region, groups=groups)
        return self._rings[dep.code]

    def ring(self, departement: str, home: str) -> int:
        """How far a volunteer living in ``home`` is from a task of ``departement``:
        0 same département, 1 a shared group, 2 same région, 3 national (as the engine's
        widening levels)."""
        task, vol = self.territory(departement), self.territory(home)
        if task.departement == vol.departement:
            return 0
        if set(task.groups) & set(vol.groups):
            return 1
        return 2 if task.region == vol.region else 3

    def __post_init__(self) -> None:
        # However built: group ids travel in the engine's packed arguments (Engine.enqueue).
        for group in self.groups.values():
            if not _GROUP_ID.match(group.id):
                raise ValueError(f"invalid group id {group.id!r}")
            for code in group.departements:
                self.departement(code)

    def with_groups(self, groups: list[Group]) -> Territories:
        """A copy using these groups; every département in them must exist."""
        return Territories(self.departements, self.regions, {g.id: g for g in groups})

    def departement_for_postal_code(self, postal_code: str) -> Departement:
        """The département of a French postal code (Corsica and overseas included)."""
        return self.departement(departement_code_for_postal_code(postal_code))


def normalize_departement_code(code: str) -> str:
    """Accept '5', '05', '2a', ' 974 ' and return the INSEE spelling."""
    text = str(code).strip().upper()
    if text.isdigit() and len(text) == 1:
        return "0" + text
    return text


def departement_code_for_postal_code(postal_code: str) -> str:
    """Map a postal code to a département code; raises UnknownDepartement if malformed.

    The first two digits, except Corsica (200xx-201xx → 2A, 202xx-206xx → 2B) and
    overseas (97Xxx → 97X). Rare Corsican exceptions are not listed by La Poste as a
    rule, so the ranges are used as published.
    """
    text = str(postal_code).strip().replace(" ", "")
    if not _POSTAL_CODE.match(text):
        raise UnknownDepartement(postal_code)
    if text.startswith("20"):
        return "2A" if int(text[2]) <= 1 else "2B"
    if text.startswith("97") or text.startswith("98"):
        return text[:3]
    return text[:2]


@lru_cache(maxsize=1)
def load_territories() -> Territories:
    """The packaged départements and régions, without groups."""
    data = resources.files("routing") / "data"
    with (data / "regions.csv").open(encoding="utf-8") as f:
        regions = {row["code"]: Region(row["code"], row["name"]) for row in csv.DictReader(f)}
    with (data / "departements.csv").open(encoding="utf-8") as f:
        departements = {
            row["code"]: Departement(
                row["code"], row["name"], row["region"], int(row["population"])
            )
            for row in csv.DictReader(f)
        }
    return Territories(departements, regions)


MASSIF_ALPIN = Group(
    id="massif-alpin",
    name="Massif alpin",
    departements=frozenset({"04", "05", "06", "26", "38", "73", "74", "83", "84"}),
)
