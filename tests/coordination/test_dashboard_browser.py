"""The dashboard in real Chromium: a signed call arrives, a volunteer answers, the page follows.

Needs Debian's Chromium at /usr/bin/chromium (``apt-get install -y chromium``); skipped
with a reason when it is missing, unless PERMANENCE_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from redis.asyncio import Redis

from callers.schedule import Schedule, ScheduleStore
from routing.engine import Engine
from routing.models import Channel, Presence, TaskSpec, VolunteerProfile
from tests.callers.twilio_sim import PhoneCall, Webhooks
from tests.coordination.sessions import PASSWORD, login
from tests.weak_line import WeakLine
from volunteers.models import Role
from web.app import create_app
from web.db import Database
from web.settings import Settings

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
AXE = ROOT / "tests" / "vendor" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(os.environ.get("PERMANENCE_ARTIFACTS", ROOT / "artifacts"))
AUTH_TOKEN = "browser-test-auth-token"
LINE_NUMBER = "+33800000000"
CALLER = "+33612345678"
TIMEOUT_MS = 10_000  # how long the page may take to show a change before the test fails


def _browser_or_skip() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("PERMANENCE_REQUIRE_BROWSER") == "1":
        pytest.fail("PERMANENCE_REQUIRE_BROWSER=1 but /usr/bin/chromium is missing")
    pytest.skip("Chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server_settings(app_settings: Settings) -> Settings:
    port = _free_port()
    return app_settings.model_copy(update={
        "port": port,
        "public_base_url": f"http://127.0.0.1:{port}",
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_number": LINE_NUMBER,
    })


@pytest.fixture
def live_server(server_settings: Settings) -> Iterator[str]:
    """The real app served by uvicorn on a local port, wall clock, timers running."""
    _browser_or_skip()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    app = create_app(server_settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=server_settings.port,
                            log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = server_settings.public_base_url
    for _ in range(300):  # wait for the socket; the check itself asserts nothing on time
        if server.started:
            break
        threading.Event().wait(0.05)
    assert server.started, "uvicorn did not start"
    yield url
    server.should_exit = True
    thread.join(timeout=30)


@pytest.fixture
async def line_engine(server_settings: Settings, redis: Redis) -> AsyncIterator[Engine]:
    engine = Engine(redis, line=server_settings.line)
    yield engine
    async for key in redis.scan_iter(match=f"perm*{{{server_settings.line}}}*", count=1000):
        await redis.delete(key)


async def axe_violations(page) -> list[dict]:  # noqa: ANN001 - playwright Page
    """Serious and critical accessibility violations axe-core finds on the page."""
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate("axe.run(document)")
    assert result["passes"], "axe-core did not run any check"
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


async def test_a_call_and_its_answer_appear_on_the_open_dashboard(
    live_server: str, server_settings: Settings, line_engine: Engine, redis: Redis
) -> None:
    from playwright.async_api import async_playwright, expect

    db = Database(server_settings)
    coordinator = await login(db, server_settings.secret_key, "Claire Coord", Role.COORDINATOR)
    # A real volunteer account (softphone): the voice bridge rings it once it accepts.
    anne = await login(db, server_settings.secret_key, "Anne Alpes", Role.VOLUNTEER, "05000")
    await db.dispose()
    vid = anne.account.public_id
    # Open every day, all day, whatever day the test runs on.
    always = {d: [("00:00", "23:59")] for d in range(7)}
    await ScheduleStore(redis, server_settings.line).save(
        Schedule(weekly=always, public_holidays_closed=False)
    )
    await line_engine.log_in(
        VolunteerProfile(vid, "05", frozenset({"famille"}), name="Anne Alpes")
    )
    await line_engine.set_presence(vid, Presence.PAUSED, "café")

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        page = await browser.new_page(viewport={"width": 1400, "height": 1800}, locale="fr-FR")
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        frames: list[str] = []  # what the dashboard socket brings: the state, then deltas
        page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(f)))
        # Log in through the real login form, which brings the coordinator to the dashboard.
        await page.goto(f"{live_server}/connexion?suite=/coordination")
        await page.fill("#email", coordinator.account.email)
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{live_server}/coordination")
        await expect(page.locator("#connexion")).to_have_text(re.compile("À jour"),
                                                              timeout=TIMEOUT_MS)
        await expect(page.locator("#attente-total")).to_have_text("0")
        await expect(page.locator("#benevoles")).to_contain_text("En pause : café")

        # A call arrives: Twilio's signed webhooks walk the voice menu (topic 1, 05, confirm).
        async with httpx.AsyncClient() as http:
            hooks = Webhooks(http, AUTH_TOKEN, server_settings.twilio_account_sid
                             or "AC00000000000000000000000000000000")
            call = PhoneCall(hooks, live_server, "CA" + "7" * 32, CALLER, LINE_NUMBER)
            await call.start()
            await call.press("1")
            await call.press("05")
            twiml = await call.press("1")
            assert twiml.first("Enqueue") is not None, twiml.verbs()
        await expect(page.locator("#attente-total")).to_have_text("1", timeout=TIMEOUT_MS)
        await expect(page.locator("#attente-voice")).to_have_text("1")
        await expect(page.locator("#file tbody tr")).to_have_count(1)
        await expect(page.locator("#file tbody")).to_contain_text("Hautes-Alpes")

        # The volunteer comes back and accepts the offer.
        await line_engine.set_presence(vid, Presence.AVAILABLE)
        await expect(page.locator("#file tbody")).to_contain_text("Sonne chez Anne Alpes",
                                                                  timeout=TIMEOUT_MS)
        task = (await line_engine.volunteer(vid)).reserved
        await line_engine.accept(vid, task)  # what the console does on "Décrocher"
        await expect(page.locator("#attente-total")).to_have_text("0", timeout=TIMEOUT_MS)
        await expect(page.locator("#m-repondus")).to_have_text("1", timeout=TIMEOUT_MS)
        await expect(page.locator("#benevoles")).to_contain_text("En appel")

        # More volunteers, in several states, with names that differ only by case or accent:
        # the page rebuilds each change from deltas and keeps the server's order (a tie on
        # the name goes by id: extra-0 first).
        others = [("extra-1", "Zoé Queyras", Presence.PAUSED), ("extra-2", "émile Écrins",
                  Presence.AVAILABLE), ("extra-3", "Bruno Embrun", Presence.AVAILABLE),
                  ("extra-0", "bruno embrun", Presence.AVAILABLE)]
        for extra_id, name, presence in others:
            await line_engine.log_in(VolunteerProfile(extra_id, "05", name=name))
            await line_engine.set_presence(extra_id, presence, "réunion")
        await expect(page.locator("#benevoles tbody tr")).to_have_count(5, timeout=TIMEOUT_MS)
        await line_engine.set_presence("extra-1", Presence.AVAILABLE)
        await expect(page.locator("#benevoles tbody tr").first).to_contain_text(
            "Disponible", timeout=TIMEOUT_MS)
        await expect(page.locator("#benevoles")).not_to_contain_text("En pause")
        server = await (await page.request.get(f"{live_server}/coordination/etat")).json()
        await page.wait_for_function(
            f"Number(document.body.dataset.version) >= {server['version']}")
        shown = await page.locator("#benevoles tbody th").all_inner_texts()
        assert shown == [v["name"] for v in server["volunteers"]]
        assert shown == ["bruno embrun", "Bruno Embrun", "Zoé Queyras", "émile Écrins",
                         "Anne Alpes"]
        kinds = [frame.split('"', 2)[1] for frame in frames if isinstance(frame, str)]
        assert kinds[0] == "full" and kinds.count("full") == 1, kinds
        assert kinds.count("deltas") >= 4 and max(map(len, frames[1:])) < len(frames[0])
        assert errors == []
        await expect(page.locator("#file-vide")).to_be_visible()

        await page.screenshot(path=str(ARTIFACTS / "coordination-dashboard.png"), full_page=True)
        assert await axe_violations(page) == []

        # Keyboard: the first control is reachable and visibly focused.
        await page.keyboard.press("Tab")
        assert await page.evaluate("document.activeElement.textContent") == "Aller au contenu"

        # Queue rows too: priority first, then place in the queue.
        for extra_id, _, _ in others:  # nobody free to take them
            await line_engine.set_presence(extra_id, Presence.PAUSED, "réunion")
        for task_id, priority in (("chat-a", 0), ("chat-b", 5), ("chat-c", 0), ("chat-d", 5)):
            await line_engine.enqueue(TaskSpec(task_id, Channel.CHAT, "75", priority=priority))
        await expect(page.locator("#file tbody tr")).to_have_count(4, timeout=TIMEOUT_MS)
        rows = await page.locator("#file tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.key)")
        assert rows == ["chat-b", "chat-d", "chat-a", "chat-c"]

        for path in ("/coordination/rapports?periode=week", "/coordination/horaires",
                     "/coordination/routage"):
            await page.goto(live_server + path)
            assert await axe_violations(page) == [], path
        await page.goto(live_server + "/coordination/rapports")
        await expect(page.locator("table.data").first).to_contain_text("Total")
        await page.screenshot(path=str(ARTIFACTS / "coordination-rapports.png"), full_page=True)
        await browser.close()


async def test_a_silent_line_is_shown_and_the_dashboard_reconnects(
    live_server: str, server_settings: Settings, line_engine: Engine
) -> None:
    """A socket that stays open but brings nothing (a network that drops without closing):
    after 20 s the page says there is no news instead of showing old figures as current,
    and opens a new socket, which brings the state back."""
    from playwright.async_api import async_playwright, expect

    db = Database(server_settings)
    coordinator = await login(db, server_settings.secret_key, "Claire Coord", Role.COORDINATOR)
    await db.dispose()
    line = WeakLine()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = await browser.new_page(locale="fr-FR")
        await page.clock.install()
        await page.route_web_socket(re.compile(r".*/coordination/ws.*"), line)
        await page.goto(f"{live_server}/connexion?suite=/coordination")
        await page.fill("#email", coordinator.account.email)
        await page.fill("#password", PASSWORD)
        await page.click("button[type=submit]")
        pill = page.locator("#connexion")
        await expect(pill).to_have_text(re.compile("À jour"), timeout=TIMEOUT_MS)
        await expect(page.locator("#attente-total")).to_have_text("0")

        line.through.clear()  # the next socket waits until the test lets it through
        line.silent.set()
        await line_engine.enqueue(TaskSpec("silent-1", Channel.VOICE, "05"))
        await page.clock.fast_forward(15_000)
        await expect(pill).to_have_text(re.compile("À jour"))  # 15 s: not yet
        await expect(page.locator("#attente-total")).to_have_text("0")
        await page.clock.fast_forward(10_000)
        await expect(pill).to_have_text(re.compile(r"^Pas de nouvelles depuis \d+ s"))
        assert len(line.sockets) == 2

        line.through.set()
        await expect(pill).to_have_text(re.compile("À jour"), timeout=TIMEOUT_MS)
        await expect(page.locator("#attente-total")).to_have_text("1")
        await browser.close()
