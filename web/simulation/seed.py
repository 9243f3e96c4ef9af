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
from volunteers.models import AccountStatus, PhoneMode, Role
from volunteers.profile import ProfileInput, clean_profile

SIM_DOMAIN = "simulation.permanence.test"


@dataclass(frozen=True)
class Login:
    email: str
    password: str
    departement: str
    phone: str = ""  # taking calls on this phone (phone mode), not the console's softphone


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


def phone_number(i: int) -> str:
    """A valid French landline number for simulated volunteer i (04 76 in Grenoble)."""
    return f"+33476{i:06d}"


async def seed_accounts(
    db: Any, secret_key: str, run: str, homes: list[str], password: str,
    phones: list[str] | None = None,
) -> tuple[list[Login], Login]:
    """Approved volunteers with every skill, one per home given, and a coordinator.

    Volunteer i takes calls on ``phones[i]`` (phone mode) when it is given and not empty,
    else on the console's softphone."""
    sealer = Sealer(secret_key)
    volunteers: list[Login] = []
    phones = phones or [""] * len(homes)
    people = [(f"sim-{run}-coord", "75", Role.COORDINATOR, "")]
    people += [(f"sim-{run}-{i:04d}", dept, Role.VOLUNTEER, phones[i])
               for i, dept in enumerate(homes)]  # fmt: skip
    coordinator: Login | None = None
    async with db.session() as session:
        for local, dept, role, phone in people:
            email = f"{local}@{SIM_DOMAIN}"
            name = f"Bénévole simulé {local.rsplit('-', 1)[-1]}"
            if await accounts.by_email(session, email) is None:
                account = await accounts.create_account(
                    session, email=email, password=password, name=name, role=role,
                    status=AccountStatus.APPROVED, postal_code=postal_code_of(dept),
                )  # fmt: skip
                mode = PhoneMode.PHONE if phone else PhoneMode.BROWSER
                profile = clean_profile(
                    ProfileInput(name=name, postal_code=postal_code_of(dept),
                                 skills=tuple(SKILLS), structure="france_services",
                                 phone_mode=mode.value, phone=phone)
                )  # fmt: skip
                await accounts.save_profile(session, account, profile, sealer)
            login = Login(email, password, dept, phone)
            if role is Role.COORDINATOR:
                coordinator = login
            else:
                volunteers.append(login)
    assert coordinator is not None
    return volunteers, coordinator
