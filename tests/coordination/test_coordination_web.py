"""Coordinator pages and controls through the real app: roles, CSRF, effects, audit log."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute
from redis.asyncio import Redis
from sqlmodel import select
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from callers.schedule import ScheduleStore
from routing.clock import PARIS, ManualClock
from routing.engine import Engine
from routing.models import Channel, Presence, TaskSpec, VolunteerProfile
from tests.coordination.sessions import Login
from volunteers import accounts
from web.coordination.controls import broadcast_key
from web.models import AuditLog
from web.settings import Settings


@pytest.fixture
def line_engine(app: FastAPI) -> Engine:
    return app.state.runtime.engine


def coordination_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the coordination module serves, path parameters filled in."""
    from web.coordination.web import router

    assert any(getattr(r, "original_router", None) is router for r in app.routes) or any(
        r is router for r in app.router.routes
    ), "the coordination router is not part of the app"
    out = []
    for route in router.routes:
        if not isinstance(route, APIRoute | APIWebSocketRoute):
            continue
        if not route.path.startswith("/coordination"):
            continue
        path = route.path.replace("{index}", "0")
        for name in ("volunteer_id", "task_id", "action"):
            path = path.replace("{" + name + "}", "pause" if name == "action" else "x")
        if isinstance(route, APIWebSocketRoute):
            out.append(("WS", path))
        else:
            out.extend((m, path) for m in sorted(route.methods))
    return out


async def audit_entries(app: FastAPI) -> list[AuditLog]:
    async with app.state.runtime.db.session() as session:
        return list(await session.exec(select(AuditLog).order_by(AuditLog.id)))


async def post(client: httpx.AsyncClient, who: Login, path: str, data: dict[str, str],
               *, token: bool = True) -> httpx.Response:
    headers = {"accept": "application/json", **who.cookies}
    if token:
        headers["x-csrf-token"] = who.csrf
    return await client.post(path, data=data, headers=headers)


async def test_a_volunteer_is_refused_every_coordinator_page_endpoint_and_socket(
    app: FastAPI, client: httpx.AsyncClient, volunteer: Login
) -> None:
    routes = coordination_routes(app)
    assert len(routes) >= 15  # the whole surface, found from the app itself
    for method, path in routes:
        if method == "WS":
            continue
        reply = await client.request(
            method, path, data={"csrf_token": volunteer.csrf},
            headers={"x-csrf-token": volunteer.csrf, **volunteer.cookies},
        )
        assert reply.status_code == 403, (method, path, reply.status_code)
    # Nobody logged in: 401, or the login page for a browser.
    anonymous = await client.get("/coordination/etat")
    assert anonymous.status_code == 401
    # The websocket: refused before it opens, even from our own origin.
    sync = TestClient(app)
    for method, path in routes:
        if method != "WS":
            continue
        with pytest.raises(WebSocketDisconnect) as refused:
            with sync.websocket_connect(
                path, headers={"origin": "http://testserver", **volunteer.cookies}
            ):
                pass
        assert refused.value.code == 1008
    assert await audit_entries(app) == []


async def test_every_control_without_its_csrf_token_is_refused_and_changes_nothing(
    app: FastAPI, client: httpx.AsyncClient, coordinator: Login, line_engine: Engine
) -> None:
    await line_engine.log_in(VolunteerProfile("v1", "05", name="Anne"))
    await line_engine.set_presence("v1", Presence.AVAILABLE)
    before = await line_engine.config()
    posts = [path for method, path in coordination_routes(app) if method == "POST"]
    assert len(posts) >= 10
    for path in posts:
        reply = await post(client, coordinator, path.replace("/x/", "/v1/"), {}, token=False)
        assert reply.status_code == 403, path
        wrong = await client.post(
            path, data={"csrf_token": "pas-le-bon"}, headers=coordinator.cookies
        )
        assert wrong.status_code == 403, path
    assert (await line_engine.volunteer("v1")).presence is Presence.AVAILABLE
    assert await line_engine.config() == before
    assert await audit_entries(app) == []


async def test_controls_act_on_the_line_and_are_written_to_the_audit_log(
    app: FastAPI, client: httpx.AsyncClient, coordinator: Login, line_engine: Engine,
    redis: Redis, clock: ManualClock, app_settings: Settings,
) -> None:
    await line_engine.log_in(VolunteerProfile("v1", "05", name="Anne"))
    await line_engine.log_in(VolunteerProfile("v2", "13", name="Bruno"))
    await line_engine.set_presence("v1", Presence.AVAILABLE)
    await line_engine.set_presence("v2", Presence.AVAILABLE)

    r = await post(client, coordinator, "/coordination/presence/v1/pause", {"motif": "réunion"})
    assert r.status_code == 200 and r.json()["ok"], r.text
    v1 = await line_engine.volunteer("v1")
    assert (v1.presence, v1.reason) == (Presence.PAUSED, "réunion")
    r = await post(client, coordinator, "/coordination/presence/v2/deconnexion", {})
    assert (await line_engine.volunteer("v2")).presence is Presence.LOGGED_OUT
    r = await post(client, coordinator, "/coordination/presence/inconnu/pause", {})
    assert r.status_code == 400 and "pas connu" in r.json()["message"]

    await line_engine.enqueue(TaskSpec("c1", Channel.VOICE, "05"))
    r = await post(client, coordinator, "/coordination/contacts/c1/priorite", {"priorite": "7"})
    assert r.status_code == 200 and (await line_engine.task("c1")).priority == 7
    r = await post(client, coordinator, "/coordination/contacts/c1/priorite", {"priorite": "12"})
    assert r.status_code == 400 and (await line_engine.task("c1")).priority == 7

    r = await post(client, coordinator, "/coordination/message", {"texte": "Réunion à 14 h."})
    assert r.status_code == 200
    sent = await redis.xrevrange(broadcast_key(app_settings.line), count=1)
    assert sent[0][1]["text"] == "Réunion à 14 h." and sent[0][1]["author"] == "Claire Coord"
    r = await post(client, coordinator, "/coordination/message", {"texte": "   "})
    assert r.status_code == 400

    r = await post(client, coordinator, "/coordination/inscriptions", {"ouvertes": "1"})
    assert r.status_code == 200
    async with app.state.runtime.db.session() as session:
        assert await accounts.registration_is_open(session)

    store = ScheduleStore(redis, app_settings.line)
    clock.set(datetime(2026, 11, 23, 10, 0, tzinfo=PARIS))  # a Monday, normally open
    assert (await store.status(clock.now_ms())).open
    r = await post(client, coordinator, "/coordination/ligne/fermer",
                   {"message": "Fermé pour cause de neige.", "jusqu_a": ""})
    assert r.status_code == 200, r.text
    status = await store.status(clock.now_ms())
    assert not status.open and status.message == "Fermé pour cause de neige."
    r = await post(client, coordinator, "/coordination/ligne/rouvrir", {})
    assert r.status_code == 200 and (await store.status(clock.now_ms())).open

    r = await post(client, coordinator, "/coordination/horaires",
                   {f"jour_{d}": "09:00-12:00, 14:00-17:00" for d in range(5)}
                   | {"feries_fermes": "1"})
    assert r.status_code == 200, r.text
    assert (await store.get()).weekly[0] == [("09:00", "12:00"), ("14:00", "17:00")]
    r = await post(client, coordinator, "/coordination/horaires", {"jour_0": "18:00-09:00"})
    assert r.status_code == 400
    assert (await store.get()).weekly[0] == [("09:00", "12:00"), ("14:00", "17:00")]

    r = await post(client, coordinator, "/coordination/routage",
                   {"widen_group_s": "20", "widen_region_s": "40", "widen_national_s": "120",
                    "ring_s": "25"})
    assert r.status_code == 200, r.text
    cfg = await line_engine.config()
    assert (cfg.widen_group_s, cfg.widen_region_s, cfg.widen_national_s, cfg.ring_s) == (
        20, 40, 120, 25)
    r = await post(client, coordinator, "/coordination/routage",
                   {"widen_group_s": "20", "widen_region_s": "40", "widen_national_s": "120",
                    "ring_s": "25", "local_first_max_wait_s": "0"})
    assert r.status_code == 200, r.text
    assert (await line_engine.config()).local_first_max_wait_s == 0
    for choice, expected in (("1", True), ("0", False)):
        r = await post(client, coordinator, "/coordination/routage",
                       {"widen_group_s": "20", "widen_region_s": "40", "widen_national_s": "120",
                        "ring_s": "25", "leave_to_closer": choice})
        assert r.status_code == 200, r.text
        assert (await line_engine.config()).leave_to_closer is expected
    r = await post(client, coordinator, "/coordination/routage",
                   {"widen_group_s": "20", "widen_region_s": "40", "widen_national_s": "120",
                    "ring_s": "25", "leave_to_closer": "peut-être"})
    assert r.status_code == 400 and "oui ou non" in r.text
    r = await post(client, coordinator, "/coordination/routage",
                   {"widen_group_s": "50", "widen_region_s": "40", "widen_national_s": "120",
                    "ring_s": "25"})
    assert r.status_code == 400 and (await line_engine.config()).widen_group_s == 20

    actions = [(e.action, e.actor, e.details.get("by")) for e in await audit_entries(app)]
    who = str(coordinator.account.id)
    assert [a for a, _, _ in actions] == [
        "volunteer.paused", "volunteer.logged_out", "contact.priority", "broadcast.send",
        "registration.open", "line.close", "line.reopen", "line.hours",
        "routing.configure", "routing.configure", "routing.configure", "routing.configure",
    ]
    assert all(actor == who and by == "Claire Coord" for _, actor, by in actions)
    page = await client.get("/coordination/journal", headers=coordinator.cookies)
    assert page.status_code == 200 and "routing.configure" in page.text


async def test_the_pages_render_in_french_for_a_coordinator(
    app: FastAPI, client: httpx.AsyncClient, coordinator: Login
) -> None:
    for path, title in [
        ("/coordination", "Tableau de bord"),
        ("/coordination/horaires", "Horaires et fermetures"),
        ("/coordination/routage", "Paramètres de routage"),
        ("/coordination/rapports?periode=week", "Rapports"),
        ("/coordination/journal", "Journal des actions"),
    ]:
        page = await client.get(path, headers=coordinator.cookies)
        assert page.status_code == 200, path
        assert f"<h1>{title}" in page.text and 'lang="fr"' in page.text
        assert coordinator.csrf in page.text  # every form carries the session's token
    bad = await client.get("/coordination/rapports?region=ZZ", headers=coordinator.cookies)
    assert bad.status_code == 400
    for table, first in [("volumes", "Période;Contacts reçus"), ("benevoles", "Bénévole;"),
                         ("comptes-rendus", "Type;Valeur;Nombre")]:
        csv_reply = await client.get(f"/coordination/rapports.csv?periode=week&tableau={table}",
                                     headers=coordinator.cookies)
        assert csv_reply.status_code == 200 and csv_reply.headers["content-type"].startswith(
            "text/csv")
        assert csv_reply.text.lstrip("\ufeff").startswith(first)
    unknown = await client.get("/coordination/rapports.csv?tableau=autre",
                               headers=coordinator.cookies)
    assert unknown.status_code == 400
