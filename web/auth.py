"""Sessions and roles for every page, endpoint and websocket of the app.

The session is a cookie signed with itsdangerous (``SECRET_KEY``), HttpOnly,
SameSite=Lax, Secure when the public URL is https. It holds a random session id,
the CSRF token and, once logged in, the account id and its ``session_version``;
the account is re-read from SQL on each request, so disabling an account, changing
its role or its password ends its sessions at once.

What routes use — all re-exported here from ``volunteers.access`` (the contract
lives there because accounts and roles belong to volunteers/, and nothing imports
web/); they work on HTTP routes and websockets alike:

- ``require_user``, ``require_volunteer``, ``require_coordinator``, ``require_admin``:
  FastAPI dependencies returning the ``SessionUser`` (``.account_id``, ``.public_id``
  — the engine's volunteer id —, ``.name``, ``.role``, ``.approved``). No session →
  401 (HTML pages are redirected to ``/connexion``), wrong role → 403, a websocket
  is refused before it opens (close 1008).
- ``require_csrf``: dependency for every state-changing request; the token comes from
  ``csrf_token(request)`` (put it in a hidden ``csrf_token`` field or send it as the
  ``X-CSRF-Token`` header).
- ``require_same_origin``: for websockets (browsers send cookies cross-site to them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.authentication import AuthCredentials, UnauthenticatedUser
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from volunteers.access import (
    CSRF_FIELD,
    DIRTY_KEY,
    SESSION_KEY,
    LoginRequired,
    SessionUser,
    begin_session,
    csrf_token,
    current_user,
    end_session,
    new_session_data,
    require_admin,
    require_coordinator,
    require_csrf,
    require_same_origin,
    require_user,
    require_volunteer,
    session_user_at,
)
from volunteers.models import Account

__all__ = [
    "CSRF_FIELD",
    "LoginRequired",
    "SessionAuthMiddleware",
    "SessionUser",
    "begin_session",
    "csrf_token",
    "current_user",
    "end_session",
    "install_auth",
    "require_admin",
    "require_coordinator",
    "require_csrf",
    "require_same_origin",
    "require_user",
    "require_volunteer",
]

log = logging.getLogger(__name__)

COOKIE_NAME = "permanence_session"
SESSION_MAX_AGE_S = 12 * 3600  # idle time after which one logs in again
REFRESH_AFTER_S = 600  # re-sign the cookie at most this often (sliding expiry)

UserLoader = Callable[[int, int], Awaitable[SessionUser | None]]
SessionFactory = Callable[[], AbstractAsyncContextManager[Any]]


def account_loader(sessions: SessionFactory) -> UserLoader:
    """Load the SessionUser of an account id if its session version still matches."""

    async def load(account_id: int, version: int) -> SessionUser | None:
        async with sessions() as session:
            return session_user_at(await session.get(Account, account_id), version)

    return load


class SessionAuthMiddleware:
    """Pure ASGI (so websockets get ``conn.user`` too): reads and writes the session cookie."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        secret_key: str,
        load_user: UserLoader,
        secure: bool = False,
        cookie_name: str = COOKIE_NAME,
        max_age_s: int = SESSION_MAX_AGE_S,
    ) -> None:
        self.app = app
        self.serializer = URLSafeTimedSerializer(secret_key, salt="permanence-session")
        self.load_user = load_user
        self.secure = secure
        self.cookie_name = cookie_name
        self.max_age_s = max_age_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        data, issued = self._read_cookie(scope)
        dirty = data is not None and time.time() - issued > REFRESH_AFTER_S
        if data is None:
            # No session until something needs one (a form's CSRF token, a login): Twilio's
            # webhooks, /healthz and the chat API get no cookie signed for nothing.
            data = {}
        user: SessionUser | None = None
        if "uid" in data:
            user = await self.load_user(int(data["uid"]), int(data.get("ver", 0)))
            if user is None:  # account gone, disabled, or its sessions were ended
                data, dirty = new_session_data(), True
        scope[SESSION_KEY] = data
        scope[DIRTY_KEY] = dirty
        scope["user"] = user or UnauthenticatedUser()
        scope["auth"] = AuthCredentials(list(user.scopes) if user else [])
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and scope.get(DIRTY_KEY):
                headers = MutableHeaders(scope=message)
                headers.append("set-cookie", self._cookie(scope[SESSION_KEY]))
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def _read_cookie(self, scope: Scope) -> tuple[dict[str, Any] | None, float]:
        raw = ""
        for name, value in scope.get("headers", []):
            if name == b"cookie":
                for part in value.decode("latin-1").split(";"):
                    key, _, val = part.strip().partition("=")
                    if key == self.cookie_name:
                        raw = val
        if not raw:
            return None, 0.0
        try:
            data, issued = self.serializer.loads(raw, max_age=self.max_age_s, return_timestamp=True)
        except BadSignature:
            return None, 0.0
        if not isinstance(data, dict) or "csrf" not in data:
            return None, 0.0
        return data, issued.timestamp()

    def _cookie(self, data: dict[str, Any]) -> str:
        value = self.serializer.dumps(data)
        parts = [
            f"{self.cookie_name}={value}",
            "Path=/",
            f"Max-Age={self.max_age_s}",
            "HttpOnly",
            "SameSite=Lax",
        ]
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


async def _auth_error(request: Request, exc: StarletteHTTPException) -> Response:
    """Pages: send a visitor without session to the login form; say 403 in French."""
    if isinstance(exc, LoginRequired) and request.method == "GET" and _wants_html(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/connexion?suite={quote(target)}", status_code=303)
    if exc.status_code in (401, 403) and _wants_html(request):
        body = (
            '<!doctype html><html lang="fr"><head><meta charset="utf-8">'
            "<title>Accès refusé — Permanence</title></head><body><main>"
            f"<h1>Accès refusé</h1><p>{_escape(str(exc.detail))}</p>"
            '<p><a href="/">Retour à l\'accueil</a></p></main></body></html>'
        )
        return HTMLResponse(body, status_code=exc.status_code)
    return await http_exception_handler(request, exc)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def install_auth(app: FastAPI, *, secret_key: str, sessions: SessionFactory, secure: bool) -> None:
    """Add the session middleware and the French 401/403 handling to the app."""
    app.add_middleware(
        SessionAuthMiddleware,
        secret_key=secret_key,
        load_user=account_loader(sessions),
        secure=secure,
    )
    app.add_exception_handler(StarletteHTTPException, _auth_error)  # type: ignore[arg-type]
