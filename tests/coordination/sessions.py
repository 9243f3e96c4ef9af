"""Logged-in sessions for coordination tests: real accounts, real signed session cookies."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from itsdangerous import URLSafeTimedSerializer

from volunteers import accounts
from volunteers.access import new_session_data
from volunteers.models import Account, AccountStatus, Role
from web.auth import COOKIE_NAME, SessionAuthMiddleware, install_auth

PASSWORD = "mot-de-passe-solide-42"
# The salt SessionAuthMiddleware signs with (web/auth.py); a wrong one would fail every test.
SESSION_SALT = "permanence-session"


@dataclass
class Login:
    account: Account
    cookie: str
    csrf: str

    @property
    def cookies(self) -> dict[str, str]:
        """As a Cookie header (per-request cookies= is deprecated in httpx)."""
        return {"cookie": f"{COOKIE_NAME}={self.cookie}"}


def ensure_auth(app: FastAPI, secret_key: str, sessions) -> None:  # noqa: ANN001
    """Install the session middleware unless the app already has it (before it starts)."""
    if not any(m.cls is SessionAuthMiddleware for m in app.user_middleware):
        install_auth(app, secret_key=secret_key, sessions=sessions, secure=False)


async def login(
    db, secret_key: str, name: str, role: Role, postal_code: str = "05000"  # noqa: ANN001
) -> Login:
    """Create an approved account and the session cookie a successful login would set."""
    async with db.session() as session:
        account = await accounts.create_account(
            session,
            email=f"{name.lower().replace(' ', '.')}@exemple.fr",
            password=PASSWORD,
            name=name,
            role=role,
            status=AccountStatus.APPROVED,
            postal_code=postal_code,
        )
    data = new_session_data(account.id, account.session_version)
    cookie = URLSafeTimedSerializer(secret_key, salt=SESSION_SALT).dumps(data)
    return Login(account, cookie, data["csrf"])
