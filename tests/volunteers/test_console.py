"""The console over real websockets against the real app: offers, the accept race, liveness."""

from __future__ import annotations

import asyncio
import gc
import threading
import types

from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import select
from starlette.websockets import WebSocket, WebSocketState

from callers.chat.room import ChatRoom
from callers.keys import CallerKeys
from routing.engine import Engine
from routing.models import Channel, Presence, TaskSpec, TaskState
from tests.volunteers.conftest import PASSWORD
from tests.volunteers.live import Console, login
from volunteers.access import session_user_at
from volunteers.console import LOST_REASON, ConsoleHub, ConsoleSession
from volunteers.models import Account, WrapUp

# Depending on which accept Redis runs first, the loser hears one of these.
LOSER_MESSAGES = (
    "Cette demande a été proposée à quelqu'un d'autre.",
    "Cette proposition a expiré : la demande est passée à un autre bénévole.",
)


async def _on_duty(live, make_account, *names: str) -> list[tuple[object, Console]]:
    """Volunteers of the Hautes-Alpes, logged in, with their console open and available."""
    out = []
    for name in names:
        account = await make_account(name)
        client = await login(live.base, account.email, PASSWORD)
        console = await Console.open(live, client)
        result = await console.request("presence", state="available")
        assert result["ok"] and result["presence"] == "available"
        out.append((account, console))
    return out


async def _offered(consoles: list[Console], task_id: str) -> int:
    """Which console rings for the task (index), waiting for the push."""

    async def ring(i: int) -> int:
        await consoles[i].next("offer", task=task_id)
        return i

    waiters = [asyncio.create_task(ring(i)) for i in range(len(consoles))]
    done, pending = await asyncio.wait(waiters, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    for w in pending:
        w.cancel()
    assert done, "an offer reached a console"
    return done.pop().result()


async def test_offer_reaches_the_console_with_caller_details(live, make_account, engine: Engine):
    [(anne, console)] = await _on_duty(live, make_account, "Anne")
    await engine.enqueue(TaskSpec("call-1", Channel.VOICE, "05", skill="famille"))
    offer = await console.next("offer", task="call-1")
    assert offer["departement"] == "05" and offer["departement_name"] == "Hautes-Alpes"
    assert offer["topic"] == "Famille, CAF" and offer["channel_label"] == "Appel"
    assert 0 < offer["remaining_ms"] <= 20_000 and offer["ring_s"] == 20
    assert offer["previous"] == [] and offer["returning"] is False
    await console.close()


async def test_two_volunteers_race_to_accept_the_same_offer(
    live, make_account, engine: Engine, clock
):
    (a, con_a), (b, con_b) = await _on_duty(live, make_account, "Anne", "Bruno")
    consoles = [con_a, con_b]

    # 1. Both click "Accepter" at once on the same task: only the one it rings for wins.
    await engine.enqueue(TaskSpec("race-1", Channel.VOICE, "05"))
    first = await _offered(consoles, "race-1")
    results = await asyncio.gather(
        con_a.request("accept", task="race-1"), con_b.request("accept", task="race-1")
    )
    assert [r["ok"] for r in results].count(True) == 1
    winner, loser = (results[first], results[1 - first])
    assert winner["ok"] and winner["task"] == "race-1"
    assert loser["error"]["message"] in LOSER_MESSAGES
    task = await engine.task("race-1")
    assert task.state is TaskState.ASSIGNED and task.volunteer == (a, b)[first].public_id

    # 2. The offer times out on the first console and moves to the second just as the
    #    first volunteer clicks: both accept at the same moment, one wins, one is told.
    await engine.cancel("race-1")
    await engine.finish_wrapup((a, b)[first].public_id, "race-1")
    await engine.enqueue(TaskSpec("race-2", Channel.VOICE, "05"))
    ringing = await _offered(consoles, "race-2")
    clock.advance(21)
    await engine.tick()
    other = 1 - ringing
    await consoles[ringing].next("offer_gone", task="race-2", reason="timeout")
    await consoles[other].next("offer", task="race-2")
    results = await asyncio.gather(
        consoles[ringing].request("accept", task="race-2"),
        consoles[other].request("accept", task="race-2"),
    )
    assert results[1]["ok"] is True
    assert results[0]["ok"] is False
    assert results[0]["error"]["message"] in LOSER_MESSAGES
    assert (await engine.task("race-2")).volunteer == (a, b)[other].public_id
    await con_a.close()
    await con_b.close()


async def test_lost_connection_logs_out_and_offer_moves_then_reconnect_restores(
    live, make_account, engine: Engine, clock, vol
):
    (a, con_a), (b, con_b) = await _on_duty(live, make_account, "Anne", "Bruno")
    client_a = await login(live.base, a.email, PASSWORD)
    await engine.enqueue(TaskSpec("lost-1", Channel.VOICE, "05"))
    ringing = await _offered([con_a, con_b], "lost-1")
    cons, accs = [con_a, con_b], [a, b]
    lost_con, lost_acc = cons[ringing], accs[ringing]
    kept_con, kept_acc = cons[1 - ringing], accs[1 - ringing]

    await lost_con.drop()  # no close frame: the server cannot tell yet
    hub = ConsoleHub(vol)
    clock.advance(vol.settings.heartbeat_timeout_s - 1)
    assert await hub.reap() == []  # within the timeout: nothing happens
    clock.advance(2)
    await kept_con.ping()  # the other console keeps beating
    assert await hub.reap() == [lost_acc.public_id]
    gone = await engine.volunteer(lost_acc.public_id)
    assert gone.presence is Presence.LOGGED_OUT and gone.reason == LOST_REASON
    await kept_con.next("offer", task="lost-1")  # the offer in flight went to the next one
    assert (await engine.task("lost-1")).volunteer == kept_acc.public_id

    back = await Console.open(live, client_a if lost_acc is a else await login(
        live.base, lost_acc.email, PASSWORD
    ))
    # Welcome came first (consumed by open); the restored state is visible in the engine.
    again = await engine.volunteer(lost_acc.public_id)
    assert again.presence is Presence.AVAILABLE
    await back.close()
    await kept_con.close()


async def test_wrapup_is_checked_stored_and_shown_to_the_next_volunteer(
    live, make_account, engine: Engine, sessions
):
    [(anne, console)] = await _on_duty(live, make_account, "Anne")
    await engine.enqueue(TaskSpec("chat-1", Channel.CHAT, "05", caller_key="ck-42"))
    await console.next("offer", task="chat-1")
    assert (await console.request("accept", task="chat-1"))["ok"]
    early = await console.request("wrapup", task="chat-1", topic="famille", outcome="resolved")
    assert early["error"]["message"] == (
        "Terminez d'abord la conversation avant de remplir la fiche."
    )
    assert (await console.request("complete", task="chat-1"))["ok"]
    await console.next("task", task="chat-1", status="wrapup")

    bad = await console.request("wrapup", task="chat-1", topic="famille", outcome="referred")
    assert bad["error"]["message"] == "Choisissez l'organisme vers lequel vous avez orienté."
    bad = await console.request(
        "wrapup", task="chat-1", topic="famille", outcome="resolved", consent=True
    )
    assert "Précisez pour quelle démarche" in bad["error"]["message"]
    ok = await console.request(
        "wrapup",
        task="chat-1",
        topic="famille",
        outcome="referred",
        referral="caf",
        consent=True,
        consent_demarche="Demande de prime d'activité",
        notes="Dossier CAF à compléter : attestation de loyer.",
    )
    assert ok["ok"] and ok["message"] == "Fiche enregistrée. Merci !"
    async with sessions() as session:
        rows = list(await session.exec(select(WrapUp)))
    assert len(rows) == 1
    row = rows[0]
    assert (row.task_id, row.caller_key, row.outcome, row.referral) == (
        "chat-1",
        "ck-42",
        "referred",
        "caf",
    )
    assert row.consent and row.consent_at is not None and row.account_id == anne.id
    assert (await engine.task("chat-1")).state is TaskState.ENDED
    again = await console.request("wrapup", task="chat-1", topic="famille", outcome="resolved")
    assert again["error"]["message"] == "La fiche de cette demande a déjà été enregistrée."

    # The same caller comes back: the offer rings at once, the previous notes follow it.
    await engine.enqueue(TaskSpec("chat-2", Channel.CHAT, "05", caller_key="ck-42"))
    await console.next("offer", task="chat-2")
    notes = await console.next("offer_previous", task="chat-2")
    assert notes["returning"] is True
    assert notes["previous"][0]["notes"] == "Dossier CAF à compléter : attestation de loyer."
    assert notes["previous"][0]["referral"] == "CAF"
    # A console opening while it rings gets the notes inside the offer of its welcome.
    again = await Console.open(live, await login(live.base, anne.email, PASSWORD))
    assert again.welcome["offer"]["task"] == "chat-2"
    assert again.welcome["offer"]["previous"][0]["referral"] == "CAF"
    await again.close()
    declined = await console.request("decline", task="chat-2")
    assert declined["ok"]
    await console.next("offer_gone", task="chat-2", reason="declined")
    await console.close()


async def test_chat_send_checks_its_message_id_and_posts_a_resent_message_once(
    live, make_account, engine: Engine, line, clock
):
    [(anne, console)] = await _on_duty(live, make_account, "Anne")
    await engine.enqueue(TaskSpec("chat-3", Channel.CHAT, "05"))
    await console.next("offer", task="chat-3")
    assert (await console.request("accept", task="chat-3"))["ok"]
    for bad in ("x" * 65, "m 1", 7):
        refused = await console.request("chat_send", task="chat-3", text="Bonjour", mid=bad)
        assert refused["error"] == {"code": "invalid", "message": "Ce message n'a pas pu être lu."}
    for _ in range(2):  # its answer lost, the console sends it again
        sent = await console.request("chat_send", task="chat-3", text="Bonjour", mid="a1")
        assert sent["ok"]
    assert (await console.request("chat_send", task="chat-3", text="Bonjour"))["ok"]
    room = ChatRoom(engine.redis, CallerKeys(line), clock)
    said = [m["text"] for m in await room.history("chat-3") if m["author"] == "volunteer"]
    assert said == ["Bonjour", "Bonjour"]


async def test_a_console_back_gets_its_chats_history_after_the_welcome(
    live, make_account, engine: Engine
):
    # The page clears a held chat's log on a welcome: a history pushed before it was wiped.
    [(anne, console)] = await _on_duty(live, make_account, "Anne")
    await engine.enqueue(TaskSpec("chat-4", Channel.CHAT, "05"))
    await console.next("offer", task="chat-4")
    assert (await console.request("accept", task="chat-4"))["ok"]
    assert (await console.request("chat_send", task="chat-4", text="Bonjour", mid="h1"))["ok"]
    await console.close()
    hub = live.app.state.console_hub
    state_message = hub.state_message

    async def slow_state_message(vid: str) -> dict[str, object]:
        await asyncio.sleep(0.3)  # a welcome slow to build: the history is read first
        return await state_message(vid)

    hub.state_message = slow_state_message
    try:
        back = await Console.open(live, await login(live.base, anne.email, PASSWORD))
    finally:
        del hub.state_message
    history = await back.next("chat", task="chat-4")
    assert [m["text"] for m in history["messages"] if m["author"] == "volunteer"] == ["Bonjour"]
    assert back.received.index("welcome") < back.received.index("chat")
    await back.close()


async def test_an_offer_made_while_the_welcome_is_built_comes_after_it(
    live, make_account, engine: Engine
):
    # The page forgets its offer on every welcome: an offer pushed while a reconnecting
    # console's welcome was being built, and so sent ahead of it, rang unseen and timed out.
    [(anne, console)] = await _on_duty(live, make_account, "Anne")
    await console.close()  # her line drops; she is still available
    hub = live.app.state.console_hub
    state_message = hub.state_message
    building = threading.Event()

    async def slow_state_message(vid: str) -> dict[str, object]:
        building.set()
        await asyncio.sleep(0.5)  # the welcome's last reads, slow: a call comes meanwhile
        return await state_message(vid)

    hub.state_message = slow_state_message
    try:
        opening = asyncio.create_task(
            Console.open(live, await login(live.base, anne.email, PASSWORD))
        )
        await asyncio.to_thread(building.wait, 10)
        await engine.enqueue(TaskSpec("call-w", Channel.VOICE, "05"))
        back = await opening
    finally:
        del hub.state_message
    if back.welcome["offer"] is None:  # the welcome read the line before the offer was made
        await back.next("offer", task="call-w")
        assert back.received.index("welcome") < back.received.index("offer")
    else:
        assert back.welcome["offer"]["task"] == "call-w"
    assert (await back.request("accept", task="call-w"))["ok"]
    await back.close()


async def _chat_held_then_console_lost(live, make_account, engine, clock, vol, task_id):
    """Anne holds a chat and wrote in it; Bruno is on duty; Anne's console is lost (reaped)."""
    [(anne, con_a)] = await _on_duty(live, make_account, "Anne")
    await engine.enqueue(TaskSpec(task_id, Channel.CHAT, "05"))
    await con_a.next("offer", task=task_id)
    assert (await con_a.request("accept", task=task_id))["ok"]
    assert (await con_a.request("chat_send", task=task_id, text="Je regarde votre dossier."))["ok"]
    [(bruno, con_b)] = await _on_duty(live, make_account, "Bruno")
    await con_a.drop()
    hub = ConsoleHub(vol)
    clock.advance(vol.settings.heartbeat_timeout_s + 1)
    await con_b.ping()
    await hub.reap()  # this hub or the app's own: Anne is logged out either way
    gone = await engine.volunteer(anne.public_id)
    assert gone.presence is Presence.LOGGED_OUT and gone.reason == LOST_REASON
    return anne, hub, con_b


async def test_chats_of_a_console_lost_for_good_go_to_someone_else_at_their_place(
    live, make_account, engine: Engine, clock, vol, line
):
    anne, hub, con_b = await _chat_held_then_console_lost(
        live, make_account, engine, clock, vol, "chat-lost-1")
    # A weak line comes back often: the chat waits for its volunteer a while.
    clock.advance(vol.settings.lost_chat_grace_s - 5)
    await con_b.ping()
    assert await hub.hand_back_chats() == []
    assert (await engine.task("chat-lost-1")).volunteer == anne.public_id
    clock.advance(10)
    await con_b.ping()
    await hub.hand_back_chats()
    await con_b.next("offer", task="chat-lost-1")  # back at its place, offered to Bruno
    assert (await con_b.request("accept", task="chat-lost-1"))["ok"]
    history = await con_b.next("chat", task="chat-lost-1")
    said = [m["text"] for m in history["messages"]]
    assert "Je regarde votre dossier." in said  # Bruno reads what was said before him
    room = ChatRoom(engine.redis, CallerKeys(line), clock)
    for _ in range(50):  # the caller is told, by the app's chat service (its own events)
        told = [m["text"] for m in await room.history("chat-lost-1") if m["author"] == "system"]
        if any("Un autre bénévole va prendre la suite" in t for t in told):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError(f"the caller was not told: {told}")
    await con_b.close()


async def test_a_console_back_within_the_grace_keeps_its_chats(
    live, make_account, engine: Engine, clock, vol
):
    anne, hub, con_b = await _chat_held_then_console_lost(
        live, make_account, engine, clock, vol, "chat-lost-2")
    back = await Console.open(live, await login(live.base, anne.email, PASSWORD))
    assert [t["task"] for t in back.welcome["tasks"]] == ["chat-lost-2"]
    clock.advance(vol.settings.lost_chat_grace_s + 5)
    await back.ping()
    await con_b.ping()
    assert await hub.hand_back_chats() == []
    assert (await engine.task("chat-lost-2")).volunteer == anne.public_id
    await back.close()
    await con_b.close()


async def test_presence_pause_with_reason_and_bad_requests(live, make_account, engine):
    [(anne, console)] = await _on_duty(live, make_account, "Anne")
    paused = await console.request("presence", state="paused", reason="Pause café")
    assert paused["presence"] == "paused" and paused["label"] == "En pause"
    vol_state = await engine.volunteer(anne.public_id)
    assert vol_state.presence is Presence.PAUSED and vol_state.reason == "Pause café"
    bad = await console.request("presence", state="asleep")
    assert bad["error"]["message"] == "État inconnu."
    unknown = await console.request("launch_rockets")
    assert unknown["error"]["message"] == "Demande inconnue."
    nope = await console.request("accept", task="does-not-exist")
    assert nope["ok"] is False and nope["error"]["code"] == "unknown_task"
    # A '|' would split the engine's packed fields: refused in French, the console stays.
    forged = await console.request("accept", task="does-not-exist|x")
    assert forged["error"]["code"] == "invalid_identifier"
    assert "Identifiant invalide" in forged["error"]["message"]
    await console.ws.send("not json")
    assert (await console.next("result"))["error"]["message"] == "Message illisible."
    await console.close()


async def test_coordinators_broadcast_reaches_every_console(live, make_account, redis):
    from volunteers.console import broadcast_key

    (_, con_a), (_, con_b) = await _on_duty(live, make_account, "Anne", "Bruno")
    line = live.app.state.settings.line
    await redis.xadd(broadcast_key(line), {"text": "Forte affluence : merci de rester dispo."})
    for console in (con_a, con_b):
        got = await console.next("broadcast")
        assert got["text"] == "Forte affluence : merci de rester dispo."
        await console.close()


async def test_a_lost_line_is_told_as_the_task_gone_back_to_the_queue(
    live, make_account, engine: Engine
):
    # The bridge gives a call back when the volunteer's softphone drops mid-call; the
    # console, still connected, says the person was put back in the queue.
    anne = await make_account("Anne")
    con = await Console.open(live, await login(live.base, anne.email, PASSWORD))
    assert (await con.request("presence", state="available"))["ok"]
    await engine.enqueue(TaskSpec("lost-1", Channel.CHAT, "05"))
    await con.next("offer", task="lost-1")
    assert (await con.request("accept", task="lost-1"))["ok"]
    await engine.give_back(anne.public_id, "lost-1")
    assert (await con.next("task", task="lost-1", status="transferred"))["back"] is True
    assert (await engine.task("lost-1")).state is not TaskState.ASSIGNED
    await con.close()


async def test_transfer_to_a_colleague_and_to_a_skill(live, make_account, engine: Engine):
    anne = await make_account("Anne")
    bruno = await make_account("Bruno", skills="impots")
    consoles = {}
    for account in (anne, bruno):
        client = await login(live.base, account.email, PASSWORD)
        consoles[account.id] = await Console.open(live, client)
    con_a, con_b = consoles[anne.id], consoles[bruno.id]
    assert (await con_a.request("presence", state="available"))["ok"]
    await engine.enqueue(TaskSpec("tr-1", Channel.CHAT, "05", skill="famille"))
    await con_a.next("offer", task="tr-1")
    assert (await con_a.request("accept", task="tr-1"))["ok"]
    assert (await con_b.request("presence", state="available"))["ok"]

    listed = await con_a.request("colleagues")
    assert [(c["name"], c["skills"]) for c in listed["colleagues"]] == [("Bruno", ["Impôts"])]
    refused = await con_a.request("transfer", task="tr-1")
    assert refused["error"]["message"] == "Choisissez une compétence ou un collègue."
    assert (await con_a.request("transfer", task="tr-1", to=bruno.public_id))["ok"]
    assert (await con_a.next("task", task="tr-1", status="transferred"))["back"] is False
    await con_b.next("offer", task="tr-1")
    assert (await con_b.request("accept", task="tr-1"))["ok"]

    # Bruno sends it on to anyone who knows "impôts": the task now asks for that skill
    # and is back in the queue (no longer assigned to him).
    assert (await con_b.request("transfer", task="tr-1", skill="impots"))["ok"]
    task = await engine.task("tr-1")
    assert task.skill == "impots" and task.state is not TaskState.ASSIGNED
    await con_a.close()
    await con_b.close()


async def test_an_open_console_holds_no_database_session(live, make_account):
    """serve() runs as long as the socket: its locals live as long (hundreds per process)."""
    [(_anne, console)] = await _on_duty(live, make_account, "Anne")
    await console.ping()  # a message: the account has been read again since the welcome
    serving = [
        obj.cr_frame
        for obj in gc.get_objects()
        if type(obj) is types.CoroutineType  # not isinstance: dead weak proxies raise
        and obj.cr_code is ConsoleSession.serve.__code__
        and obj.cr_frame is not None
    ]
    assert len(serving) == 1
    held = [v for v in serving[0].f_locals.values() if isinstance(v, AsyncSession | Account)]
    assert held == []
    await console.close()


async def test_a_console_whose_network_fails_mid_request_ends_quietly(vol, make_account):
    """The reply to a request finds the network gone: the session ends and cleans up.

    Starlette marks the socket closed when a send fails; the console's next read then
    raises at once (WebSocketDisconnected), which used to escape as an ASGI error.
    """
    anne = await make_account("Anne")
    hub = ConsoleHub(vol)
    user = session_user_at(anne, anne.session_version)
    assert user is not None
    incoming: asyncio.Queue[dict] = asyncio.Queue()
    for message in (
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": '{"type": "colleagues", "ref": "r1"}'},
    ):
        incoming.put_nowait(message)
    sent: list[dict] = []

    async def send(message: dict) -> None:
        if message["type"] == "websocket.send":
            raise OSError("connection reset by peer")  # the mountain link dropped
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/benevole/console/ws",
        "headers": [],
        "query_string": b"",
        "scheme": "ws",
        "server": ("testserver", 80),
    }
    websocket = WebSocket(scope, incoming.get, send)  # past the two messages: waits forever
    session = ConsoleSession(hub, websocket, user)
    async with asyncio.timeout(10):
        await session.serve()  # returns: no exception, no wait for a read that cannot come
    assert [m["type"] for m in sent] == ["websocket.accept"]
    assert websocket.application_state is WebSocketState.DISCONNECTED
    assert not hub.connections.get(user.public_id)  # detached: offers go elsewhere
