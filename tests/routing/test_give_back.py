"""Giving back an accepted task (the voice bridge, when the volunteer's phone leg fails after the
console accept: busy, no answer, voicemail, failed): the task keeps its place and goes to the
next volunteer; for the volunteer it counts as a missed offer.

Defaults (RoutingConfig): 3 misses in a row pause a volunteer, 5 s without offers after a miss.
"""

from __future__ import annotations

from routing.models import NO_ANSWER_REASON, Presence, TaskState

MAX_NO_ANSWER, DELAY_S, RING_S = 3, 5, 20


async def test_the_volunteer_whose_phone_failed_is_not_offered_the_task_again(
    desk, engine, clock
) -> None:
    await desk.busy("v1", "05", "t1")
    await engine.give_back("v1", "t1")
    # v1 is the only free volunteer: the caller waits rather than ring a failed phone again.
    assert (await desk.state("t1"), await desk.offered_to("t1")) == (TaskState.WAITING, None)
    vol = await engine.volunteer("v1")
    assert (vol.misses, vol.load_voice, vol.presence) == (1, 0, Presence.AVAILABLE)
    await desk.wait(DELAY_S - 1)
    assert await desk.offered_to("t1") is None
    await desk.wait(1)  # the no-answer delay is over: v1 may try again
    assert await desk.offered_to("t1") == "v1"


async def test_the_given_back_task_keeps_its_place_and_goes_to_the_next_volunteer(
    desk, engine, clock
) -> None:
    await desk.volunteer("v1", "05")
    first = await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    await desk.busy("v2", "05")
    clock.advance(5)
    await desk.call("t2", "05")  # newer than t1
    await desk.call("t3", "05")
    await engine.give_back("v1", "t1")
    assert [await engine.position(t) for t in ("t1", "t2", "t3")] == [1, 2, 3]
    assert (await desk.task("t1")).place_ms == first.place_ms
    await engine.complete("v2", "busy-v2")
    await engine.finish_wrapup("v2", "busy-v2")
    assert await desk.offered_to("t1") == "v2"  # first in line, and not to v1
    assert "task_transferred" in await desk.event_types("t1", "v1")


async def test_a_given_back_task_is_offered_at_once_to_another_free_volunteer(
    desk, engine, clock
) -> None:
    await desk.busy("v1", "05", "t1")
    clock.advance(1)
    await desk.volunteer("v2", "05")  # idle for less time than v1 will be
    await engine.give_back("v1", "t1")
    assert await desk.offered_to("t1") == "v2"


async def test_give_backs_in_a_row_pause_the_volunteer_without_answer(desk, engine, clock) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    for miss in range(1, MAX_NO_ANSWER + 1):
        assert await desk.offered_to("t1") == "v1"
        await engine.accept("v1", "t1")  # the console accept does not clear the failed legs
        await engine.give_back("v1", "t1")
        vol = await engine.volunteer("v1")
        assert vol.misses == miss
        if miss < MAX_NO_ANSWER:
            assert vol.presence is Presence.AVAILABLE
            await desk.wait(DELAY_S)
    assert (vol.presence, vol.reason) == (Presence.PAUSED, NO_ANSWER_REASON)
    assert await desk.state("t1") is TaskState.WAITING
    await desk.wait(600)
    assert await desk.offered_to("t1") is None  # paused: never offered again by itself


async def test_console_misses_and_failed_legs_add_up(desk, engine, clock) -> None:
    """Two unanswered offers, then an accept whose phone fails: three misses in a row."""
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    for _ in range(MAX_NO_ANSWER - 1):
        await desk.wait(RING_S)
        await desk.wait(DELAY_S)
    assert (await engine.volunteer("v1")).misses == MAX_NO_ANSWER - 1
    assert await desk.offered_to("t1") == "v1"
    await engine.accept("v1", "t1")
    assert (await engine.volunteer("v1")).misses == 0  # as far as the console knows
    await engine.give_back("v1", "t1")
    vol = await engine.volunteer("v1")
    assert (vol.misses, vol.presence, vol.reason) == (
        MAX_NO_ANSWER,
        Presence.PAUSED,
        NO_ANSWER_REASON,
    )


async def test_a_conversation_after_a_failed_leg_starts_the_count_again(
    desk, engine, clock
) -> None:
    await desk.busy("v1", "05", "t1")
    await engine.give_back("v1", "t1")
    await desk.wait(DELAY_S)
    await engine.accept("v1", "t1")  # this time the phone answers
    await engine.complete("v1", "t1")
    await engine.finish_wrapup("v1", "t1")
    await desk.call("t2", "05")
    await engine.accept("v1", "t2")
    await engine.give_back("v1", "t2")
    assert (await engine.volunteer("v1")).misses == 1


async def test_a_returning_callers_volunteer_whose_phone_fails_lets_anyone_take_it(
    desk, engine, clock
) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05", caller_key="k1")
    await engine.accept("v1", "t1")
    await engine.complete("v1", "t1")
    await engine.finish_wrapup("v1", "t1")
    await desk.volunteer("v2", "05")
    await desk.call("t2", "05", caller_key="k1")  # v1's turn, as the returning caller's
    assert await desk.offered_to("t2") == "v1"
    await engine.accept("v1", "t2")
    await engine.give_back("v1", "t2")
    assert await desk.offered_to("t2") == "v2"  # not kept for v1's turn


async def test_a_failed_leg_after_going_off_duty_blocks_without_pausing(
    desk, engine, clock
) -> None:
    await desk.busy("v1", "05", "t1")
    await engine.set_presence("v1", Presence.PAUSED, "pause café")
    await engine.give_back("v1", "t1")
    vol = await engine.volunteer("v1")
    assert (vol.presence, vol.reason, vol.misses) == (Presence.PAUSED, "pause café", 1)
    assert await desk.state("t1") is TaskState.WAITING


async def test_a_chat_volunteer_with_room_left_is_not_offered_the_given_back_chat(
    desk, engine, clock
) -> None:
    """Found by the model test: room for a second chat kept the volunteer in the free sets."""
    await desk.volunteer("v1", "05", chat_capacity=2)
    await desk.chat("c1", "05")
    await engine.accept("v1", "c1")
    await engine.give_back("v1", "c1")
    assert (await desk.state("c1"), await desk.offered_to("c1")) == (TaskState.WAITING, None)
    await desk.wait(DELAY_S)
    assert await desk.offered_to("c1") == "v1"


async def test_a_failed_leg_that_pauses_a_chat_volunteer_withdraws_their_ringing_offer(
    desk, engine, clock
) -> None:
    """Found by the race: paused with a second chat still ringing, the volunteer could take it."""
    await desk.volunteer("v1", "05", chat_capacity=2)
    for n in range(MAX_NO_ANSWER - 1):  # two unanswered offers: one miss short of the pause
        await desk.chat(f"miss{n}", "05")
        await desk.wait(RING_S)
        await engine.cancel(f"miss{n}")
        await desk.wait(DELAY_S)
    await desk.chat("c1", "05")
    await engine.accept("v1", "c1")
    await desk.chat("c2", "05")
    assert await desk.offered_to("c2") == "v1"  # room for a second chat: it rings
    await engine.give_back("v1", "c1")  # the failed leg is the third miss in a row
    vol = await engine.volunteer("v1")
    assert (vol.presence, vol.reason) == (Presence.PAUSED, NO_ANSWER_REASON)
    assert (await desk.state("c2"), await desk.offered_to("c2")) == (TaskState.WAITING, None)
    assert await engine.position("c2") == 2  # behind c1, which came first


async def test_a_caller_who_leaves_while_waiting_again_resumes_their_place(
    desk, engine, clock
) -> None:
    # Their volunteer's line was lost; waiting again, they hang up and call back at once.
    await desk.volunteer("v1", "05")
    first = await desk.call("t1", "05", caller_key="ck-a")
    await engine.accept("v1", "t1")
    await desk.call("t2", "05", caller_key="ck-b")  # newer than t1, waiting
    await engine.give_back("v1", "t1")
    await engine.cancel("t1")
    clock.advance(30)
    back = await desk.call("t1-again", "05", caller_key="ck-a")
    assert back.resumed and back.place_ms == first.place_ms
    assert [await engine.position(t) for t in ("t1-again", "t2")] == [1, 2]
