"""The chat in real Chromium against the whole app (uvicorn, real Redis, real database).

One test drives both sides in two browser contexts (the caller on /aide, the volunteer
in the volunteers' console). The others play the volunteer's side through the engine
(accept) and the shared chat room (ChatRoom.send / history), which is what the
console's socket calls, to reach cases a console user cannot produce on demand.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from playwright.async_api import Browser, Page, async_playwright, expect

from callers.chat.room import ChatRoom
from callers.keys import CallerKeys
from routing.models import Presence, TaskState
from tests.callers.helpers import volunteer_on_duty
from tests.callers.live import CHROMIUM, CHROMIUM_ARGS, free_port, require_chromium, serve
from tests.weak_line import WeakLine, pause_page_clock, periods
from volunteers import accounts
from volunteers.models import AccountStatus, Role

AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe-core" / "axe.min.js"
XSS = '<img src=x onerror="window.__xss = 1"><script>window.__xss = 2</script>'


@pytest.fixture
def live(app_settings, clock, engine) -> Iterator[str]:
    """The app on a free port; stops before the engine fixture wipes the line's keys."""
    port = free_port()
    settings = app_settings.model_copy(update={"public_base_url": f"http://127.0.0.1:{port}"})
    with serve(settings, clock, port) as base:
        yield base


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    require_chromium()
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture
def room(redis, line, clock) -> ChatRoom:
    return ChatRoom(redis, CallerKeys(line), clock)


async def start_chat(page: Page, base: str, postal_code: str = "05000") -> None:
    await page.goto(base + "/aide")
    form = page.locator("#start")
    await form.get_by_label("Votre demande concerne").select_option("autre")
    await form.get_by_label("Votre code postal").fill(postal_code)
    await form.get_by_label("Votre prénom").fill("Lucie")
    await form.get_by_role("button", name="Commencer").click()
    await expect(page.locator("#chat")).to_be_visible()


async def until(check, timeout_s: float = 10.0):
    """Poll an async condition (the app works in its own thread)."""
    for _ in range(int(timeout_s / 0.1)):
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


@pytest.mark.browser
async def test_caller_and_volunteer_talk_in_real_time(live, browser, engine, room):
    await volunteer_on_duty(engine, "anne", "05")
    caller = await browser.new_context()
    page = await caller.new_page()
    await start_chat(page, live)
    await expect(page.locator("#status")).to_contain_text("prochaine personne")
    task = (await engine.live_tasks())[0]
    await engine.accept("anne", task.id)  # the volunteer accepts in the console

    await expect(page.locator("#messages")).to_contain_text("Anne a rejoint la discussion.")
    await expect(page.locator("#status")).to_have_text("Anne vous répond.")
    box = page.locator("#chat").get_by_label("Votre message")
    await box.fill("Bonjour, je n'arrive pas à me connecter.")
    await page.keyboard.press("Enter")
    history = await until(lambda: _texts_when(room, task.id, 2))
    assert history[-1] == ("caller", "Bonjour, je n'arrive pas à me connecter.")

    await room.send(task.id, "anne", "Anne", "Bonjour Lucie, je regarde avec vous.")
    await expect(page.locator("#messages li.volunteer")).to_contain_text("je regarde avec vous")

    # A volunteer's (or anyone's) markup is shown as text, never run.
    await room.send(task.id, "anne", "Anne", XSS)
    last = page.locator("#messages li.volunteer .text").last
    await expect(last).to_have_text(XSS)
    assert await page.evaluate("window.__xss") is None
    assert await page.locator("#messages img, #messages script").count() == 0

    # Too long: a clear French error, and the text is given back.
    await page.locator("#chat").get_by_label("Votre message").fill("a" * 2001)
    await page.locator("#chat").get_by_role("button", name="Envoyer", exact=True).click()
    await expect(page.locator("#send-error")).to_contain_text("trop long")
    await expect(page.locator("#send-error")).to_contain_text("2000 caractères")
    assert len(await page.locator("#chat").get_by_label("Votre message").input_value()) == 2001
    assert len(await room.history(task.id)) == 4  # nothing stored

    # Reload: the same conversation comes back.
    await page.reload()
    await expect(page.locator("#messages li")).to_have_count(4)
    await expect(page.locator("#status")).to_have_text("Anne vous répond.")

    await page.get_by_role("button", name="Terminer la discussion").click()
    await expect(page.locator("#ended")).to_be_visible()
    assert (await engine.require_task(task.id)).state.value == "wrapup"
    await caller.close()


@pytest.mark.browser
async def test_a_message_typed_while_the_line_is_down_goes_once_connected(
    live, browser, engine, room
):
    """On a weak line the caller may press Enter before the socket is open: the text stays in
    the box with a word on why, and goes by itself once connected."""
    await volunteer_on_duty(engine, "anne", "05")
    page = await (await browser.new_context()).new_page()
    line = WeakLine()
    line.through.clear()  # the socket opens only when the test says
    await page.route_web_socket(re.compile(r".*/aide/ws.*"), line)
    await start_chat(page, live)
    box = page.locator("#chat").get_by_label("Votre message")
    await box.fill("Bonjour, je suis là.")
    await box.press("Enter")
    await expect(page.locator("#send-error")).to_contain_text("partira dès que la connexion")
    await expect(box).to_have_value("Bonjour, je suis là.")
    task = (await engine.live_tasks())[0]
    assert await room.history(task.id) == []

    line.through.set()
    await expect(page.locator("#messages li.caller")).to_contain_text("Bonjour, je suis là.")
    await expect(box).to_have_value("")
    await expect(page.locator("#send-error")).to_have_text("")
    assert [(m["author"], m["text"]) for m in await room.history(task.id)] == [
        ("caller", "Bonjour, je suis là.")
    ]


@pytest.mark.browser
async def test_a_message_lost_with_the_line_comes_back_in_the_box(live, browser, engine, room):
    """Sent just as the line dropped, never received: after the reconnection the text is back
    in the box with a word on why, and is sent once, even when the caller had said the same
    words before. Received, but the line dropped before the page heard of it: it is not sent
    again."""
    await volunteer_on_duty(engine, "anne", "05")
    page = await (await browser.new_context()).new_page()
    drop_next_message = asyncio.Event()  # lost on the way to the server
    cut_after_next_message = asyncio.Event()  # reaches the server; the line drops after

    async def line(ws):
        server = ws.connect_to_server()
        muted = False

        async def to_server(message):
            nonlocal muted
            if json.loads(message).get("type") == "send":
                if drop_next_message.is_set():
                    drop_next_message.clear()
                    await ws.close()  # lost on the way, and the line with it
                    return
                if cut_after_next_message.is_set():
                    cut_after_next_message.clear()
                    muted = True  # nothing more reaches the page on this line
                    server.send(message)
                    await asyncio.sleep(0.5)
                    await ws.close()
                    return
            server.send(message)

        def to_page(message):
            if not muted:
                ws.send(message)

        ws.on_message(to_server)
        server.on_message(to_page)

    await page.route_web_socket(re.compile(r".*/aide/ws.*"), line)
    await start_chat(page, live)
    task = (await engine.live_tasks())[0]

    async def said() -> list[str]:
        return [m["text"] for m in await room.history(task.id) if m["author"] == "caller"]

    box = page.locator("#chat").get_by_label("Votre message")
    await box.fill("Oui, c'est ça.")
    await box.press("Enter")
    await expect(page.locator("#messages li.caller")).to_have_count(1)

    drop_next_message.set()
    await box.fill("Oui, c'est ça.")  # the same words again, and this time lost
    await box.press("Enter")
    await expect(box).to_have_value("Oui, c'est ça.", timeout=10_000)
    await expect(page.locator("#send-error")).to_contain_text("pas parti")
    assert await said() == ["Oui, c'est ça."]

    await box.press("Enter")
    await expect(page.locator("#messages li.caller")).to_have_count(2)
    await expect(box).to_have_value("")
    assert await said() == ["Oui, c'est ça.", "Oui, c'est ça."]

    cut_after_next_message.set()
    await box.fill("Ma question sur la CAF.")
    await box.press("Enter")
    await expect(page.locator("#messages li.caller")).to_have_count(3, timeout=10_000)
    await expect(box).to_have_value("")
    await expect(page.locator("#send-error")).to_have_text("")
    assert await said() == ["Oui, c'est ça.", "Oui, c'est ça.", "Ma question sur la CAF."]


@pytest.mark.browser
async def test_a_silent_line_is_noticed_and_the_chat_reconnects(live, browser, engine, room):
    """Pings unanswered for three periods (a network that drops without closing): the page says
    the connection is lost, opens a new socket, and the conversation comes back."""
    await volunteer_on_duty(engine, "anne", "05")
    page = await (await browser.new_context()).new_page()
    line = WeakLine()
    await page.clock.install()
    await page.route_web_socket(re.compile(r".*/aide/ws.*"), line)
    await start_chat(page, live)
    status = page.locator("#status")
    await expect(status).to_contain_text("prochaine personne")
    task = (await engine.live_tasks())[0]
    await room.send(task.id, "anne", "Anne", "Bonjour, je regarde votre demande.")
    await expect(page.locator("#messages li.volunteer")).to_have_count(1)
    await pause_page_clock(page)
    await periods(page, 15_000, 5)  # pongs come back: nothing to say
    await expect(status).to_contain_text("prochaine personne")
    assert len(line.sockets) == 1

    line.silent.set()
    await periods(page, 15_000, 4)
    await expect(status).to_have_text("Connexion perdue. Nouvelle tentative…")
    await page.clock.fast_forward(1_000)  # the first retry
    await expect(status).to_contain_text("prochaine personne")
    assert len(line.sockets) == 2
    await expect(page.locator("#messages li.volunteer")).to_have_count(1)


async def _texts_when(room: ChatRoom, task_id: str, count: int):
    history = await room.history(task_id)
    return [(m["author"], m["text"]) for m in history] if len(history) >= count else None


@pytest.mark.browser
async def test_a_second_caller_sees_position_and_wait_announced(live, browser, engine):
    await volunteer_on_duty(engine, "anne", "05", chat_capacity=1)
    first = await (await browser.new_context()).new_page()
    await start_chat(first, live)
    task = (await engine.live_tasks())[0]
    await engine.accept("anne", task.id)
    second = await (await browser.new_context()).new_page()
    await start_chat(second, live, "05200")
    status = second.locator("#status")
    await expect(status).to_have_attribute("aria-live", "polite")
    await expect(status).to_contain_text("prochaine personne")
    await expect(status).to_contain_text("environ 8 minutes")
    await first.get_by_role("button", name="Terminer la discussion").click()

    async def ended_by_caller() -> bool:  # the click reaches the server in its own time
        return (await engine.require_task(task.id)).state is TaskState.WRAPUP

    await until(ended_by_caller)
    await engine.finish_wrapup("anne", task.id)
    await expect(status).to_contain_text("environ 1 minute")  # now ringing for Anne
    waiting = [t for t in await engine.live_tasks() if t.id != task.id]
    await engine.accept("anne", waiting[0].id)
    await expect(status).to_have_text("Anne vous répond.")


@pytest.mark.browser
async def test_offline_form_when_nobody_is_on_duty(live, browser, engine):
    page = await (await browser.new_context()).new_page()
    await page.goto(live + "/aide")
    await expect(page.locator("#offline")).to_be_visible()
    await expect(page.locator("#offline")).to_contain_text("du lundi au vendredi, de 9 h à 18 h")
    await expect(page.locator("#start")).to_be_hidden()
    await page.locator("#off-topic").select_option("impots")
    await page.locator("#off-postal").fill("04000")
    await page.locator("#off-message").fill("Je voudrais de l'aide pour ma déclaration.")
    await page.get_by_role("button", name="Envoyer le message").click()
    await expect(page.locator("#offline-error")).to_contain_text("téléphone ou une adresse")
    await page.locator("#off-phone").fill("06 12 34 56 78")
    await page.get_by_role("button", name="Envoyer le message").click()
    await expect(page.locator("#offline-done")).to_contain_text("bien enregistré")
    # The line is open (Monday 9:00): the request is already a callback task.
    tasks = await until(engine.live_tasks)
    assert [(t.channel.value, t.departement, t.skill) for t in tasks] == [
        ("callback", "04", "impots")]


@pytest.mark.browser
async def test_aide_page_has_no_serious_accessibility_violation(live, browser, engine):
    await volunteer_on_duty(engine, "paul", "05", Presence.PAUSED)
    page = await (await browser.new_context()).new_page()
    for view in ("start", "chat"):
        if view == "chat":
            await start_chat(page, live)
            await expect(page.locator("#status")).not_to_be_empty()
        else:
            await page.goto(live + "/aide")
        await page.add_script_tag(path=str(AXE))
        result = await page.evaluate(
            "async () => await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'best-practice']})"
        )
        bad = [(v["id"], v["impact"], v["help"]) for v in result["violations"]
               if v["impact"] in {"serious", "critical"}]
        assert bad == [], (view, bad)
        assert result["passes"], "axe-core ran no check"


@pytest.mark.browser
async def test_offline_view_is_accessible_and_keyboard_only_works(live, browser, engine):
    page = await (await browser.new_context()).new_page()
    await page.goto(live + "/aide")
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate("async () => await axe.run(document)")
    assert [v["id"] for v in result["violations"] if v["impact"] in {"serious", "critical"}] == []
    # Keyboard only: Tab from the top reaches the first field of the form.
    await page.keyboard.press("Tab")
    await page.keyboard.press("Tab")
    focused = await page.evaluate("document.activeElement.id")
    assert focused == "off-topic"


async def test_socket_resumes_refuses_forged_tokens_and_limits_rates(live, engine, room):
    await volunteer_on_duty(engine, "paul", "05", Presence.PAUSED)
    async with httpx.AsyncClient(base_url=live) as http:
        bad = await http.post("/aide/api/start", json={"topic": "autre", "postal_code": "00000"})
        assert bad.status_code == 400 and "code postal" in bad.json()["message"]
        not_json = await http.post("/aide/api/start", data={"topic": "autre"})
        assert not_json.status_code == 400
        started = await http.post("/aide/api/start",
                                  json={"topic": "autre", "postal_code": "05000"})
        token = started.json()["token"]
    ws_base = live.replace("http", "ws") + "/aide/ws?token="

    with pytest.raises(websockets.exceptions.InvalidStatus):
        async with websockets.connect(ws_base + token[:-2] + "xx"):
            pass

    async with websockets.connect(ws_base + token) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello" and hello["status"]["state"] == "waiting"
        await ws.send(json.dumps({"type": "send", "text": "<b>premier</b>"}))
        await ws.send(json.dumps({"type": "send", "text": "x" * 2001}))
        replies = [json.loads(await ws.recv()) for _ in range(2)]
        kinds = sorted(r["type"] for r in replies)
        assert kinds == ["error", "messages"]
        error = next(r for r in replies if r["type"] == "error")
        assert "trop long" in error["message"]
    # Dropped, then back with the same token: the conversation is still there.
    async with websockets.connect(ws_base + token) as ws:
        hello = json.loads(await ws.recv())
        assert [m["text"] for m in hello["messages"]] == ["<b>premier</b>"]
        for i in range(6):  # the per-connection limit is 5 messages in 10 s
            await ws.send(json.dumps({"type": "send", "text": f"message {i}"}))
        errors = []
        while not errors:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if frame["type"] == "error":
                errors.append(frame["message"])
        assert "trop de messages" in errors[0]
    stored = [m["text"] for m in await room.history((await engine.live_tasks())[0].id)]
    assert stored == ["<b>premier</b>"] + [f"message {i}" for i in range(5)]


@pytest.mark.browser
async def test_caller_and_volunteer_console_in_two_browser_contexts(
    live, browser, engine, db_session
):
    """Both sides in Chromium: the caller on /aide, the volunteer in their console."""
    await accounts.create_account(
        db_session, email="anne@exemple.fr", password="mot-de-passe-solide",
        name="Anne Dupont", role=Role.VOLUNTEER, status=AccountStatus.APPROVED,
        postal_code="05000",
    )
    await db_session.commit()

    volunteer = await (await browser.new_context()).new_page()
    await volunteer.goto(live + "/connexion")
    await volunteer.get_by_label("Adresse e-mail").fill("anne@exemple.fr")
    await volunteer.get_by_label("Mot de passe").fill("mot-de-passe-solide")
    await volunteer.get_by_role("button", name="Se connecter").click()
    await volunteer.goto(live + "/benevole/console")
    await volunteer.get_by_role("button", name="Me rendre disponible").click()
    # The server has put them on duty (it answers before the console says so): only then
    # does /aide offer the chat form.
    await expect(volunteer.locator("#presence")).to_have_text("Disponible")

    caller = await (await browser.new_context()).new_page()
    await start_chat(caller, live)
    await expect(volunteer.locator("#offer")).to_be_visible(timeout=10_000)
    await volunteer.locator("#offer-accept").click()
    await expect(caller.locator("#messages")).to_contain_text("a rejoint la discussion")
    await expect(caller.locator("#status")).to_contain_text("vous répond")

    box = caller.locator("#chat").get_by_label("Votre message")
    await box.fill("Bonjour, c'est pour la CAF.")
    await box.press("Enter")
    card = volunteer.locator(".task").first
    await expect(card.locator(".chat-log")).to_contain_text("Bonjour, c'est pour la CAF.")

    await card.locator(".chat-input").fill("Bonjour Lucie, je vous écoute.")
    await card.get_by_role("button", name="Envoyer").click()
    await expect(caller.locator("#messages li.volunteer")).to_contain_text("je vous écoute")

    # Markup travels as text both ways.
    await box.fill(XSS)
    await box.press("Enter")
    await expect(card.locator(".chat-log li").last).to_contain_text(XSS)
    await card.locator(".chat-input").fill(XSS)
    await card.get_by_role("button", name="Envoyer").click()
    await expect(caller.locator("#messages li.volunteer .text").last).to_have_text(XSS)
    assert await caller.evaluate("window.__xss") is None
    assert await volunteer.evaluate("window.__xss") is None

    await caller.reload()  # the conversation comes back after a reload
    await expect(caller.locator("#messages li.volunteer")).to_have_count(2)

    await card.get_by_role("button", name="Terminer la conversation").click()
    await expect(caller.locator("#ended")).to_be_visible(timeout=10_000)
