"""Accounts: sign-up (when open), approval, login, roles, profiles, registration notices."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from routing.models import VolunteerProfile
from volunteers.credentials import Sealer, hash_password, needs_rehash, verify_password
from volunteers.errors import VolunteerError
from volunteers.models import (
    Account,
    AccountStatus,
    PhoneMode,
    RegistrationNotice,
    Role,
    VolunteerSetting,
)
from volunteers.profile import CleanProfile, clean_name, departement_of
from volunteers.sql import first

REGISTRATION_OPEN = "registration_open"
MIN_PASSWORD = 10
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
# A hash to verify against when the e-mail is unknown, so timing does not tell who has an account.
_DUMMY_HASH = hash_password("not-a-real-password-" + secrets.token_hex(8))


def clean_email(email: str) -> str:
    text = email.strip().lower()
    if len(text) > 254 or not _EMAIL.match(text):
        raise VolunteerError("bad_email", "Cette adresse e-mail n'est pas valide.")
    return text


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise VolunteerError(
            "weak_password", f"Le mot de passe doit compter au moins {MIN_PASSWORD} caractères."
        )
    if len(password) > 200:
        raise VolunteerError(
            "long_password", "Le mot de passe est trop long (200 caractères au plus)."
        )


def new_public_id() -> str:
    return "v" + secrets.token_hex(8)


# Settings -----------------------------------------------------------------------------


async def get_setting(session: AsyncSession, key: str, default: str = "") -> str:
    row = await session.get(VolunteerSetting, key)
    return row.value if row else default


async def put_setting(session: AsyncSession, key: str, value: str, by: int | None) -> None:
    row = await session.get(VolunteerSetting, key)
    if row is None:
        session.add(VolunteerSetting(key=key, value=value, updated_by=by))
    else:
        row.value, row.updated_by, row.updated_at = value, by, datetime.now(UTC)


async def registration_is_open(session: AsyncSession) -> bool:
    """Whether the sign-up page accepts new volunteers (closed until a coordinator opens it)."""
    return await get_setting(session, REGISTRATION_OPEN, "0") == "1"


async def set_registration(session: AsyncSession, open_: bool, by: int | None) -> list[str]:
    """Open or close sign-up; on opening, returns the addresses waiting to be told (marked)."""
    await put_setting(session, REGISTRATION_OPEN, "1" if open_ else "0", by)
    waiting: list[str] = []
    if open_:
        rows = await session.exec(
            select(RegistrationNotice).where(RegistrationNotice.notified_at.is_(None))
        )
        for row in rows:
            row.notified_at = datetime.now(UTC)
            waiting.append(row.email)
    await session.commit()
    return waiting


async def ask_for_notice(session: AsyncSession, email: str) -> None:
    """Remember an address to tell when sign-up reopens (idempotent)."""
    address = clean_email(email)
    exists = await first(
        session, select(RegistrationNotice).where(RegistrationNotice.email == address)
    )
    if exists is None:
        session.add(RegistrationNotice(email=address))
        await session.commit()


# Accounts -----------------------------------------------------------------------------


async def by_email(session: AsyncSession, email: str) -> Account | None:
    return await first(session, select(Account).where(Account.email == email.strip().lower()))


async def by_public_id(session: AsyncSession, public_id: str) -> Account | None:
    return await first(session, select(Account).where(Account.public_id == public_id))


async def create_account(
    session: AsyncSession,
    *,
    email: str,
    password: str,
    name: str,
    role: Role = Role.VOLUNTEER,
    status: AccountStatus = AccountStatus.PENDING,
    postal_code: str = "",
) -> Account:
    """Create an account after checking every field (for sign-up, the CLI and the demo)."""
    address = clean_email(email)
    check_password(password)
    clean = clean_name(name)
    code, departement = departement_of(postal_code) if postal_code else ("", "")
    account = Account(
        public_id=new_public_id(),
        email=address,
        password_hash=hash_password(password),
        name=clean,
        role=Role(role).value,
        status=AccountStatus(status).value,
        postal_code=code,
        departement=departement,
        ical_token=secrets.token_urlsafe(32),
    )
    if account.status == AccountStatus.APPROVED:
        account.approved_at = datetime.now(UTC)
    session.add(account)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise VolunteerError(
            "email_taken", "Un compte existe déjà avec cette adresse e-mail."
        ) from None
    await session.refresh(account)
    return account


async def sign_up(
    session: AsyncSession, *, email: str, password: str, name: str, postal_code: str
) -> Account:
    """A volunteer's own sign-up: only while registration is open; waits for approval."""
    if not await registration_is_open(session):
        raise VolunteerError(
            "registration_closed",
            "Les inscriptions sont fermées pour le moment. "
            "Laissez votre adresse pour être prévenu de leur réouverture.",
        )
    return await create_account(
        session, email=email, password=password, name=name, postal_code=postal_code
    )


async def authenticate(session: AsyncSession, email: str, password: str) -> Account | None:
    """The account these credentials open, or None (unknown, wrong password, disabled)."""
    account = await by_email(session, email)
    if account is None:
        verify_password(_DUMMY_HASH, password)
        return None
    if not verify_password(account.password_hash, password):
        return None
    if account.status == AccountStatus.DISABLED:
        return None
    if needs_rehash(account.password_hash):
        account.password_hash = hash_password(password)
        await session.commit()
    return account


async def change_password(session: AsyncSession, account: Account, old: str, new: str) -> None:
    """Change the password and end every other session of the account."""
    if not verify_password(account.password_hash, old):
        raise VolunteerError("bad_password", "L'ancien mot de passe n'est pas le bon.")
    check_password(new)
    account.password_hash = hash_password(new)
    account.session_version += 1
    await session.commit()


async def by_ids(session: AsyncSession, ids: set[int]) -> dict[int, Account]:
    """These accounts' rows in one query (open sockets re-check their sessions with it)."""
    rows = await session.exec(select(Account).where(col(Account.id).in_(ids)))
    return {account.id: account for account in rows if account.id is not None}


async def end_sessions(session: AsyncSession, account_id: int) -> None:
    """Log out everywhere: every session of the account ends (an open console within a
    heartbeat, ConsoleHub.check_accounts), and no cookie signed before opens anything."""
    account = await session.get(Account, account_id)
    if account is None:
        return
    account.session_version += 1
    await session.commit()


async def approve(session: AsyncSession, account_id: int, by: int) -> Account:
    """A coordinator approves a pending volunteer: from now on they can book slots.

    Only a pending account: approving is not a way to reopen a disabled one.
    """
    account = await session.get(Account, account_id)
    if account is None:
        raise VolunteerError("unknown_account", "Ce compte n'existe pas.")
    if account.status != AccountStatus.PENDING:
        raise VolunteerError("not_pending", "Ce compte n'attend pas de validation.")
    account.status = AccountStatus.APPROVED.value
    account.approved_at, account.approved_by = datetime.now(UTC), by
    await session.commit()
    return account


async def disable(session: AsyncSession, account_id: int) -> Account:
    """Close an account: its sessions end at once and it can no longer log in."""
    account = await session.get(Account, account_id)
    if account is None:
        raise VolunteerError("unknown_account", "Ce compte n'existe pas.")
    account.status = AccountStatus.DISABLED.value
    account.session_version += 1
    await session.commit()
    return account


async def set_role(session: AsyncSession, account_id: int, role: Role) -> Account:
    account = await session.get(Account, account_id)
    if account is None:
        raise VolunteerError("unknown_account", "Ce compte n'existe pas.")
    account.role = Role(role).value
    account.session_version += 1
    await session.commit()
    return account


async def pending_accounts(session: AsyncSession) -> list[Account]:
    rows = await session.exec(
        select(Account).where(Account.status == AccountStatus.PENDING).order_by(Account.id)
    )
    return list(rows)


async def count_accounts(session: AsyncSession) -> int:
    return int(await first(session, select(func.count()).select_from(Account)) or 0)


# Profiles -----------------------------------------------------------------------------


async def save_profile(
    session: AsyncSession, account: Account, profile: CleanProfile, sealer: Sealer
) -> Account:
    """Store a checked profile; the phone number is sealed, never stored in clear."""
    account.name = profile.name
    account.postal_code = profile.postal_code
    account.departement = profile.departement
    account.skills = profile.skills
    account.languages = profile.languages
    account.structure = profile.structure
    account.phone_mode = profile.phone_mode.value
    account.phone_sealed = sealer.seal(profile.phone) if profile.phone else ""
    account.chat_capacity = profile.chat_capacity
    await session.commit()
    return account


def profile_complete(account: Account) -> bool:
    """Whether the engine can route to this person (a home département is known)."""
    if not account.departement:
        return False
    return account.phone_mode != PhoneMode.PHONE or bool(account.phone_sealed)


def routing_profile(account: Account) -> VolunteerProfile:
    """What the engine needs to route to this volunteer."""
    return VolunteerProfile(
        id=account.public_id,
        departement=account.departement,
        skills=account.skill_set,
        languages=account.language_set,
        chat_capacity=account.chat_capacity,
        name=account.name,
    )
