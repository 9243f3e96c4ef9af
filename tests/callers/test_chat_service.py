"""The chat's rules without a browser: validation, tokens, rooms, transcripts, offline form."""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from sqlmodel import select

from callers import callbacks
from callers.chat.room import ChatError
from callers.chat.service import ChatService, unverified_task_of
from callers.models import CallbackRequest, ChatMessage, fetch_all
from callers.schedule import PARIS
from routing.models import Channel, Outcome, Presence, TaskState
from tests.callers.helpers import volunteer_on_duty

XSS = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


@pytest.fixture
async def chat(ctx, bridge) -> ChatService:
    service = ChatService(ctx)
    bridge.hooks.append(service.on_event)
    return service


async def test_start_validates_topic_postal_code_and_name(chat, engine):
    await volunteer_on_duty(engine, "anne", "05", Presence.PAUSED)
    with pytest.raises(ChatError, match="code postal n'est pas reconnu"):
        await chat.start("famille", "5000", "")
    with pytest.raises(ChatError, match="code postal n'est pas reconnu"):
        await chat.start("famille", "99999", "")
    with pytest.raises(ChatError, match="sujet"):
        await chat.start("astrologie", "05000", "")
    with pytest.raises(ChatError, match="prénom est trop long"):
        await chat.start("famille", "05000", "x" * 41)
    assert await engine.live_tasks() == []
    started = await chat.start("impots", "20200", "Lucie")
    task = await engine.require_task(started.task_id)
    assert (task.channel, task.departement, task.skill) == (Channel.CHAT, "2B", "impots")
    assert chat.task_of(started.token) == started.task_id
    assert chat.task_of(started.token + "x") is None
    assert chat.task_of("forged.token.value") is None
    # A chat client (the simulator) can read which task its token names, not forge one.
    assert unverified_task_of(started.token) == started.task_id
    assert unverified_task_of("not a token") is None


async def test_closed_line_refuses_chats(chat, engine, clock):
    await volunteer_on_duty(engine, "anne", "05")
    clock.set(datetime(2026, 11, 22, 11, 0, tzinfo=PARIS))  # a Sunday
    with pytest.raises(ChatError, match="laisser un message"):
        await chat.start("famille", "05000", "")
    assert await engine.live_tasks() == []


async def test_status_position_and_wait_then_talking(chat, engine, clock, bridge):
    await volunteer_on_duty(engine, "anne", "05", chat_capacity=1)
    first = await chat.start("autre", "05000", "")  # offered to Anne at once
    clock.advance(1)
    await engine.accept("anne", first.task_id)
    second = await chat.start("autre", "05100", "")
    status = await chat.status(second.task_id)
    assert status == {"state": "waiting", "position": 1, "wait_minutes": 8}
    assert (await chat.status(first.task_id)) == {"state": "talking", "volunteer": "Anne"}
    await bridge.drain()
    texts = [m["text"] for m in await chat.room.history(first.task_id)]
    assert texts == ["Anne a rejoint la discussion."]


async def test_messages_are_plain_text_with_a_length_limit(chat, engine):
    await volunteer_on_duty(engine, "anne", "05", Presence.PAUSED)
    started = await chat.start("sante", "05000", "Lucie")
    stored = await chat.caller_says(started.task_id, XSS)
    assert stored["text"] == XSS and stored["author"] == "caller" and stored["name"] == "Lucie"
    with pytest.raises(ChatError) as error:
        await chat.caller_says(started.task_id, "a" * 2001)
    assert "trop long" in error.value.message and "2000" in error.value.message
    with pytest.raises(ChatError, match="vide"):
        await chat.caller_says(started.task_id, "   ")
    assert len(await chat.room.history(started.task_id)) == 1


async def test_volunteer_side_uses_the_same_room(chat, engine):
    await volunteer_on_duty(engine, "anne", "05")
    started = await chat.start("autre", "05000", "")
    await engine.accept("anne", started.task_id)
    await chat.caller_says(started.task_id, "Bonjour")
    await chat.room.send(started.task_id, "anne", "Anne", "Bonjour, je vous écoute.")
    follower = chat.room.follow(started.task_id, "0-0")
    batch = await anext(follower)
    await follower.aclose()
    assert [(m["author"], m["text"]) for m in batch] == [
        ("caller", "Bonjour"), ("volunteer", "Bonjour, je vous écoute.")]


async def test_a_message_sent_again_with_its_id_is_posted_once(chat, engine, clock):
    """A weak line: the console sends a message again when its answer was lost."""
    await volunteer_on_duty(engine, "anne", "05")
    started = await chat.start("autre", "05000", "")
    await engine.accept("anne", started.task_id)
    tid, room = started.task_id, chat.room
    # Sent five times at once (the same id, as a console retrying), then once more later.
    sent = await asyncio.gather(
        *(room.post(tid, "volunteer", "Bonjour.", message_id="m-1") for _ in range(5))
    )
    clock.advance(5)
    again = await room.post(tid, "volunteer", "Bonjour.", message_id="m-1")
    assert {m["id"] for m in [*sent, again]} == {sent[0]["id"]}
    assert again == sent[0]  # the message as posted, not as sent again
    await room.post(tid, "caller", "Bonjour.", message_id="m-1")  # another sender's m-1
    await room.send(tid, "anne", "Anne", "Bonjour.", message_id="m-2")  # a new one, same words
    await room.send(tid, "anne", "Anne", "Bonjour.")  # no id: posted each time
    assert [m["text"] for m in await room.history(tid)] == ["Bonjour."] * 4
    with pytest.raises(ChatError, match="pas pu être lu"):
        await room.post(tid, "volunteer", "Bonjour.", message_id="m 3; DEL")
    assert len(await room.history(tid)) == 4
    # Both keys expire together: the ids are not kept after the conversation.
    assert 0 < await engine.redis.ttl(room.keys.room_sent(tid)) <= await engine.redis.ttl(
        room.keys.room(tid)
    )


async def test_a_follower_outlives_a_silence_longer_than_redis_read_timeout(chat, engine):
    """redis-py gives up a read after 5 s (its default socket timeout): a follower that
    blocked as long lost the race to the server's empty answer and died, so a volunteer's
    console saw nothing more of a chat after five quiet seconds (found by the simulator)."""
    await volunteer_on_duty(engine, "anne", "05")
    started = await chat.start("autre", "05000", "")
    await engine.accept("anne", started.task_id)
    follower = chat.room.follow(started.task_id, "0-0")
    later = asyncio.ensure_future(anext(follower))
    await asyncio.sleep(6.5)
    await chat.caller_says(started.task_id, "Vous êtes toujours là ?")
    try:
        batch = await asyncio.wait_for(later, 5)
    finally:
        await follower.aclose()
    assert [m["text"] for m in batch] == ["Vous êtes toujours là ?"]


async def test_end_by_caller_and_transcript_saved_once(chat, engine, ctx, bridge):
    await volunteer_on_duty(engine, "anne", "05", skills=frozenset({"sante"}))
    started = await chat.start("sante", "05000", "")
    await engine.accept("anne", started.task_id)
    await bridge.drain()
    await chat.caller_says(started.task_id, "Merci beaucoup")
    await chat.end(started.task_id)
    await chat.end(started.task_id)  # twice: harmless
    await bridge.drain()
    task = await engine.require_task(started.task_id)
    assert (task.state, task.outcome) == (TaskState.WRAPUP, Outcome.COMPLETED)
    async with ctx.sessions() as session:
        rows = await fetch_all(session, select(ChatMessage)
                               .where(ChatMessage.task_id == started.task_id)
                               .order_by(ChatMessage.stream_id))
    assert [(r.author, r.text) for r in rows] == [
        ("system", "Anne a rejoint la discussion."),
        ("caller", "Merci beaucoup"),
        ("system", "La personne a terminé la discussion."),
    ]
    with pytest.raises(ChatError, match="terminée"):
        await chat.caller_says(started.task_id, "encore ?")


async def test_offline_message_becomes_a_callback_when_the_line_opens(chat, engine, ctx, clock):
    clock.set(datetime(2026, 11, 21, 20, 0, tzinfo=PARIS))  # Saturday evening
    with pytest.raises(ChatError, match="téléphone ou une adresse e-mail"):
        await chat.leave_message({"topic": "famille", "postal_code": "73000", "message": "Aide"})
    with pytest.raises(ChatError, match="numéro de téléphone n'est pas valable"):
        await chat.leave_message({"topic": "famille", "postal_code": "73000",
                                  "phone": "12", "message": "Aide"})
    with pytest.raises(ChatError, match="trop long"):
        await chat.leave_message({"topic": "famille", "postal_code": "73000",
                                  "email": "a@b.fr", "message": "x" * 2001})
    request_id = await chat.leave_message({
        "topic": "famille", "postal_code": "73000", "email": "jeanne@example.fr",
        "message": "Je n'arrive pas à déclarer mes revenus.", "preferred_time": "le matin",
        "first_name": "Jeanne",
    })
    async with ctx.sessions() as session:
        row = await session.get(CallbackRequest, request_id)
    assert row.state == "pending" and "jeanne" not in row.email_sealed
    assert await engine.live_tasks() == []
    clock.set(datetime(2026, 11, 23, 9, 0, tzinfo=PARIS))
    assert await callbacks.release_pending(ctx) == 1
    task = await engine.require_task(request_id)
    assert (task.channel, task.departement, task.skill) == (Channel.CALLBACK, "73", "famille")
    details = await callbacks.callback_details(ctx, request_id)
    assert (details.email, details.first_name, details.preferred_time) == (
        "jeanne@example.fr", "Jeanne", "le matin")
    assert details.message == "Je n'arrive pas à déclarer mes revenus."
