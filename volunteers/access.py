"""Who is asking: the session contract shared by every page, endpoint and websocket.

web/auth.py installs a middleware that reads the signed session cookie and puts in
the ASGI scope (HTTP and websocket alike):

- ``scope["user"]``: a ``SessionUser`` (or ``AnonymousUser``) — ``conn.user``;
- ``scope["auth"]``: ``AuthCredentials`` with the role scopes — ``conn.auth.scopes``:
  ``authenticated``, ``volunteer``, and ``coordinator`` / ``admin`` by role
  (roles nest: an admin is a coordinator, a coordinator may also answer calls);
- ``scope[SESSION_KEY]``: the session's data (its CSRF token among them).

Packages that cannot import volunteers/ (callers/) may read ``conn.user`` and
``conn.auth.scopes`` directly; the dependencies below are the usual way.

Use as FastAPI dependencies, on HTTP routes and websocket routes alike::

    @router.get("/tableau")
    async def page(user: SessionUser = Depends(require_coordinator)): ...

    @router.post("/action", dependencies=[Depends(require_csrf)])

    @router.websocket("/ws")
    async def ws(websocket: WebSocket, user: SessionUser = Depends(require_volunteer)): ...

An HTTP request without a session gets ``LoginRequired`` (401: web/ redirects pages
to the login form), a wrong role 403; a websocket is refused before it opens
(close code 1008), so the client sees the handshake fail.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, WebSocketException, status
from starlette.authentication import BaseUser
from starlette.requests import HTTPConnection, Request

from volunteers.models import Role

SESSION_KEY = "permanence.session"
DIRTY_KEY = "permanence.session_dirty"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

ROLE_SCOPES: dict[Role, tuple[str, ...]] = {
    Role.VOLUNTEER: ("authenticated", "volunteer"),
    Role.COORDINATOR: ("authenticated", "volunteer", "coordinator"),
    Role.ADMIN: ("authenticated", "volunteer", "coordinator", "admin"),
}


@dataclass(frozen=True)
class SessionUser(BaseUser):
    """The logged-in person as the session middleware found them in SQL."""

    account_id: int
    public_id: str  # the engine's volunteer id and the softphone identity
    name: str
    email: str
    role: Role
    approved: bool

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.name

    @property
    def identity(self) -> str:
        return self.public_id

    @property
    def scopes(self) -> tuple[str, ...]:
        return ROLE_SCOPES[self.role]


class LoginRequired(HTTPException):
    """No session: pages redirect to the login form, APIs answer 401."""

    def __init__(self) -> None:
        super().__init__(status.HTTP_401_UNAUTHORIZED, "Connectez-vous pour continuer.")


# Session data --------------------------------------------------------------------------


def session_data(conn: HTTPConnection) -> dict[str, Any]:
    return conn.scope.setdefault(SESSION_KEY, {})


def new_session_data(account_id: int | None = None, version: int = 0) -> dict[str, Any]:
    data: dict[str, Any] = {"sid": secrets.token_urlsafe(16), "csrf": secrets.token_urlsafe(32)}
    if account_id is not None:
        data.update(uid=account_id, ver=version)
    return data


def begin_session(conn: HTTPConnection, account_id: int, version: int) -> None:
    """Log in: a fresh session (new id and CSRF token, against fixation) sent with the reply."""
    conn.scope[SESSION_KEY] = new_session_data(account_id, version)
    conn.scope[DIRTY_KEY] = True


def end_session(conn: HTTPConnection) -> None:
    """Log out: an anonymous session replaces the current one."""
    conn.scope[SESSION_KEY] = new_session_data()
    conn.scope[DIRTY_KEY] = True


def csrf_token(conn: HTTPConnection) -> str:
    """The token every form of this session must send back (field or X-CSRF-Token header)."""
    data = session_data(conn)
    if "csrf" not in data:
        data.update(new_session_data())
        conn.scope[DIRTY_KEY] = True
    return data["csrf"]


# Dependencies --------------------------------------------------------------------------


def current_user(conn: HTTPConnection) -> SessionUser | None:
    """The logged-in person, or None."""
    user = conn.scope.get("user")
    return user if isinstance(user, SessionUser) else None


def _refuse(conn: HTTPConnection, code: int, message: str) -> Exception:
    if conn.scope["type"] == "websocket":
        return WebSocketException(code=status.WS_1008_POLICY_VIOLATION, reason=message)
    if code == status.HTTP_401_UNAUTHORIZED:
        return LoginRequired()
    return HTTPException(code, message)


def _require(conn: HTTPConnection, scope: str) -> SessionUser:
    user = current_user(conn)
    if user is None:
        raise _refuse(conn, status.HTTP_401_UNAUTHORIZED, "Connectez-vous pour continuer.")
    if scope not in user.scopes:
        raise _refuse(
            conn, status.HTTP_403_FORBIDDEN, "Cette page est réservée à un autre rôle."
        )
    return user


async def require_user(conn: HTTPConnection) -> SessionUser:
    """Any logged-in person (even one whose account still waits for approval)."""
    return _require(conn, "authenticated")


async def require_volunteer(conn: HTTPConnection) -> SessionUser:
    """A volunteer (coordinators and admins pass too: they may answer calls)."""
    return _require(conn, "volunteer")


async def require_coordinator(conn: HTTPConnection) -> SessionUser:
    """A coordinator or an admin; volunteers get 403 (websockets: refused, code 1008)."""
    return _require(conn, "coordinator")


async def require_admin(conn: HTTPConnection) -> SessionUser:
    """An admin only."""
    return _require(conn, "admin")


async def require_csrf(request: Request) -> None:
    """Refuse (403) a state-changing request whose CSRF token is missing or wrong."""
    expected = session_data(request).get("csrf", "")
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent:
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD, "")
            sent = value if isinstance(value, str) else ""
    if not expected or not sent or not hmac.compare_digest(str(sent), str(expected)):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "Le formulaire a expiré ou ne vient pas de ce site. Rechargez la page et recommencez.",
        )


def same_origin(conn: HTTPConnection, public_base_url: str = "") -> bool:
    """Whether a websocket comes from our own pages (browsers always send Origin)."""
    origin = conn.headers.get("origin")
    if not origin:
        return False
    netloc = urlsplit(origin).netloc
    allowed = {conn.headers.get("host", "")}
    if public_base_url:
        allowed.add(urlsplit(public_base_url).netloc)
    return netloc in allowed


async def require_same_origin(conn: HTTPConnection) -> None:
    """Websockets carry cookies across sites: refuse one opened by another site's page."""
    base = getattr(conn.app.state, "public_base_url", "")
    if not same_origin(conn, base):
        raise _refuse(conn, status.HTTP_403_FORBIDDEN, "Origine refusée.")


def session_user_at(account: Any, session_version: int) -> SessionUser | None:
    """The SessionUser of a session signed at ``session_version``, or None once it no longer
    stands (account gone or disabled, role or password changed since)."""
    if account is None or account.session_version != session_version:
        return None
    return session_user_of(account)


def session_user_of(account: Any) -> SessionUser | None:
    """The SessionUser of an Account row, or None if it may not log in (disabled)."""
    if account is None or account.status == "disabled":
        return None
    return SessionUser(
        account_id=account.id,
        public_id=account.public_id,
        name=account.name,
        email=account.email,
        role=Role(account.role),
        approved=account.status == "approved",
    )
