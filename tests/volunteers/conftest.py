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
        skills: str = "famille,emploi,sante",
    ) -> Account:
        n = next(_numbers)
        account = await accounts.create_account(
            db_session,
            email=email or f"benevole{n}@exemple.fr",
            password=PASSWORD,
            name=name,
            role=role,
            status=status,
            postal_code=postal_code,
        )
        account.skills = skills
        await db_session.commit()
        return account

    return make


@pytest.fixture
async def live(app_settings, clock, redis):
    """The whole app served by uvicorn on a free port (time: the test's ManualClock)."""
    from tests.volunteers.live import serve
    from web.app import create_app

    app = create_app(app_settings, clock=clock)
    with serve(app) as server:
        yield server
    async for key in redis.scan_iter(match=f"*{{{app_settings.line}}}*", count=1000):
        await redis.delete(key)


@pytest.fixture
def sessions(database):
    return database.session


@pytest.fixture
def vol(engine, sessions):
    """The volunteers' services in the test's own event loop (same Redis line, same DB)."""
    from volunteers.runtime import Volunteers

    return Volunteers(
        settings=VolunteersSettings(secret_key="test-secret-key-not-for-production"),
        engine=engine,
        sessions=sessions,
    )
