"""Engine.staffing: who is logged in and who is working, counted at one instant."""

from __future__ import annotations

from routing.invariants import check_invariants
from routing.models import Presence, Staffing


async def a_mixed_line(desk, engine) -> None:
    await desk.volunteer("free", "05", chat_capacity=3)  # available
    await desk.volunteer("paused", "13", available=False)
    await engine.set_presence("paused", Presence.PAUSED, "café")  # nothing in hand
    await desk.volunteer("chatting", "75", chat_capacity=2)
    await desk.chat("c1", "75")
    assert await desk.offered_to("c1") == "chatting"
    await engine.accept("chatting", "c1")
    await engine.set_presence("chatting", Presence.PAUSED, "pause")  # still holds the chat
    await desk.volunteer("gone", "38")
    await engine.set_presence("gone", Presence.LOGGED_OUT)


async def test_staffing_counts_presence_and_chats_in_hand(desk, engine) -> None:
    assert await engine.staffing() == Staffing(0, 0, 0)
    await a_mixed_line(desk, engine)
    assert await engine.staffing() == Staffing(logged_in=3, working=2, chat_lanes=5)
    assert await check_invariants(engine) == []


async def test_counts_kept_by_every_change_of_presence_load_and_capacity(desk, engine) -> None:
    assert await engine.staffing() == Staffing(0, 0, 0)  # counted once: kept from now on
    await a_mixed_line(desk, engine)
    assert await engine.staffing() == Staffing(logged_in=3, working=2, chat_lanes=5)
    await engine.complete("chatting", "c1")
    await engine.finish_wrapup("chatting", "c1")  # paused, nothing in hand any more
    assert await engine.staffing() == Staffing(logged_in=3, working=1, chat_lanes=3)
    await desk.volunteer("free", "05", chat_capacity=1)  # a new chat capacity
    assert await engine.staffing() == Staffing(logged_in=3, working=1, chat_lanes=1)
    await engine.set_presence("gone", Presence.AVAILABLE)
    await engine.set_presence("paused", Presence.LOGGED_OUT)
    assert await engine.staffing() == Staffing(logged_in=3, working=2, chat_lanes=3)
    assert await check_invariants(engine) == []


async def test_counts_from_before_they_were_kept_are_made_once(desk, engine) -> None:
    """A line started before the engine kept the counts: the first reading counts everyone."""
    await a_mixed_line(desk, engine)
    await engine.redis.delete(engine.keys.staff)
    assert await engine.staffing() == Staffing(logged_in=3, working=2, chat_lanes=5)
    assert await engine.redis.exists(engine.keys.staff)
    await engine.set_presence("gone", Presence.AVAILABLE)
    assert await engine.staffing() == Staffing(logged_in=4, working=3, chat_lanes=7)


async def test_the_invariants_see_counts_that_drifted(desk, engine) -> None:
    await engine.staffing()
    await desk.volunteer("free", "05")
    await engine.redis.hincrby(engine.keys.staff, "working", 1)
    assert any("staffing counts" in p for p in await check_invariants(engine))
    await engine.redis.hincrby(engine.keys.staff, "working", -1)  # as it was, for teardown's check
