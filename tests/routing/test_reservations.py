"""Reservations and the task life cycle: offer, accept/decline/no answer, wrap-up, capacity,
cancel, abandon-resume, callbacks, close, transfer, returning callers, priority.

Defaults (RoutingConfig): ring 20 s, 3 misses, 5 s delays after a decline or a miss,
wrap-up 120 s, resume window 300 s, known volunteer 20 s, named transfer 60 s.
"""

from __future__ import annotations

import pytest

from routing.config import RoutingConfig
from routing.errors import TaskNotAssigned, TaskNotWaiting, TransferTargetUnavailable
from routing.models import (
    NO_ANSWER_REASON,
    Channel,
    Outcome,
    Presence,
    TaskState,
    VolunteerProfile,
    VolunteerState,
)

RING_S, DELAY_S, WRAPUP_S, RESUME_S = 20, 5, 120, 300
KNOWN_S, TRANSFER_S, SKILL_RELAX_S = 20, 60, 60
EPSILON = 0.001


async def volunteer_state(engine, vid: str) -> VolunteerState:
    vol = await engine.volunteer(vid)
    held = [t for t in await engine.live_tasks() if t.volunteer == vid]
    wrapup_only = bool(held) and all(t.state is TaskState.WRAPUP for t in held)
    return vol.state(wrapup_only=wrapup_only)


# Offer, accept, decline, no answer ----------------------------------------------------


async def test_accept_assigns_the_task(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    task = await desk.call("t1", "05")
    assert (task.state, task.volunteer) == (TaskState.RESERVED, "v1")
    assert await volunteer_state(engine, "v1") is VolunteerState.RESERVED

    await engine.accept("v1", "t1")
    task = await desk.task("t1")
    assert (task.state, task.volunteer) == (TaskState.ASSIGNED, "v1")
    vol = await engine.volunteer("v1")
    assert (vol.load_voice, vol.load_chat, vol.reserved) == (1, 0, "")
    assert await volunteer_state(engine, "v1") is VolunteerState.BUSY
    await engine.accept("v1", "t1")  # a double click changes nothing
    assert (await engine.volunteer("v1")).load_voice == 1


async def test_decline_offers_the_task_to_the_next_volunteer(desk, engine, clock) -> None:
    await desk.volunteer("v1", "05")
    clock.advance(1)
    await desk.volunteer("v2", "05")
    await desk.call("t1", "05")
    assert await desk.offered_to("t1") == "v1"
    await engine.decline("v1", "t1")
    assert await desk.offered_to("t1") == "v2"
    # v1 gets no offer for a moment (reject delay), then is offered what waits.
    await desk.call("t2", "05")
    assert await desk.offered_to("t2") is None
    await desk.wait(DELAY_S)
    assert await desk.offered_to("t2") == "v1"


async def test_a_declined_task_keeps_its_place(desk, engine, clock) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    clock.advance(1)
    await desk.call("t2", "05")
    await desk.call("t3", "05")
    await engine.decline("v1", "t1")
    assert await desk.state("t1") is TaskState.WAITING
    assert [await engine.position(t) for t in ("t1", "t2", "t3")] == [1, 2, 3]
    await desk.wait(DELAY_S)
    assert await desk.offered_to("t1") == "v1"  # first in line again, not t2


async def test_no_answer_moves_the_offer_on(desk, engine, clock) -> None:
    await desk.volunteer("v1", "05")
    clock.advance(1)
    await desk.volunteer("v2", "05")
    await desk.call("t1", "05")
    await desk.wait(RING_S - EPSILON)
    assert await desk.offered_to("t1") == "v1"
    await desk.wait(EPSILON)
    assert await desk.offered_to("t1") == "v2"
    vol = await engine.volunteer("v1")
    assert (vol.presence, vol.misses, vol.reserved) == (Presence.AVAILABLE, 1, "")
    assert "offer_timeout" in await desk.event_types("t1", "v1")


async def test_missed_offers_in_a_row_pause_the_volunteer(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    for miss in (1, 2):
        await desk.wait(RING_S)
        assert (await engine.volunteer("v1")).misses == miss
        assert await desk.offered_to("t1") is None  # no offer during the no-answer delay
        await desk.wait(DELAY_S)
        assert await desk.offered_to("t1") == "v1"
    await desk.wait(RING_S)
    vol = await engine.volunteer("v1")
    assert (vol.presence, vol.reason) == (Presence.PAUSED, NO_ANSWER_REASON)
    assert NO_ANSWER_REASON == "sans réponse"
    assert await desk.state("t1") is TaskState.WAITING  # nothing lost
    assert await engine.position("t1") == 1
    await desk.wait(DELAY_S)
    assert await desk.offered_to("t1") is None  # a paused volunteer is not offered anything
    # Coming back clears the count and brings the offer at once.
    await engine.set_presence("v1", Presence.AVAILABLE)
    assert (await engine.volunteer("v1")).misses == 0
    assert await desk.offered_to("t1") == "v1"


async def test_an_answered_offer_resets_the_miss_count(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    for _ in range(2):
        await desk.wait(RING_S)
        await desk.wait(DELAY_S)
    await engine.accept("v1", "t1")
    assert (await engine.volunteer("v1")).misses == 0


# Wrap-up and capacity ------------------------------------------------------------------


async def test_complete_then_wrapup_then_available(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    await desk.wait(180)
    await engine.complete("v1", "t1")
    task = await desk.task("t1")
    assert (task.state, task.outcome) == (TaskState.WRAPUP, Outcome.COMPLETED)
    assert await volunteer_state(engine, "v1") is VolunteerState.WRAPUP

    await desk.call("t2", "05")  # no offer while the wrap-up is being filled in
    assert await desk.offered_to("t2") is None
    await engine.finish_wrapup("v1", "t1")
    task = await desk.task("t1")
    assert (task.state, task.outcome, task.reason) == (TaskState.ENDED, Outcome.COMPLETED, "")
    assert "t1" not in {t.id for t in await engine.live_tasks()}
    assert await desk.offered_to("t2") == "v1"


async def test_wrapup_ends_by_itself_after_its_time(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    await engine.complete("v1", "t1")
    await desk.wait(WRAPUP_S - EPSILON)
    assert await desk.state("t1") is TaskState.WRAPUP
    await desk.wait(EPSILON)
    task = await desk.task("t1")
    assert (task.state, task.outcome, task.reason) == (
        TaskState.ENDED,
        Outcome.COMPLETED,
        "wrapup_timeout",
    )
    vol = await engine.volunteer("v1")
    assert (vol.load_voice, await volunteer_state(engine, "v1")) == (0, VolunteerState.AVAILABLE)


async def test_chats_run_concurrently_up_to_capacity(desk, engine) -> None:
    await desk.volunteer("v1", "05", chat_capacity=3)
    for i in range(1, 5):
        await desk.chat(f"c{i}", "05")
    for i in range(1, 4):
        assert await desk.offered_to(f"c{i}") == "v1"
        await engine.accept("v1", f"c{i}")
    assert (await engine.volunteer("v1")).load_chat == 3
    assert await desk.offered_to("c4") is None  # at capacity

    await desk.call("call", "05")  # a call needs full attention: not while chatting
    assert await desk.offered_to("call") is None
    await engine.complete("v1", "c1")
    await engine.finish_wrapup("v1", "c1")
    assert await desk.offered_to("c4") == "v1"
    await engine.accept("v1", "c4")
    for tid in ("c2", "c3", "c4"):
        await engine.complete("v1", tid)
        assert await desk.offered_to("call") is None
        await engine.finish_wrapup("v1", tid)
    assert await desk.offered_to("call") == "v1"


async def test_a_call_takes_full_attention(desk, engine) -> None:
    await desk.busy("v1", "05")
    await desk.chat("c1", "05")
    assert await desk.offered_to("c1") is None
    await engine.complete("v1", "busy-v1")
    await engine.finish_wrapup("v1", "busy-v1")
    assert await desk.offered_to("c1") == "v1"


async def test_a_chat_capacity_of_one_means_one_chat(desk, engine) -> None:
    await desk.volunteer("v1", "05", chat_capacity=1)
    await desk.chat("c1", "05")
    await desk.chat("c2", "05")
    await engine.accept("v1", "c1")
    assert await desk.offered_to("c2") is None


# Cancel (the caller left) ---------------------------------------------------------------


async def test_cancel_while_waiting_abandons(desk, engine) -> None:
    await desk.busy("v1", "05")
    await desk.call("t1", "05")
    await engine.cancel("t1")
    task = await desk.task("t1")
    assert (task.state, task.outcome, task.reason) == (
        TaskState.ENDED,
        Outcome.ABANDONED,
        "caller_left",
    )
    assert await engine.waiting_count("voice") == 0
    assert await engine.position("t1") is None


async def test_cancel_while_ringing_frees_the_volunteer_for_the_next(desk, engine, clock) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    clock.advance(1)
    await desk.call("t2", "05")
    await engine.cancel("t1")
    assert (await desk.task("t1")).outcome is Outcome.ABANDONED
    assert await desk.offered_to("t2") == "v1"
    await engine.accept("v1", "t2")  # the volunteer suffers no delay nor miss
    assert (await engine.volunteer("v1")).misses == 0


async def test_cancel_while_talking_ends_the_conversation(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    await engine.cancel("t1")
    task = await desk.task("t1")
    assert (task.state, task.outcome) == (TaskState.WRAPUP, Outcome.COMPLETED)
    assert (await engine.volunteer("v1")).load_voice == 1  # until the wrap-up is done
    await engine.finish_wrapup("v1", "t1")
    assert (await engine.volunteer("v1")).load_voice == 0


async def test_cancel_is_idempotent_in_wrapup_and_after_the_end(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    await engine.complete("v1", "t1")
    before = await engine.snapshot()
    await engine.cancel("t1")  # Twilio's status callback arriving after the volunteer's click
    after = await engine.snapshot()
    assert {**before, "now": 0} == {**after, "now": 0}
    await engine.finish_wrapup("v1", "t1")
    await engine.cancel("t1")
    await engine.cancel("t1")
    task = await desk.task("t1")
    assert (task.state, task.outcome) == (TaskState.ENDED, Outcome.COMPLETED)

    await desk.call("t2", "05")
    await engine.cancel("t2")
    await engine.cancel("t2")  # a retried callback
    counts = await engine.counts("2026-11-23")
    assert counts.abandoned == 1


# Abandon-resume, callbacks, close --------------------------------------------------------


async def test_a_caller_back_within_the_window_resumes_their_place(desk, engine, clock) -> None:
    await desk.busy("v1", "05")
    first = await desk.call("t1", "05", caller_key="ck-a")
    clock.advance(10)
    await desk.call("t2", "05", caller_key="ck-b")
    clock.advance(10)
    await engine.cancel("t1")  # hung up
    clock.advance(40)

    back = await desk.call("t1-again", "05", caller_key="ck-a")
    assert back.resumed
    assert back.place_ms == first.place_ms
    assert await engine.position("t1-again") == 1
    assert await engine.position("t2") == 2
    assert back.level == 2  # widening kept its progress: 60 s since the original place

    await engine.cancel("t1-again")  # a place is resumed once per hang-up, then again
    again = await desk.call("t1-third", "05", caller_key="ck-a")
    assert again.resumed and again.place_ms == first.place_ms


async def test_after_the_window_a_returning_caller_gets_a_new_place(desk, engine, clock) -> None:
    await desk.busy("v1", "05")
    await desk.call("t1", "05", caller_key="ck-a")
    clock.advance(10)
    await desk.call("t2", "05", caller_key="ck-b")
    await engine.cancel("t1")
    clock.advance(RESUME_S + 1)
    back = await desk.call("t1-again", "05", caller_key="ck-a")
    assert not back.resumed
    assert back.place_ms == clock.now_ms()
    assert [await engine.position(t) for t in ("t2", "t1-again")] == [1, 2]


async def test_a_caller_passed_on_for_a_skill_gets_it_back_with_their_place(
    desk, engine, clock
) -> None:
    await desk.volunteer("v1", "05", skills=["famille"])
    first = await desk.call("t1", "05", skill="famille", caller_key="ck-a")
    await engine.accept("v1", "t1")
    await desk.busy("v2", "05", "t2")
    await engine.transfer("v1", "t1", skill="impots")  # nobody free has it: waits again
    clock.advance(30)
    await engine.cancel("t1")  # the line dropped while waiting for the specialist
    clock.advance(SKILL_RELAX_S + 30)  # long enough for the first skill to have relaxed

    # Calling back, they give the menu's answer again (their phone kept it, or they did).
    await desk.volunteer("v3", "05", skills=["famille"])
    back = await desk.call("t1-again", "05", skill="famille", caller_key="ck-a")
    assert (back.resumed, back.place_ms, back.skill) == (True, first.place_ms, "impots")
    assert back.state is TaskState.WAITING  # v3, free and local, lacks the skill
    assert (await desk.task("t1-again")).skill == "impots"
    await engine.cancel("t1-again")  # cut off again: the skill goes on with the place
    third = await desk.call("t1-third", "05", skill="famille", caller_key="ck-a")
    assert (third.resumed, third.place_ms, third.skill) == (True, first.place_ms, "impots")
    await desk.volunteer("v4", "13", skills=["impots"])  # same région: 13 and 05 are PACA
    assert await desk.offered_to("t1-third") == "v4"


async def test_a_caller_passed_on_does_not_come_back_to_who_passed_them_on(
    desk, engine, clock
) -> None:
    """Even one who has the skill (they judged a colleague better placed): not as the
    returning caller's volunteer, nor once the skill relaxes."""
    await desk.volunteer("v1", "05", skills=["impots"])
    await desk.call("t1", "05", caller_key="ck-a")
    await engine.accept("v1", "t1")
    await desk.busy("v2", "13", "t2")  # the colleague, on a call for now
    await engine.transfer("v1", "t1", skill="impots")
    await engine.cancel("t1")
    back = await desk.call("t1-again", "05", caller_key="ck-a")
    assert (back.resumed, back.skill, back.preferred, back.state) == (
        True,
        "impots",
        "",
        TaskState.WAITING,
    )
    await desk.wait(SKILL_RELAX_S + 1)
    assert await desk.state("t1-again") is TaskState.WAITING  # v1, idle and local, still passes
    await engine.complete("v2", "t2")
    await engine.finish_wrapup("v2", "t2")
    assert await desk.offered_to("t1-again") == "v2"


async def test_a_caller_not_passed_on_calls_back_with_their_new_answers(
    desk, engine, clock
) -> None:
    await desk.busy("v1", "05")
    await desk.call("t1", "05", skill="famille", caller_key="ck-a")
    await engine.cancel("t1")
    back = await desk.call("t1-again", "05", skill="emploi", caller_key="ck-a")
    assert (back.resumed, back.skill) == (True, "emploi")


async def test_a_resume_window_of_zero_turns_resuming_off(desk, engine, clock) -> None:
    await engine.configure(RoutingConfig(resume_window_s=0))
    await desk.busy("v1", "05")
    await desk.call("t1", "05", caller_key="ck-a")
    clock.advance(10)
    await engine.cancel("t1")  # refused by Redis before (SET ... PX 0)
    assert (await desk.task("t1")).outcome is Outcome.ABANDONED
    back = await desk.call("t1-again", "05", caller_key="ck-a")
    assert not back.resumed and back.place_ms == clock.now_ms()


async def test_resume_is_only_for_the_same_caller(desk, engine, clock) -> None:
    await desk.busy("v1", "05")
    await desk.call("t1", "05", caller_key="ck-a")
    await engine.cancel("t1")
    clock.advance(30)
    other = await desk.call("t2", "05", caller_key="ck-b")
    anonymous = await desk.call("t3", "05")
    assert not other.resumed and not anonymous.resumed


async def test_a_caller_who_was_answered_does_not_resume(desk, engine, clock) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05", caller_key="ck-a")
    await engine.accept("v1", "t1")
    await engine.cancel("t1")  # hung up during the conversation
    clock.advance(30)
    back = await desk.call("t1-again", "05", caller_key="ck-a")
    assert not back.resumed


async def test_to_callback_keeps_the_place(desk, engine, clock) -> None:
    await desk.busy("v1", "05")
    first = await desk.call("t1", "05", caller_key="ck-a")
    clock.advance(10)
    await desk.call("t2", "05")
    clock.advance(10)
    callback = await engine.to_callback("t1", "cb1")
    assert (callback.channel, callback.state) == (Channel.CALLBACK, TaskState.WAITING)
    assert (callback.place_ms, callback.caller_key) == (first.place_ms, "ck-a")
    assert await engine.position("cb1") == 1
    old = await desk.task("t1")
    assert (old.state, old.outcome, old.reason) == (TaskState.ENDED, Outcome.CALLBACK, "cb1")

    await engine.complete("v1", "busy-v1")
    await engine.finish_wrapup("v1", "busy-v1")
    assert await desk.offered_to("cb1") == "v1"  # before t2, which came after t1


async def test_a_callback_keeps_the_calls_requirements(desk, engine, clock) -> None:
    await desk.volunteer("v1", "05")  # lacks the skill
    await desk.call("t1", "05", skill="impots")
    clock.advance(20)
    callback = await engine.to_callback("t1", "cb1")
    assert (callback.skill, callback.state) == ("impots", TaskState.WAITING)
    await desk.wait(40)  # relaxes 60 s after the call came in, not after the callback
    assert await desk.offered_to("cb1") == "v1"


async def test_to_callback_while_ringing_frees_the_volunteer(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    callback = await engine.to_callback("t1", "cb1")
    # The callback replaces the call at its place: v1 is offered it at once.
    assert (callback.state, callback.volunteer) == (TaskState.RESERVED, "v1")


async def test_close_with_a_reason(desk, engine) -> None:
    await desk.busy("v1", "05")
    await desk.call("t1", "05")
    await engine.close("t1", "line_closed")
    task = await desk.task("t1")
    assert (task.state, task.outcome, task.reason) == (
        TaskState.ENDED,
        Outcome.CLOSED,
        "line_closed",
    )
    assert await engine.waiting_count("voice") == 0
    with pytest.raises(TaskNotWaiting):
        await engine.close("busy-v1", "line_closed")  # someone is talking to them


async def test_close_while_ringing_frees_the_volunteer(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await engine.close("t1", "no_volunteer")
    vol = await engine.volunteer("v1")
    assert (vol.reserved, await volunteer_state(engine, "v1")) == ("", VolunteerState.AVAILABLE)


# Transfer -----------------------------------------------------------------------------------


async def test_transfer_to_a_skill(desk, engine, clock) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    await desk.busy("v2", "05")  # lacks the skill: not offered it when they free up
    await desk.volunteer("v3", "05", skills=["retraite"])

    await engine.transfer("v1", "t1", skill="retraite")
    task = await desk.task("t1")
    assert (task.state, task.volunteer, task.skill) == (TaskState.RESERVED, "v3", "retraite")
    assert (await engine.volunteer("v1")).load_voice == 0  # capacity back at once
    assert "task_transferred" in await desk.event_types("t1", "v1")


async def test_transfer_to_a_skill_nobody_has_waits_without_the_one_who_passed_it_on(
    desk, engine
) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    await engine.transfer("v1", "t1", skill="retraite")
    assert await desk.state("t1") is TaskState.WAITING
    assert (await engine.volunteer("v1")).reserved == ""


async def test_a_skill_transfer_is_never_offered_back_to_who_passed_it_on(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    await engine.transfer("v1", "t1", skill="retraite")
    await desk.wait(SKILL_RELAX_S + 1)  # the skill relaxes; v1, idle and local, still passes
    assert await desk.state("t1") is TaskState.WAITING
    callback = await engine.to_callback("t1", "cb1")  # the callback inherits the exclusion
    assert callback.state is TaskState.WAITING
    await desk.volunteer("v2", "75")  # anyone else may take it once the rings allow
    await desk.wait(90)
    assert await desk.offered_to("cb1") == "v2"


async def test_a_chat_transferred_to_a_skill_does_not_come_back_at_once(desk, engine) -> None:
    await desk.volunteer("v1", "05", chat_capacity=2)  # room for the chat again at once
    await desk.chat("c1", "05")
    await engine.accept("v1", "c1")
    await engine.transfer("v1", "c1", skill="retraite")
    await desk.wait(SKILL_RELAX_S + 1)
    assert (await desk.offered_to("c1"), await desk.state("c1")) == (None, TaskState.WAITING)
    await desk.volunteer("v3", "05", skills=["retraite"])
    assert await desk.offered_to("c1") == "v3"


async def test_transfer_to_a_named_colleague(desk, engine, clock) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    await desk.volunteer("v2", "05")  # idle longest
    clock.advance(5)
    await desk.volunteer("v3", "75")  # far away, but named
    await engine.transfer("v1", "t1", to_volunteer="v3")
    assert await desk.offered_to("t1") == "v3"


async def test_transfer_to_a_busy_colleague_waits_for_them_then_anyone(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    await desk.busy("v3", "05")
    await desk.volunteer("v2", "05")
    await engine.transfer("v1", "t1", to_volunteer="v3")
    assert await desk.offered_to("t1") is None
    await desk.wait(TRANSFER_S - EPSILON)
    assert await desk.offered_to("t1") is None
    await desk.wait(EPSILON)
    assert await desk.offered_to("t1") in {"v1", "v2"}


async def test_transfer_to_a_colleague_who_is_not_logged_in_is_refused(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await desk.volunteer("v2", "05", available=False)
    await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    before = await engine.snapshot()
    for target in ("v2", "ghost", "v1"):
        with pytest.raises(TransferTargetUnavailable) as err:
            await engine.transfer("v1", "t1", to_volunteer=target)
        assert "collègue" in err.value.message
    assert {**await engine.snapshot(), "now": 0} == {**before, "now": 0}


# Returning callers and priority ------------------------------------------------------------


async def help_caller(desk, engine, vid: str, tid: str, caller_key: str) -> None:
    """vid answers caller_key's call tid and finishes it."""
    await desk.call(tid, "05", caller_key=caller_key)
    assert await desk.offered_to(tid) == vid
    await engine.accept(vid, tid)
    await engine.complete(vid, tid)
    await engine.finish_wrapup(vid, tid)


async def test_a_returning_caller_goes_to_their_volunteer_first(desk, engine, clock) -> None:
    await desk.volunteer("v1", "05")
    await help_caller(desk, engine, "v1", "t1", "ck-a")
    assert (await engine.recent_caller("ck-a"))["vol"] == "v1"
    clock.advance(5)
    await desk.volunteer("v2", "05")  # now v1 is idle longest...
    clock.advance(3600)
    await desk.call("x", "05")  # ...so v1 takes this one, leaving v2 idle longest
    await engine.accept("v1", "x")
    await engine.complete("v1", "x")
    await engine.finish_wrapup("v1", "x")
    back = await desk.call("t2", "05", caller_key="ck-a")
    assert (back.preferred, back.volunteer) == ("v1", "v1")


async def test_a_busy_known_volunteer_gets_a_short_turn_then_the_rings(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await help_caller(desk, engine, "v1", "t1", "ck-a")
    await desk.call("x", "05")
    await engine.accept("v1", "x")  # v1 busy
    await desk.volunteer("v2", "05")

    await desk.call("t2", "05", caller_key="ck-a")
    await desk.wait(KNOWN_S - EPSILON)
    assert await desk.offered_to("t2") is None
    await desk.wait(EPSILON)
    assert await desk.offered_to("t2") == "v2"


async def test_a_known_volunteer_who_is_off_duty_is_skipped(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await help_caller(desk, engine, "v1", "t1", "ck-a")
    await engine.set_presence("v1", Presence.LOGGED_OUT)
    await desk.volunteer("v2", "05")
    back = await desk.call("t2", "05", caller_key="ck-a")
    assert (back.preferred, back.volunteer) == ("", "v2")


async def test_a_known_volunteer_leaving_ends_their_turn_at_once(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await help_caller(desk, engine, "v1", "t1", "ck-a")
    await desk.call("x", "05")
    await engine.accept("v1", "x")
    await desk.volunteer("v2", "05")
    await desk.call("t2", "05", caller_key="ck-a")
    assert await desk.offered_to("t2") is None
    # The preference applies only while that volunteer is on duty (DESIGN.md).
    await engine.set_presence("v1", Presence.LOGGED_OUT)
    assert await desk.offered_to("t2") == "v2"


async def test_set_priority_reorders_the_queue(desk, engine, clock) -> None:
    await desk.busy("v1", "05")
    for tid in ("t1", "t2", "t3"):
        await desk.call(tid, "05")
        clock.advance(1)
    await engine.set_priority("t3", 9)
    assert [await engine.position(t) for t in ("t3", "t1", "t2")] == [1, 2, 3]
    assert (await desk.task("t3")).priority == 9
    await engine.set_priority("t3", 0)  # back down: its place is its arrival again
    assert [await engine.position(t) for t in ("t1", "t2", "t3")] == [1, 2, 3]
    await engine.set_priority("t2", 4)
    await engine.complete("v1", "busy-v1")
    await engine.finish_wrapup("v1", "busy-v1")
    assert await desk.offered_to("t2") == "v1"
    assert "task_priority" in await desk.event_types("t2")


async def test_a_caller_helped_long_ago_has_no_known_volunteer(desk, engine, clock) -> None:
    await desk.volunteer("v1", "05")
    await help_caller(desk, engine, "v1", "t1", "ck-a")
    clock.advance(7 * 24 * 3600 - 1)  # recent_caller_s: a week
    assert (await engine.recent_caller("ck-a"))["vol"] == "v1"
    clock.advance(2)
    assert await engine.recent_caller("ck-a") == {}
    back = await desk.call("t2", "05", caller_key="ck-a")
    assert back.preferred == ""


# More around offers, presence and places -----------------------------------------------------


async def test_pausing_while_ringing_passes_the_offer_on_without_a_miss(
    desk, engine, clock
) -> None:
    await desk.volunteer("v1", "05")
    clock.advance(1)
    await desk.volunteer("v2", "05")
    await desk.call("t1", "05")
    await engine.set_presence("v1", Presence.PAUSED, reason="pause café")
    assert await desk.offered_to("t1") == "v2"
    vol = await engine.volunteer("v1")
    assert (vol.presence, vol.reason, vol.misses, vol.reserved) == (
        Presence.PAUSED,
        "pause café",
        0,
        "",
    )


async def test_pausing_during_wrapup_means_no_offer_after_it(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    await engine.complete("v1", "t1")
    await engine.set_presence("v1", Presence.PAUSED)
    await desk.call("t2", "05")
    await engine.finish_wrapup("v1", "t1")
    assert await desk.offered_to("t2") is None
    assert await volunteer_state(engine, "v1") is VolunteerState.PAUSED


async def test_a_message_left_earlier_keeps_its_time(desk, engine, clock) -> None:
    """An offline request enters the queue at the time it was left (TaskSpec.place_ms)."""
    await desk.busy("v1", "05")
    left_at = clock.now_ms()
    clock.advance(600)
    await desk.call("now", "05")
    from routing.models import TaskSpec

    early = await engine.enqueue(TaskSpec("msg", Channel.CALLBACK, "05", place_ms=left_at))
    assert early.place_ms == left_at
    assert early.level == 3  # ten minutes old: every threshold is behind it
    assert [await engine.position(t) for t in ("msg", "now")] == [1, 2]


async def test_positions_are_counted_per_capacity_class(desk, engine, clock) -> None:
    await desk.busy("v1", "05")
    await desk.call("call1", "05")
    await desk.chat("chat1", "05")
    clock.advance(1)
    await engine.to_callback("call1", "cb1")  # a callback waits with the calls, at its place
    await desk.call("call2", "05")
    await desk.chat("chat2", "05")
    assert [await engine.position(t) for t in ("cb1", "call2")] == [1, 2]
    assert [await engine.position(t) for t in ("chat1", "chat2")] == [1, 2]
    assert (await engine.waiting_count("voice"), await engine.waiting_count("chat")) == (2, 2)
    assert await engine.position("busy-v1") is None  # not waiting


@pytest.mark.parametrize("how", ["decline", "no answer"])
async def test_a_known_volunteer_who_passes_lets_the_rings_apply_at_once(
    desk, engine, clock, how
) -> None:
    """Decline or no answer → the next volunteer (DESIGN.md), also when the task preferred them."""
    await desk.volunteer("v1", "05")
    await help_caller(desk, engine, "v1", "t1", "ck-a")
    await desk.volunteer("v2", "05")  # idle less long than v1: only chosen if v1 passes
    back = await desk.call("t2", "05", caller_key="ck-a")
    assert back.volunteer == "v1"
    if how == "decline":
        await engine.decline("v1", "t2")
    else:
        await desk.wait(RING_S)
    assert await desk.offered_to("t2") == "v2"


async def test_a_named_colleague_who_declines_lets_anyone_take_it(desk, engine, clock) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    await desk.volunteer("v2", "05")
    await desk.volunteer("v3", "05")
    await engine.transfer("v1", "t1", to_volunteer="v3")
    await engine.decline("v3", "t1")
    assert await desk.offered_to("t1") in {"v1", "v2"}


async def test_a_transferred_task_keeps_its_place(desk, engine, clock) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    clock.advance(30)
    await desk.busy("v2", "05", tid="t2")  # arrived after t1
    await desk.call("t3", "05")
    await desk.call("t4", "05")
    await engine.transfer("v1", "t1", skill="papiers")  # nobody has it: t1 waits
    assert await desk.offered_to("t3") == "v1"  # t1 needs a skill v1 lacks
    assert [await engine.position(t) for t in ("t1", "t4")] == [1, 2]


async def test_timers_of_a_finished_task_do_nothing(desk, engine) -> None:
    await desk.busy("v1", "05")
    await desk.call("t1", "05")  # widening timers pending
    await desk.call("t2", "05")
    await engine.cancel("t1")
    await engine.close("t2", "line_closed")
    before = await engine.snapshot()
    assert await desk.wait(600) == 0  # nothing was left due for them
    after = await engine.snapshot()
    assert {**before, "now": 0} == {**after, "now": 0}


async def test_a_timer_that_can_never_run_does_not_stop_the_others(desk, engine) -> None:
    """A timer of an id holding '|' (written before ids were checked) is refused by the
    engine; it is dropped, and the ring timeout due after it still runs."""
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await engine.redis.zadd(engine.keys.timers, {"u:v|old": 1})
    assert await desk.wait(RING_S + 1) >= 2
    assert await engine.redis.zscore(engine.keys.timers, "u:v|old") is None
    assert (await engine.volunteer("v1")).misses == 1  # the ring timeout ran
    assert await desk.wait(1) == 0


async def test_transferring_a_chat_with_room_for_more_keeps_the_books_straight(
    desk, engine
) -> None:
    """The chat is not offered back to its own volunteer, even though they have room and the
    skill; their load and free sets must agree (the desk's teardown checks the invariants)."""
    await desk.volunteer("v1", "05", skills=["sante"], chat_capacity=2)
    await desk.chat("c1", "05")
    await engine.accept("v1", "c1")
    await engine.transfer("v1", "c1", skill="sante")
    vol = await engine.volunteer("v1")
    assert (vol.reserved, vol.load_chat) == ("", 0)
    assert await desk.state("c1") is TaskState.WAITING
    await desk.chat("c2", "05")  # a new chat is theirs to take
    assert await desk.offered_to("c2") == "v1"
    assert await desk.state("c1") is TaskState.WAITING


async def test_giving_back_an_accepted_task_puts_it_back_at_its_place(desk, engine, clock) -> None:
    """The voice bridge's way out when an accepted volunteer's phone cannot be reached."""
    await desk.volunteer("v1", "05")
    first = await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    await desk.busy("v2", "05")
    clock.advance(5)
    await desk.call("t2", "05")  # newer: waits behind t1 once t1 is given back
    with pytest.raises(TaskNotAssigned):
        await engine.give_back("v2", "t1")
    await engine.give_back("v1", "t1")
    task = await desk.task("t1")
    assert (task.place_ms, await engine.position("t1")) == (first.place_ms, 1)
    # v1's phone just failed: not rung again before the no-answer delay (test_give_back.py).
    assert await desk.offered_to("t2") is None
    await desk.wait(DELAY_S)
    assert await desk.offered_to("t1") == "v1"  # then offered before t2
    assert "task_transferred" in await desk.event_types("t1", "v1")


async def test_a_script_with_an_older_clock_cannot_strand_an_unblocked_volunteer(
    desk, engine, clock
) -> None:
    """Another process may compute its 'now' just before a volunteer's delay ends and run
    its script just after the unblock timer did: the volunteer must not be left out of the
    free sets with no timer to bring them back (seen once in the race test under load)."""
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await engine.decline("v1", "t1")  # the only volunteer: t1 waits, v1 blocked for 5 s
    await desk.wait(DELAY_S)  # the unblock timer runs: t1 rings for v1 again
    await engine.cancel("t1")
    vol = await engine.volunteer("v1")
    assert vol.blocked_until_ms <= clock.now_ms() and not vol.reserved
    clock.advance(-0.002)  # a script whose 'now' was taken 2 ms earlier, in another process
    await engine.log_in(VolunteerProfile("v1", "05", name="v1"))  # refreshes v1's free sets
    clock.advance(0.002)
    await engine.tick()
    await desk.call("t2", "05")
    assert await desk.offered_to("t2") == "v1"
