"""Volunteer and coordinator accounts for a live simulation, written to the app's database.

Accounts are named after the run (``sim-<run>-0007@simulation.permanence.test``) and
created only when missing, so seeding twice for the same run is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from routing.skills import SKILLS
from volunteers import accounts
from volunteers.credentials import Sealer
from volunteers.models import AccountStatus, Role
from volunteers.profile import ProfileInput, clean_profile

SIM_DOMAIN = "simulation.permanence.test"


@dataclass(frozen=True)
class Login:
    email: str
    password: str
    departement: str


# Préfectures whose postal code is not the département's number followed by zeros: the
# cities split into arrondissements, and Corsica's two départements (2A Ajaccio, 2B Bastia).
PREFECTURE_POSTAL_CODES = {"13": "13001", "69": "69001", "75": "75001",
                           "2A": "20000", "2B": "20200"}  # fmt: skip


def postal_code_of(departement: str) -> str:
    """The postal code of the département's préfecture: a real one, which the app maps
    back to this département (Corsica and overseas included)."""
    if departement in PREFECTURE_POSTAL_CODES:
        return PREFECTURE_POSTAL_CODES[departement]
    return departement.ljust(5, "0")  # 05 → 05000 (Gap), 974 → 97400 (Saint-Denis)


async def seed_accounts(
    db: Any, secret_key: str, run: str, homes: list[str], password: str
) -> tuple[list[Login], Login]:
    """Approved softphone volunteers with every skill, one per home given, and a coordinator."""
    sealer = Sealer(secret_key)
    volunteers: list[Login] = []
    people = [(f"sim-{run}-coord", "75", Role.COORDINATOR)]
    people += [(f"sim-{run}-{i:04d}", dept, Role.VOLUNTEER) for i, dept in enumerate(homes)]
    coordinator: Login | None = None
    async with db.session() as session:
        for local, dept, role in people:
            email = f"{local}@{SIM_DOMAIN}"
            name = f"Bénévole simulé {local.rsplit('-', 1)[-1]}"
            if await accounts.by_email(session, email) is None:
                account = await accounts.create_account(
                    session, email=email, password=password, name=name, role=role,
                    status=AccountStatus.APPROVED, postal_code=postal_code_of(dept),
                )  # fmt: skip
                profile = clean_profile(
                    ProfileInput(name=name, postal_code=postal_code_of(dept),
                                 skills=tuple(SKILLS), structure="france_services")
                )  # fmt: skip
                await accounts.save_profile(session, account, profile, sealer)
            login = Login(email, password, dept)
            if role is Role.COORDINATOR:
                coordinator = login
            else:
                volunteers.append(login)
    assert coordinator is not None
    return volunteers, coordinator
