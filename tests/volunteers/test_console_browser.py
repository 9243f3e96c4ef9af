"""A volunteer's day in real Chromium: log in, book, go available, take an offer, wrap up.

axe-core (checked in under tests/vendor/axe-core) is injected into each page
and the test fails on any serious or critical violation.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlmodel import select

from callers.chat.room import ChatRoom
from callers.keys import CallerKeys
from routing.models import Channel, Presence, TaskSpec, TaskState
from tests.volunteers.conftest import PASSWORD
from tests.weak_line import AnswerCut, WeakLine, pause_page_clock, periods
from volunteers.models import Booking, WrapUp

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe-core" / "axe.min.js"

pytestmark = pytest.mark.browser


def require_chromium() -> None:
    if CHROMIUM.exists():
        return
    if os.environ.get("PERMANENCE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{CHROMIUM} is required (PERMANENCE_REQUIRE_BROWSER=1): install chromium")
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")


@pytest.fixture
async def browser() -> AsyncIterator[object]:
    require_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


CONSOLE_SOCKET = re.compile(r".*/benevole/console/ws.*")


async def log_in_to_console(page, live, account) -> None:
    """Log in through the form and land on the console."""
    from playwright.async_api import expect

    await page.goto("/connexion?suite=/benevole/console")
    await page.get_by_label("Adresse e-mail").fill(account.email)
    await page.get_by_label("Mot de passe").fill(PASSWORD)
    await page.get_by_role("button", name="Se connecter").click()
    await expect(page).to_have_url(f"{live.base}/benevole/console")


async def check_accessibility(page, where: str) -> None:
    """Run axe-core in the page; fail on serious or critical violations."""
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate(
        "async () => await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'best-practice']})"
    )
    assert result["passes"], "axe-core ran no check"
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} — {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"accessibility problems on {where}:\n" + "\n".join(bad)


async def test_volunteer_books_goes_available_accepts_and_wraps_up(
    browser, live, make_account, engine, sessions, tmp_path
):
    from playwright.async_api import expect

    anne = await make_account("Anne Martin")
    context = await browser.new_context(base_url=live.base, locale="fr-FR")
    page = await context.new_page()
    try:
        # Log in.
        await page.goto("/benevole/console")
        await expect(page).to_have_url(f"{live.base}/connexion?suite=/benevole/console")
        await check_accessibility(page, "la connexion")
        await page.get_by_label("Adresse e-mail").fill(anne.email)
        await page.get_by_label("Mot de passe").fill(PASSWORD)
        await page.get_by_role("button", name="Se connecter").click()
        await expect(page).to_have_url(f"{live.base}/benevole/console")

        # Book a slot in the week view (the test clock says Monday 23 November, 9 h).
        await page.get_by_role("link", name="Créneaux").click()
        await page.get_by_role("button", name="Réserver mardi 24 novembre, 13 h – 15 h").click()
        await expect(page.get_by_role("status")).to_contain_text(
            "Créneau réservé : mardi 24 novembre, 13 h – 15 h."
        )
        await expect(
            page.get_by_role("button", name="Annuler mardi 24 novembre, 13 h – 15 h")
        ).to_be_visible()
        await check_accessibility(page, "les créneaux")
        async with sessions() as session:
            booked = list(await session.exec(select(Booking)))
        assert [(b.account_id, b.status) for b in booked] == [(anne.id, "booked")]

        # Go available in the console.
        await page.get_by_role("link", name="Console").click()
        await expect(page.locator("#console[data-ready='1']")).to_have_count(1)
        await page.get_by_role("button", name="Me rendre disponible").click()
        await expect(page.locator("#presence")).to_have_text("Disponible")

        # A call from the Hautes-Alpes rings: details, countdown, accept.
        await engine.enqueue(
            TaskSpec("web-call-1", Channel.VOICE, "05", skill="famille", caller_key="ck-web")
        )
        offer = page.locator("#offer")
        await expect(offer).to_be_visible()
        await expect(page.locator("#offer-summary")).to_contain_text("Hautes-Alpes (05)")
        await expect(page.locator("#offer-summary")).to_contain_text("Famille, CAF")
        await expect(page.locator("#offer-countdown")).to_have_text(re.compile(r"^\d+$"))
        await check_accessibility(page, "la console qui sonne")
        await page.get_by_role("button", name="Accepter").click()
        await expect(offer).to_be_hidden()
        await expect(page.locator("article.task h3")).to_contain_text("Appel — Famille, CAF")
        assert (await engine.task("web-call-1")).state is TaskState.ASSIGNED

        # The caller hangs up: the wrap-up form opens; fill it in.
        await engine.cancel("web-call-1")
        form = page.locator("form.wrapup")
        await expect(form).to_be_visible()
        await check_accessibility(page, "la fiche de fin d'échange")
        await form.get_by_label("Sujet").select_option("famille")
        await form.get_by_label("Orienté vers un organisme").check()
        await form.get_by_label("Orienté vers", exact=True).select_option("caf")
        await form.get_by_label("Notes").fill("Aide pour la déclaration trimestrielle.")
        await form.get_by_role("button", name="Enregistrer la fiche").click()
        await expect(page.locator("#message")).to_have_text("Fiche enregistrée. Merci !")
        await expect(page.locator("article.task")).to_have_count(0)
        shots = Path(os.environ.get("PERMANENCE_ARTIFACTS", tmp_path))
        shots.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, tiny
        await page.screenshot(path=str(shots / "volunteer-console.png"), full_page=True)

        async with sessions() as session:
            rows = list(await session.exec(select(WrapUp)))
        assert [(w.task_id, w.outcome, w.referral, w.notes) for w in rows] == [
            ("web-call-1", "referred", "caf", "Aide pour la déclaration trimestrielle.")
        ]
        assert (await engine.task("web-call-1")).state is TaskState.ENDED

        # The same caller calls again: the offer rings, then their previous notes show.
        await engine.enqueue(TaskSpec("web-call-2", Channel.VOICE, "05", caller_key="ck-web"))
        await expect(offer).to_be_visible()
        await expect(page.locator("#offer-previous")).to_be_visible()
        await expect(page.locator("#offer-previous-list li")).to_have_text(
            re.compile(r"Aide pour la déclaration trimestrielle\.$")
        )
        await page.get_by_role("button", name="Refuser").click()
        await expect(offer).to_be_hidden()
    finally:
        await context.close()


async def test_a_call_whose_line_was_lost_leaves_the_console_with_a_word_on_the_caller(
    browser, live, make_account, engine
):
    """The softphone dropped mid-call (the bridge gives the call back): the card goes, and
    the volunteer reads that the person waits again at their place, not "transferred"."""
    from playwright.async_api import expect

    anne = await make_account("Anne Martin")
    context = await browser.new_context(base_url=live.base, locale="fr-FR")
    page = await context.new_page()
    try:
        await log_in_to_console(page, live, anne)
        await expect(page.locator("#console[data-ready='1']")).to_have_count(1)
        await page.get_by_role("button", name="Me rendre disponible").click()
        await expect(page.locator("#presence")).to_have_text("Disponible")
        await engine.enqueue(TaskSpec("lost-call", Channel.VOICE, "05"))
        await page.get_by_role("button", name="Accepter").click()
        await expect(page.locator("article.task")).to_have_count(1)

        await engine.give_back(anne.public_id, "lost-call")
        await expect(page.locator("#message")).to_have_text(
            "La communication a été coupée : la personne a été remise en attente, à sa place."
        )
        await expect(page.locator("article.task")).to_have_count(0)
    finally:
        await context.close()


async def test_presence_buttons_wait_for_the_server(browser, live, make_account, engine):
    """On a slow line the buttons stay disabled until the server's welcome, so no click is lost."""
    from playwright.async_api import expect

    anne = await make_account("Anne Martin")
    context = await browser.new_context(base_url=live.base, locale="fr-FR")
    page = await context.new_page()
    line = WeakLine()
    line.through.clear()  # the socket opens only when the test says
    await page.route_web_socket(CONSOLE_SOCKET, line)
    try:
        await log_in_to_console(page, live, anne)
        available = page.get_by_role("button", name="Me rendre disponible")
        await expect(available).to_be_disabled()
        await expect(page.get_by_role("button", name="Me mettre en pause")).to_be_disabled()
        assert line.sockets, "the console did not open its socket"

        line.through.set()
        await expect(available).to_be_enabled()
        await available.click()
        await expect(page.locator("#presence")).to_have_text("Disponible")
        assert (await engine.volunteer(anne.public_id)).presence is Presence.AVAILABLE
    finally:
        await context.close()


async def test_a_wrapup_being_typed_survives_a_dropped_line(
    browser, live, make_account, engine, sessions
):
    """On a weak line: the typed wrap-up stays through a reconnection, a request whose answer
    was lost says so instead of hanging, and sending it again saves it once."""
    from playwright.async_api import expect

    anne = await make_account("Anne Martin")
    context = await browser.new_context(base_url=live.base, locale="fr-FR")
    page = await context.new_page()
    cut = AnswerCut("wrapup")
    lines = cut.sockets  # the page's side of each socket the console opened
    await page.route_web_socket(CONSOLE_SOCKET, cut)
    try:
        await log_in_to_console(page, live, anne)
        await page.get_by_role("button", name="Me rendre disponible").click()
        await expect(page.locator("#presence")).to_have_text("Disponible")
        await engine.enqueue(TaskSpec("weak-1", Channel.VOICE, "05", caller_key="ck-weak"))
        await page.get_by_role("button", name="Accepter").click()
        await expect(page.locator("article.task h3")).to_contain_text("Appel")
        await engine.cancel("weak-1")
        form = page.locator("form.wrapup")
        await expect(form).to_be_visible()
        await form.get_by_label("Sujet").select_option("famille")
        await form.get_by_label("Résolu").check()
        await form.get_by_label("Notes").fill("Dossier CAF à compléter.")

        # The line drops while the volunteer types; the console comes back by itself.
        await lines[-1].close()
        await expect(page.locator("#connection")).to_contain_text("Connexion perdue")
        await expect(page.locator("#connection")).to_have_text("Connecté", timeout=10_000)
        assert len(lines) == 2
        await expect(form.get_by_label("Notes")).to_have_value("Dossier CAF à compléter.")
        await expect(form.get_by_label("Sujet")).to_have_value("famille")
        await expect(form.get_by_label("Résolu")).to_be_checked()

        # Sent, saved, but the answer is lost: the form says so and stays.
        cut.armed.set()
        await form.get_by_role("button", name="Enregistrer la fiche").click()
        await expect(form.locator(".w-error")).to_contain_text("La connexion a été coupée")
        await expect(page.locator("#connection")).to_have_text("Connecté", timeout=10_000)
        await expect(form.get_by_label("Notes")).to_have_value("Dossier CAF à compléter.")
        assert (await engine.task("weak-1")).state is TaskState.ENDED  # the first one went in

        # Sent again: it was saved the first time, and the console says it is done.
        await form.get_by_role("button", name="Enregistrer la fiche").click()
        await expect(page.locator("#message")).to_have_text("Fiche enregistrée. Merci !")
        await expect(page.locator("article.task")).to_have_count(0)
        async with sessions() as session:
            rows = list(await session.exec(select(WrapUp)))
        assert [(w.task_id, w.notes) for w in rows] == [("weak-1", "Dossier CAF à compléter.")]
    finally:
        await context.close()


async def chat_in_hand(page, live, account, engine, task_id: str):
    """Log in to the console, go available and accept a chat: its card."""
    from playwright.async_api import expect

    await log_in_to_console(page, live, account)
    await page.get_by_role("button", name="Me rendre disponible").click()
    await expect(page.locator("#presence")).to_have_text("Disponible")
    await engine.enqueue(TaskSpec(task_id, Channel.CHAT, "05"))
    await page.get_by_role("button", name="Accepter").click()
    card = page.locator("article.task")
    await expect(card.locator(".chat-input")).to_be_visible()
    return card


def volunteer_said(engine, line, clock, task_id: str):
    """What the volunteer has posted in a chat room so far, as a coroutine function."""
    room = ChatRoom(engine.redis, CallerKeys(line), clock)

    async def said() -> list[str]:
        return [m["text"] for m in await room.history(task_id) if m["author"] == "volunteer"]

    return said


async def test_a_chat_message_whose_answer_was_lost_is_posted_once(
    browser, live, make_account, engine, line, clock
):
    """On a weak line: a chat message that reached the caller but whose answer was lost
    stays in its box, and sending it again does not post it twice."""
    from playwright.async_api import expect

    anne = await make_account("Anne Martin")
    context = await browser.new_context(base_url=live.base, locale="fr-FR")
    page = await context.new_page()
    cut = AnswerCut("chat_send")
    await page.route_web_socket(CONSOLE_SOCKET, cut)
    said = volunteer_said(engine, line, clock, "weak-chat")
    try:
        card = await chat_in_hand(page, live, anne, engine, "weak-chat")
        box = card.locator(".chat-input")

        cut.armed.set()
        await box.fill("Je regarde votre dossier.")
        await card.get_by_role("button", name="Envoyer").click()
        await expect(page.locator("#message")).to_contain_text("La connexion a été coupée")
        await expect(page.locator("#connection")).to_have_text("Connecté", timeout=10_000)
        await expect(box).to_have_value("Je regarde votre dossier.")
        assert await said() == ["Je regarde votre dossier."]  # the first one went in

        await card.get_by_role("button", name="Envoyer").click()
        await expect(box).to_have_value("")
        await expect(card.locator(".chat-log")).to_contain_text("Je regarde votre dossier.")
        assert await said() == ["Je regarde votre dossier."]
        # A new message with the same words is a new message.
        await box.fill("Je regarde votre dossier.")
        await card.get_by_role("button", name="Envoyer").click()
        await expect(box).to_have_value("")
        assert await said() == ["Je regarde votre dossier."] * 2
    finally:
        await context.close()


async def test_a_chat_message_typed_while_the_line_is_down_goes_once_reconnected(
    browser, live, make_account, engine, line, clock
):
    """On a weak line: the volunteer answers while the console reconnects; the text stays with
    a word on why, and goes by itself, once, when the console is back."""
    from playwright.async_api import expect

    anne = await make_account("Anne Martin")
    context = await browser.new_context(base_url=live.base, locale="fr-FR")
    page = await context.new_page()
    weak = WeakLine()
    await page.route_web_socket(CONSOLE_SOCKET, weak)
    said = volunteer_said(engine, line, clock, "down-chat")
    try:
        card = await chat_in_hand(page, live, anne, engine, "down-chat")
        box = card.locator(".chat-input")

        weak.through.clear()  # the next socket waits: the console cannot get back yet
        await weak.sockets[-1].close()
        await expect(page.locator("#connection")).to_contain_text("Connexion perdue")
        await box.fill("Je suis toujours là.")
        await card.get_by_role("button", name="Envoyer").click()
        await expect(page.locator("#message")).to_contain_text("partira dès que la console")
        await expect(box).to_have_value("Je suis toujours là.")
        assert await said() == []

        weak.through.set()
        await expect(page.locator("#connection")).to_have_text("Connecté", timeout=10_000)
        await expect(box).to_have_value("")
        await expect(card.locator(".chat-log")).to_contain_text("Je suis toujours là.")
        assert await said() == ["Je suis toujours là."]
    finally:
        await context.close()


async def test_a_silent_line_is_noticed_and_the_console_reconnects(
    browser, live, make_account, engine
):
    """Pings unanswered for three heartbeats (a network that drops without closing): the
    console says the connection is lost and opens a new socket, which gives the state back."""
    from playwright.async_api import expect

    anne = await make_account("Anne Martin")
    context = await browser.new_context(base_url=live.base, locale="fr-FR")
    page = await context.new_page()
    line = WeakLine()
    await page.clock.install()
    await page.route_web_socket(CONSOLE_SOCKET, line)
    try:
        await log_in_to_console(page, live, anne)
        await page.get_by_role("button", name="Me rendre disponible").click()
        await expect(page.locator("#presence")).to_have_text("Disponible")
        await pause_page_clock(page)
        connection = page.locator("#connection")
        await periods(page, 10_000, 5)  # heartbeats; pongs come back: nothing to say
        await expect(connection).to_have_text("Connecté")
        assert len(line.sockets) == 1

        line.silent.set()
        await periods(page, 10_000, 2)
        await expect(connection).to_have_text("Connecté")
        await periods(page, 10_000, 2)
        await expect(connection).to_contain_text("Connexion perdue")
        await expect(page.get_by_role("button", name="Me mettre en pause")).to_be_disabled()
        await page.clock.fast_forward(1_000)  # the first retry
        await expect(connection).to_have_text("Connecté")
        assert len(line.sockets) == 2
        await expect(page.locator("#presence")).to_have_text("Disponible")
        await expect(page.get_by_role("button", name="Me mettre en pause")).to_be_enabled()
    finally:
        await context.close()
