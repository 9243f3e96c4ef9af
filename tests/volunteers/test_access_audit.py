"""Who may reach what: every volunteers route checks the role; sessions end everywhere."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
import websockets
from fastapi.routing import APIRoute, APIWebSocketRoute

from tests.volunteers.conftest import PASSWORD
from tests.volunteers.live import Console, login
from volunteers import accounts
from volunteers.access import (
    require_admin,
    require_coordinator,
    require_csrf,
    require_same_origin,
    require_user,
    require_volunteer,
    session_user_at,
)
from volunteers.console import _CLOSE, Connection, ConsoleHub
from volunteers.models import Account, AccountStatus, Role
from volunteers.web import router

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HTML = {"accept": "text/html"}
ROLE_CHECKS = {require_user, require_volunteer, require_coordinator, require_admin}
# Reachable without a session, on purpose: logging in, signing up, and the calendar feed
# (calendar apps cannot log in; its URL holds a 256-bit secret).
PUBLIC = {
    ("GET", "/connexion"),
    ("POST", "/connexion"),
    ("POST", "/deconnexion"),
    ("GET", "/inscription"),
    ("POST", "/inscription"),
    ("POST", "/inscription/prevenir"),
    ("GET", "/benevole/agenda/{token}.ics"),
}


def _checks(route) -> set:
    found = set()

    def walk(dependant) -> None:
        for sub in dependant.dependencies:
            found.add(sub.call)
            walk(sub)

    walk(route.dependant)
    return found


def _routes() -> list[tuple[str, str, set]]:
    out = []
    for route in router.routes:
        if isinstance(route, APIRoute):
            out += [(m, route.path, _checks(route)) for m in sorted(route.methods)]
        elif isinstance(route, APIWebSocketRoute):
            out.append(("WS", route.path, _checks(route)))
    return out


def test_every_route_checks_role_csrf_and_origin() -> None:
    routes = _routes()
    assert len(routes) >= 20  # the table was read, not an empty router
    for method, path, checks in routes:
        if (method, path) not in PUBLIC:
            assert checks & ROLE_CHECKS, f"{method} {path} does not check who is asking"
        if method == "POST":
            assert require_csrf in checks, f"{method} {path} has no CSRF check"
        if method == "WS":
            assert require_same_origin in checks, f"{path} does not check the Origin"
        if path.startswith("/coordination"):
            assert require_coordinator in checks, f"{method} {path} is not for coordinators"


def _concrete(path: str) -> str:
    return path.replace("{account_id}", "1").replace("{rule_id}", "1").replace("{token}", "x" * 40)


async def _token(client: httpx.AsyncClient) -> str:
    return CSRF.search((await client.get("/connexion", headers=HTML)).text).group(1)


async def test_anonymous_and_volunteer_are_refused_where_they_do_not_belong(
    web_app, make_account, db_session
):
    claire = await make_account("Claire", role=Role.COORDINATOR)
    transport = httpx.ASGITransport(app=web_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        token = await _token(client)  # a valid CSRF token: refusals are about the role
        for method, path, _ in _routes():
            if (method, path) in PUBLIC or method == "WS":
                continue
            url = _concrete(path)
            reply = await client.request(method, url, data={"csrf_token": token})
            assert reply.status_code == 401, f"anonymous {method} {path}"
            if method == "GET":
                page = await client.get(url, headers=HTML)
                assert page.status_code == 303 and page.headers["location"].startswith("/connexion")

        anne = await make_account("Anne")
        await client.post(
            "/connexion", data={"email": anne.email, "password": PASSWORD, "csrf_token": token}
        )
        token = await _token(client)
        for method, path, _ in _routes():
            if not path.startswith("/coordination"):
                continue
            reply = await client.request(method, _concrete(path), data={"csrf_token": token})
            assert reply.status_code == 403, f"volunteer {method} {path}"
    await db_session.refresh(claire)
    assert claire.status == AccountStatus.APPROVED


async def test_voice_token_needs_an_approved_account(web_app, make_account):
    import dataclasses

    vol = web_app.state.volunteers
    vol.settings = dataclasses.replace(
        vol.settings,
        twilio_account_sid="AC" + "1" * 32,
        twilio_api_key="SK" + "2" * 32,
        twilio_api_secret="api-secret",
        twilio_twiml_app_sid="AP" + "3" * 32,
    )
    zoe = await make_account("Zoé", status=AccountStatus.PENDING)
    transport = httpx.ASGITransport(app=web_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        token = await _token(client)
        await client.post(
            "/connexion", data={"email": zoe.email, "password": PASSWORD, "csrf_token": token}
        )
        reply = await client.get("/benevole/voix/jeton")
    assert reply.status_code == 403 and "validé par un coordinateur" in reply.json()["detail"]
    assert "token" not in reply.json()


async def test_approving_cannot_reopen_a_disabled_account(web_app, make_account, db_session):
    claire = await make_account("Claire", role=Role.COORDINATOR)
    bruno = await make_account("Bruno")
    await accounts.disable(db_session, bruno.id)
    transport = httpx.ASGITransport(app=web_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        token = await _token(client)
        await client.post(
            "/connexion", data={"email": claire.email, "password": PASSWORD, "csrf_token": token}
        )
        token = await _token(client)
        await client.post(f"/coordination/benevoles/{bruno.id}/valider", data={"csrf_token": token})
        page = await client.get("/coordination/benevoles", headers=HTML)
    assert "Ce compte n&#39;attend pas de validation." in page.text or (
        "Ce compte n'attend pas de validation." in page.text
    )
    await db_session.refresh(bruno)
    assert bruno.status == AccountStatus.DISABLED


@pytest.mark.parametrize("change", ["disable", "role"])
async def test_an_open_console_ends_with_its_session(live, make_account, db_session, change):
    anne = await make_account("Anne")
    client = await login(live.base, anne.email, PASSWORD)
    console = await Console.open(live, client)
    assert (await console.request("colleagues"))["ok"] is True
    if change == "disable":
        await accounts.disable(db_session, anne.id)
    else:
        await accounts.set_role(db_session, anne.id, Role.COORDINATOR)
    await console.ws.send('{"type": "presence", "state": "available", "ref": "x"}')
    ended = await console.next("error", wait_s=30)
    assert ended["error"]["code"] == "session_ended"
    assert "Reconnectez-vous" in ended["error"]["message"]
    async with asyncio.timeout(30):
        await console._reader  # the server closed the socket
    assert console.ws.close_code == 4403
    assert not console.has("result")  # the request was not carried out
    # Reconnecting with the old cookie is refused at the handshake.
    with pytest.raises(websockets.InvalidStatus):
        await Console.open(live, client)
    await client.aclose()


async def test_a_silent_console_ends_with_its_session_within_a_heartbeat(
    live, make_account, db_session
):
    """Pings do not re-read the account; the hub checks every console once per heartbeat."""
    anne = await make_account("Anne")
    client = await login(live.base, anne.email, PASSWORD)
    console = await Console.open(live, client)
    await accounts.disable(db_session, anne.id)
    await console.ping()  # answered with a pong: a ping acts for nobody
    ended = await console.next("error", wait_s=console.welcome["heartbeat_s"] + 10)
    assert ended["error"]["code"] == "session_ended"
    async with asyncio.timeout(30):
        await console._reader  # the server closed the socket
    assert console.ws.close_code == 4403
    await client.aclose()


async def test_the_hub_checks_its_consoles_accounts_in_one_go(vol, make_account, db_session):
    """Disabled or changed: closed with session_ended; otherwise the fresh row is kept."""
    hub = ConsoleHub(vol)
    anne, bruno, chloe = [await make_account(n) for n in ("Anne", "Bruno", "Chloé")]
    conns = {}
    for made in (anne, bruno, chloe):
        async with vol.sessions() as session:  # as the console read it: another session's row
            account = await session.get(Account, made.id)
        user = session_user_at(account, account.session_version)
        assert account is not None and user is not None
        conns[account.name] = Connection(None, user, account)  # type: ignore[arg-type]
        hub.attach(conns[account.name])
    await accounts.disable(db_session, anne.id)
    await accounts.set_role(db_session, bruno.id, Role.COORDINATOR)
    chloe.structure = "France Services de Briançon"
    db_session.add(chloe)
    await db_session.commit()
    assert await hub.check_accounts() == 2
    for name in ("Anne", "Bruno"):
        queue = conns[name].queue
        assert queue.get_nowait()["error"]["code"] == "session_ended"
        assert queue.get_nowait() is _CLOSE
    assert conns["Chloé"].queue.empty()
    assert conns["Chloé"].account.structure == "France Services de Briançon"


async def test_a_pending_account_sees_no_colleagues(live, make_account):
    zoe = await make_account("Zoé", status=AccountStatus.PENDING)
    client = await login(live.base, zoe.email, PASSWORD)
    console = await Console.open(live, client)
    reply = await console.request("colleagues")
    assert reply["ok"] is False and reply["error"]["code"] == "cannot_work"
    await console.close()
    await client.aclose()
