"""Fixtures of the volunteers tests: settings, accounts on the test's migrated database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from itertools import count

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from volunteers import accounts
from volunteers.models import Account, AccountStatus, Role
from volunteers.settings import VolunteersSettings

PASSWORD = "mot-de-passe-solide"
_numbers = count(1)


@pytest.fixture
def vsettings() -> VolunteersSettings:
    return VolunteersSettings(secret_key="test-secret-key-not-for-production", slot_max=2)


MakeAccount = Callable[..., Awaitable[Account]]


@pytest.fixture
def make_account(db_session: AsyncSession) -> MakeAccount:
    """Create an account (approved volunteer in the Hautes-Alpes unless told otherwise)."""

    async def make(
        name: str = "Camille Martin",
        *,
        role: Role = Role.VOLUNTEER,
        status: AccountStatus = AccountStatus.APPROVED,
        postal_code: str = "05000",
        email: str = "",
    ) -> Account:
        n = next(_numbers)
        return await accounts.create_account(
            db_session,
            email=email or f"benevole{n}@exemple.fr",
            password=PASSWORD,
            name=name,
            role=role,
            status=status,
            postal_code=postal_code,
        )

    return make
