"""Engine.staffing: who is logged in and who is working, counted at one instant."""

from __future__ import annotations

from routing.models import Presence, Staffing


async def test_staffing_counts_presence_and_chats_in_hand(desk, engine) -> None:
    assert await engine.staffing() == Staffing(0, 0, 0)
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
    assert await engine.staffing() == Staffing(logged_in=3, working=2, chat_lanes=5)
