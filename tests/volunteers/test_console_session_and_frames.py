"""The console when its session ends, when the line is weak, and with malformed frames.

Who is asking (a wrap-up only for a conversation held; logging out or a disabled account
ends the open console and takes the volunteer off the line), coming back while holding more
chats than the profile now allows, and frames that are not UTF-8 JSON text. Each test drives
the real app over a real websocket (real Redis, real database).
"""

from __future__ import annotations

import asyncio

import websockets

from routing.engine import Engine
from routing.models import Channel, Presence, TaskSpec, TaskState
from tests.volunteers.conftest import PASSWORD
from tests.volunteers.live import CSRF, Console, login
from volunteers import accounts
from volunteers.console import CAPACITY_NOT_APPLIED, SESSION_ENDED_REASON, ConsoleHub


async def _on_duty(live, make_account, name: str = "Anne"):
    account = await make_account(name)
    client = await login(live.base, account.email, PASSWORD)
    console = await Console.open(live, client)
    result = await console.request("presence", state="available")
    assert result["ok"] and result["presence"] == "available"
    return account, client, console


async def _csrf(client, path: str = "/benevole/console") -> str:
    page = await client.get(path)
    token = CSRF.search(page.text)
    assert token, f"{path} carries a CSRF token"
    return token.group(1)


async def _still_answers(console: Console) -> bool:
    """Whether the socket is still up and served (a ping gets its pong)."""
    try:
        await console.ws.send('{"type": "ping"}')
        await console.next("pong", wait_s=5)
    except (TimeoutError, websockets.ConnectionClosed):
        return False
    return True


# Who is asking -------------------------------------------------------------------------------


async def test_no_wrapup_for_an_offer_that_only_rang(live, make_account, engine: Engine):
    """An offer rings for Anne; the caller hangs up before she accepts. The ended task still
    names her (the last volunteer it rang for), but she never spoke to them: no wrap-up of hers
    may be stored, to be shown to the next volunteer as this caller's previous notes."""
    anne, client, console = await _on_duty(live, make_account)
    await engine.enqueue(TaskSpec("ring-only", Channel.VOICE, "05", caller_key="ck-ring"))
    await console.next("offer", task="ring-only")
    await engine.cancel("ring-only")  # the caller hung up while it rang
    ended = await engine.task("ring-only")
    assert ended.state is TaskState.ENDED and ended.volunteer == anne.public_id
    reply = await console.request(
        "wrapup", task="ring-only", topic="famille", outcome="resolved", notes="Inventé."
    )
    assert reply["ok"] is False, "a wrap-up was stored for a conversation that never happened"
    assert reply["error"]["code"] == "not_your_task"
    assert "avant que vous ne la preniez" in reply["error"]["message"]
    await console.close()
    await client.aclose()


async def test_logging_out_ends_the_open_console(live, make_account, engine: Engine):
    """README: "An open console ends when its session does". « Se déconnecter » (a shared
    computer at a France Services desk) ends the session on the server: the console opened
    with it stops acting for the volunteer, who is off the line, and the old cookie opens
    nothing any more."""
    anne, client, console = await _on_duty(live, make_account)
    old_cookie = dict(client.cookies)
    token = await _csrf(client)
    out = await client.post("/deconnexion", data={"csrf_token": token})
    assert out.status_code == 303
    gone = await engine.volunteer(anne.public_id)
    assert gone.presence is Presence.LOGGED_OUT and gone.reason == SESSION_ENDED_REASON
    try:
        reply = await console.request("presence", state="paused", reason="Pause café")
        acted = reply.get("ok") is True
    except (TimeoutError, websockets.ConnectionClosed):
        acted = False
    assert not acted, "a console kept acting for a volunteer who had logged out"
    # And the cookie the logout replaced must not open a console again.
    stale = await login(live.base, anne.email, PASSWORD)
    stale.cookies.clear()
    stale.cookies.update(old_cookie)
    try:
        again = await Console.open(live, stale)
    except websockets.InvalidStatus:
        again = None
    assert again is None, "the session ended by the logout still opens the console"
    await client.aclose()
    await stale.aclose()


async def test_logging_out_after_the_console_closed_leaves_the_call_and_restores_nothing(
    live, make_account, engine: Engine
):
    """Anne, on a call, leaves the console page and logs out (its socket closed with the
    page, so no console sees the session end). She is off the line at once, not ~30 s later
    when the reaper notices the silence; her call goes on; and logging in again does not make
    her available by itself, as after a lost connection."""
    anne, client, console = await _on_duty(live, make_account)
    await engine.enqueue(TaskSpec("on-call", Channel.VOICE, "05"))
    await console.next("offer", task="on-call")
    assert (await console.request("accept", task="on-call"))["ok"]
    await console.close()
    token = await _csrf(client, "/benevole")
    assert (await client.post("/deconnexion", data={"csrf_token": token})).status_code == 303
    gone = await engine.volunteer(anne.public_id)
    assert gone.presence is Presence.LOGGED_OUT and gone.reason == SESSION_ENDED_REASON
    call = await engine.task("on-call")
    assert call.state is TaskState.ASSIGNED and call.volunteer == anne.public_id
    back = await Console.open(live, await login(live.base, anne.email, PASSWORD))
    assert back.welcome["restored"] is False and back.welcome["presence"] == "logged_out"
    assert [t["task"] for t in back.welcome["tasks"]] == ["on-call"]
    await back.close()
    await client.aclose()


async def test_a_disabled_account_gets_no_more_offers(
    live, make_account, engine: Engine, db_session
):
    """A coordinator disables Anne while she is available. Her console is closed (4403) and
    she is logged out in the engine first: the next caller does not ring on a console that no
    longer exists."""
    anne, client, console = await _on_duty(live, make_account)
    await accounts.disable(db_session, anne.id)
    await console.ws.send('{"type": "colleagues", "ref": "x"}')
    ended = await console.next("error", wait_s=30)
    assert ended["error"]["code"] == "session_ended"
    async with asyncio.timeout(30):
        await console._reader
    assert console.ws.close_code == 4403
    await engine.enqueue(TaskSpec("after-disable", Channel.VOICE, "05"))
    task = await engine.task("after-disable")
    assert task.volunteer != anne.public_id, "a caller was offered to a disabled account"
    gone = await engine.volunteer(anne.public_id)
    assert gone.presence is Presence.LOGGED_OUT and gone.reason == SESSION_ENDED_REASON
    await client.aclose()


async def test_a_session_ended_while_holding_a_chat_hands_it_on_after_the_grace(
    live, make_account, engine: Engine, db_session, clock, vol
):
    """Anne holds a chat when her account is disabled. Logging her out does not drop the
    caller: the chat stays hers for the grace a lost console gets (a volunteer whose session
    ended may log in again), then goes back to the queue at its place, to Bruno."""
    anne, client, console = await _on_duty(live, make_account)
    await engine.enqueue(TaskSpec("held-chat", Channel.CHAT, "05"))
    await console.next("offer", task="held-chat")
    assert (await console.request("accept", task="held-chat"))["ok"]
    bruno, bruno_client, con_b = await _on_duty(live, make_account, "Bruno")
    await accounts.disable(db_session, anne.id)
    await console.ws.send('{"type": "colleagues", "ref": "x"}')
    assert (await console.next("error", wait_s=30))["error"]["code"] == "session_ended"
    gone = await engine.volunteer(anne.public_id)
    assert gone.presence is Presence.LOGGED_OUT and gone.reason == SESSION_ENDED_REASON
    chat = await engine.task("held-chat")
    assert chat.state is TaskState.ASSIGNED and chat.volunteer == anne.public_id
    clock.advance(vol.settings.lost_chat_grace_s + 1)
    await con_b.ping()  # Bruno's console is alive on the new clock (no reaping)
    await ConsoleHub(vol).hand_back_chats()  # this hub or the app's own: either hands it on
    await con_b.next("offer", task="held-chat")
    await con_b.close()
    await client.aclose()
    await bruno_client.aclose()


# A weak line: reconnecting ----------------------------------------------------------------------


async def _holding_two_chats(live, make_account, engine: Engine):
    anne, client, console = await _on_duty(live, make_account)
    for tid in ("cap-1", "cap-2"):
        await engine.enqueue(TaskSpec(tid, Channel.CHAT, "05"))
        await console.next("offer", task=tid)
        assert (await console.request("accept", task=tid))["ok"]
    return anne, client, console


def _profile_form(token: str, chat_capacity: int) -> dict[str, object]:
    return {
        "csrf_token": token,
        "name": "Anne",
        "postal_code": "05000",
        "skills": ["famille", "emploi", "sante"],
        "languages": ["fr"],
        "structure": "",
        "phone_mode": "browser",
        "phone": "",
        "chat_capacity": str(chat_capacity),
    }


async def test_the_profile_refuses_a_chat_capacity_below_the_chats_held(
    live, make_account, engine: Engine, db_session
):
    """Anne holds two chats and opens her profile (the console page closes its socket): a
    chat capacity of 1 is refused in French (the engine could not apply it), 2 is saved."""
    anne, client, console = await _holding_two_chats(live, make_account, engine)
    await console.close()
    token = await _csrf(client, "/benevole/profil")
    refused = await client.post("/benevole/profil", data=_profile_form(token, 1))
    assert refused.status_code == 400
    assert "Vous avez 2 discussions en cours" in refused.text
    await db_session.refresh(anne)
    assert anne.chat_capacity == 2
    saved = await client.post("/benevole/profil", data=_profile_form(token, 2))
    assert saved.status_code == 303, saved.text
    await client.aclose()


async def test_back_after_lowering_chat_capacity_while_holding_chats(
    live, make_account, engine: Engine, db_session
):
    """Anne holds two chats when a chat capacity of 1 reaches her account anyway (saved just
    as she accepted the second). Back on the console, the engine refuses that profile
    (over_capacity): the console still opens with her two chats and says why, she can still
    change her state, and the new capacity applies once she holds only one chat."""
    anne, client, console = await _holding_two_chats(live, make_account, engine)
    await console.close()
    anne.chat_capacity = 1
    await db_session.commit()
    try:
        back = await asyncio.wait_for(Console.open(live, client), 10)
    except (TimeoutError, websockets.ConnectionClosed, websockets.InvalidStatus) as exc:
        raise AssertionError(f"the console cannot come back: {exc!r}") from exc
    assert sorted(t["task"] for t in back.welcome["tasks"]) == ["cap-1", "cap-2"]
    notice = await back.next("error")
    assert notice["error"] == {"code": "over_capacity", "message": CAPACITY_NOT_APPLIED}
    assert (await back.request("presence", state="paused", reason="Pause café"))["ok"]
    assert (await engine.volunteer(anne.public_id)).chat_capacity == 2  # the old one, for now
    assert (await back.request("complete", task="cap-1"))["ok"]
    done = await back.request("wrapup", task="cap-1", topic="famille", outcome="resolved")
    assert done["ok"], done
    assert (await back.request("presence", state="available"))["ok"]
    assert (await engine.volunteer(anne.public_id)).chat_capacity == 1
    await back.close()
    await client.aclose()


# Malformed frames ---------------------------------------------------------------------------


async def test_a_binary_frame_is_answered_not_fatal(live, make_account):
    """PROTOCOL: frames are UTF-8 JSON; anything else should get « Message illisible. » like a
    non-JSON text frame. A binary frame makes receive_text() raise KeyError('text') outside
    the loop's try: the ASGI app crashes and the socket closes (1011)."""
    anne, client, console = await _on_duty(live, make_account)
    await console.ws.send(b'{"type": "colleagues"}')
    try:
        reply = await console.next("result", wait_s=5)
    except TimeoutError:
        reply = None
    alive = await _still_answers(console)
    assert reply is not None and reply["ok"] is False, f"no answer (close {console.ws.close_code})"
    assert alive
    await console.close()
    await client.aclose()


async def test_a_deeply_nested_frame_is_answered_not_fatal(live, make_account):
    """12 kB of nested brackets (under the 16 kB limit): json.loads raises RecursionError,
    which is not a ValueError, so it escapes the loop and the socket closes (1011)."""
    anne, client, console = await _on_duty(live, make_account)
    await console.ws.send("[" * 6000 + "]" * 6000)
    try:
        reply = await console.next("result", wait_s=5)
    except TimeoutError:
        reply = None
    alive = await _still_answers(console)
    assert reply is not None and reply["error"]["message"] == "Message illisible.", (
        f"no answer (close {console.ws.close_code})"
    )
    assert alive
    await console.close()
    await client.aclose()
