"""Sessions, roles and CSRF on pages, endpoints and sockets; sign-up and approval."""

from __future__ import annotations

import html
import re

import httpx
import pytest
import websockets

from tests.volunteers.conftest import PASSWORD
from tests.volunteers.live import Console, cookie_header, login
from volunteers import accounts
from volunteers.models import AccountStatus, Role

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
HTML = {"accept": "text/html"}


async def _csrf(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path, headers=HTML)
    found = CSRF.search(page.text)
    assert found, f"{path} has a CSRF token"
    return found.group(1)


async def _login(client: httpx.AsyncClient, email: str) -> None:
    token = await _csrf(client, "/connexion")
    reply = await client.post(
        "/connexion", data={"email": email, "password": PASSWORD, "csrf_token": token}
    )
    assert reply.status_code == 303


async def test_pages_need_a_session_and_login_checks_password(web_client, make_account):
    reply = await web_client.get("/benevole/creneaux", headers=HTML)
    assert reply.status_code == 303
    assert reply.headers["location"] == "/connexion?suite=/benevole/creneaux"
    assert (await web_client.get("/benevole/voix/jeton")).status_code == 401

    anne = await make_account("Anne")
    token = await _csrf(web_client, "/connexion")
    wrong = await web_client.post(
        "/connexion", data={"email": anne.email, "password": "pas-le-bon-mdp", "csrf_token": token}
    )
    assert wrong.status_code == 400
    assert "Adresse e-mail ou mot de passe incorrect." in wrong.text
    cookie = wrong.headers.get("set-cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie or cookie == ""

    await _login(web_client, anne.email)
    home = await web_client.get("/benevole", headers=HTML)
    assert home.status_code == 200 and "Bonjour Anne" in home.text


async def test_a_session_cookie_only_when_something_needs_one(web_client) -> None:
    """Webhooks, /healthz and JSON answers get no cookie; a page with a form does."""
    for path in ("/healthz", "/benevole/voix/jeton"):
        assert "set-cookie" not in (await web_client.get(path)).headers, path
    form = await web_client.get("/connexion", headers=HTML)
    assert "HttpOnly" in form.headers["set-cookie"]
    token = await _csrf(web_client, "/connexion")
    again = await web_client.get("/connexion", headers=HTML)  # the same session, not re-signed
    assert "set-cookie" not in again.headers and token in again.text


async def test_forms_without_csrf_are_refused_and_change_nothing(
    web_client, make_account, db_session
):
    anne = await make_account("Anne")
    # No token: the login itself is refused.
    reply = await web_client.post("/connexion", data={"email": anne.email, "password": PASSWORD})
    assert reply.status_code == 403
    assert (await web_client.get("/benevole", headers=HTML)).status_code == 303

    await _login(web_client, anne.email)
    before = (await web_client.get("/benevole/profil", headers=HTML)).text
    for path, data in [
        ("/benevole/profil", {"name": "Pirate", "postal_code": "75001"}),
        ("/benevole/creneaux/reserver", {"creneau": "2026-11-24T08:00Z"}),
        ("/deconnexion", {}),
    ]:
        refused = await web_client.post(path, data={**data, "csrf_token": "faux"}, headers=HTML)
        assert refused.status_code == 403, path
        assert "Le formulaire a expiré" in refused.text
    await db_session.refresh(anne)
    assert anne.name == "Anne" and anne.postal_code == "05000"
    assert (await web_client.get("/benevole/profil", headers=HTML)).text == before


async def test_volunteer_cannot_reach_coordinator_pages_or_endpoints(web_client, make_account):
    anne = await make_account("Anne")
    await _login(web_client, anne.email)
    token = await _csrf(web_client, "/benevole/profil")
    for path in ["/coordination/benevoles", "/coordination", "/coordination/etat"]:
        assert (await web_client.get(path, headers=HTML)).status_code == 403, path
    for path, data in [
        ("/coordination/benevoles/inscriptions", {"ouvrir": "1"}),
        (f"/coordination/benevoles/{anne.id}/valider", {}),
        ("/coordination/inscriptions", {"ouvertes": "1"}),
    ]:
        reply = await web_client.post(path, data={**data, "csrf_token": token})
        assert reply.status_code == 403, path


async def test_sign_up_closed_then_open_approval_and_disabled_session(
    web_client, make_account, db_session
):
    coordinator = await make_account("Claire", role=Role.COORDINATOR)
    page = await web_client.get("/inscription", headers=HTML)
    assert "Les inscriptions sont fermées pour le moment." in page.text
    token = await _csrf(web_client, "/inscription")
    await web_client.post(
        "/inscription/prevenir", data={"email": "futur@exemple.fr", "csrf_token": token}
    )
    refused = await web_client.post(
        "/inscription",
        data={
            "name": "Zoé",
            "email": "zoe@exemple.fr",
            "postal_code": "38000",
            "password": PASSWORD,
            "csrf_token": token,
        },
    )
    assert refused.status_code == 400 and "Les inscriptions sont fermées" in refused.text
    assert await accounts.by_email(db_session, "zoe@exemple.fr") is None

    await _login(web_client, coordinator.email)
    token = await _csrf(web_client, "/coordination/benevoles")
    opened = await web_client.post(
        "/coordination/benevoles/inscriptions", data={"ouvrir": "1", "csrf_token": token}
    )
    assert opened.status_code == 303
    listing = await web_client.get("/coordination/benevoles", headers=HTML)
    assert "Inscriptions ouvertes (1 personne(s) prévenue(s))." in listing.text
    assert "ouvertes" in listing.text and "futur@exemple.fr" not in listing.text

    async with httpx.AsyncClient(
        transport=web_client._transport, base_url="http://testserver"
    ) as newcomer:
        token = await _csrf(newcomer, "/inscription")
        bad = await newcomer.post(
            "/inscription",
            data={
                "name": "Zoé",
                "email": "zoe@exemple.fr",
                "postal_code": "99999",
                "password": PASSWORD,
                "csrf_token": token,
            },
        )
        assert "Ce code postal n'est pas reconnu" in html.unescape(bad.text)
        made = await newcomer.post(
            "/inscription",
            data={
                "name": "Zoé",
                "email": "zoe@exemple.fr",
                "postal_code": "38000",
                "password": PASSWORD,
                "csrf_token": token,
            },
        )
        assert made.status_code == 303
        zoe = await accounts.by_email(db_session, "zoe@exemple.fr")
        assert zoe.status == AccountStatus.PENDING and zoe.departement == "38"
        token = await _csrf(newcomer, "/benevole/creneaux")
        early = await newcomer.post(
            "/benevole/creneaux/reserver",
            data={"creneau": "2026-11-24T08:00Z", "csrf_token": token},
        )
        follow = await newcomer.get(early.headers["location"], headers=HTML)
        assert "doit être validé par un coordinateur" in follow.text

        token = await _csrf(web_client, "/coordination/benevoles")
        await web_client.post(
            f"/coordination/benevoles/{zoe.id}/valider", data={"csrf_token": token}
        )
        await db_session.refresh(zoe)
        assert zoe.status == AccountStatus.APPROVED

        await accounts.disable(db_session, zoe.id)
        gone = await newcomer.get("/benevole", headers=HTML)
        assert gone.status_code == 303  # the session ended with the account


async def test_sockets_check_role_session_and_origin(live, make_account):
    anne = await make_account("Anne")
    client = await login(live.base, anne.email, PASSWORD)
    # A volunteer's session cannot open the coordinators' dashboard socket.
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(
            f"{live.ws_base}/coordination/ws",
            additional_headers={"Cookie": cookie_header(client)},
            origin=live.base,
        )
    assert refused.value.response.status_code == 403
    # No session: the console socket is refused.
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(f"{live.ws_base}/benevole/console/ws?v=1", origin=live.base)
    # Another site's page, with the volunteer's cookie: refused.
    with pytest.raises(websockets.InvalidStatus):
        await Console.open(live, client, origin="https://evil.example")
    # The right origin and session: welcome.
    console = await Console.open(live, client)
    await console.close()
    await client.aclose()


async def test_voice_token_only_for_the_logged_in_volunteer(web_client, make_account, web_app):
    import jwt

    from volunteers.settings import VolunteersSettings

    anne = await make_account("Anne")
    await _login(web_client, anne.email)
    unconfigured = await web_client.get("/benevole/voix/jeton")
    assert unconfigured.status_code == 503
    assert "pas configuré" in unconfigured.json()["detail"]

    vol = web_app.state.volunteers
    vol.settings = VolunteersSettings(
        secret_key="k",
        twilio_account_sid="AC" + "1" * 32,
        twilio_api_key="SK" + "2" * 32,
        twilio_api_secret="api-secret",
        twilio_twiml_app_sid="AP" + "3" * 32,
    )
    reply = await web_client.get("/benevole/voix/jeton")
    assert reply.status_code == 200 and reply.json()["identity"] == anne.public_id
    claims = jwt.decode(reply.json()["token"], "api-secret", algorithms=["HS256"])
    assert claims["grants"]["identity"] == anne.public_id
    assert claims["grants"]["voice"]["incoming"]["allow"] is True
    assert claims["grants"]["voice"]["outgoing"]["application_sid"] == "AP" + "3" * 32
    assert claims["iss"] == "SK" + "2" * 32 and claims["sub"] == "AC" + "1" * 32
