"""Bad input: a typed error with a French message, and nothing changed.

"Nothing changed" is checked on everything the engine keeps for a line: the atomic
snapshot (tasks, volunteers, queues, free sets, on-duty counts, timers, configuration),
the event stream and the live counters.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import pytest
from redis.exceptions import ResponseError

from routing.clock import buckets
from routing.errors import (
    InvalidChatCapacity,
    InvalidIdentifier,
    InvalidPresence,
    InvalidPriority,
    InvalidTaskId,
    NotInWrapUp,
    OfferExpired,
    OfferNotYours,
    OverCapacity,
    RoutingError,
    TaskAlreadyEnded,
    TaskExists,
    TaskNotAssigned,
    TaskNotWaiting,
    TransferWithoutTarget,
    UnknownChannel,
    UnknownDepartement,
    UnknownSkill,
    UnknownTask,
    UnknownVolunteer,
    VolunteerRequired,
)
from routing.models import Presence, TaskSpec, TaskState, VolunteerProfile

RING_S = 20


async def everything(engine) -> dict[str, Any]:
    snap = await engine.snapshot()
    del snap["now"]
    day, interval = buckets(engine.clock.now_ms())
    return {
        "snapshot": snap,
        "events": await engine.redis.xrange(engine.keys.events),
        "day": await engine.redis.hgetall(engine.keys.stats(day)),
        "interval": await engine.redis.hgetall(engine.keys.stats(interval)),
    }


async def refused(engine, error: type[RoutingError], action: Awaitable[Any]) -> RoutingError:
    """Run action, which must raise exactly `error`, and check that nothing changed."""
    before = await everything(engine)
    with pytest.raises(RoutingError) as caught:
        await action
    assert type(caught.value) is error
    assert caught.value.code == error.code
    assert caught.value.message == error.message != RoutingError.message
    assert await everything(engine) == before
    return caught.value


def french(message: str) -> bool:
    """Good enough to catch an English message slipping through: French words we use."""
    words = {"ce", "cette", "vous", "n'est", "n'existe", "déjà", "pas", "la", "le", "de"}
    return bool(words & set(message.lower().replace(":", " ").split()))


@pytest.mark.parametrize(
    "error",
    [
        UnknownDepartement,
        UnknownSkill,
        UnknownTask,
        UnknownVolunteer,
        TaskExists,
        OfferNotYours,
        OfferExpired,
        TaskNotAssigned,
        TaskAlreadyEnded,
        NotInWrapUp,
        OverCapacity,
        InvalidPresence,
        TaskNotWaiting,
        VolunteerRequired,
        TransferWithoutTarget,
        InvalidPriority,
        InvalidChatCapacity,
        UnknownChannel,
    ],
)
def test_every_error_speaks_french(error: type[RoutingError]) -> None:
    assert french(error.message), error.message
    assert error.message.endswith(".")


# Unknown things -------------------------------------------------------------------------


async def test_unknown_departement(desk, engine) -> None:
    err = await refused(engine, UnknownDepartement, desk.call("t1", "99"))
    assert err.detail == "99"
    await refused(engine, UnknownDepartement, desk.volunteer("v1", "20"))


async def test_unknown_skill_or_language(desk, engine) -> None:
    await refused(engine, UnknownSkill, desk.call("t1", "05", skill="cuisine"))
    await refused(engine, UnknownSkill, desk.call("t1", "05", language="klingon"))
    await refused(engine, UnknownSkill, desk.volunteer("v1", "05", skills=["impots", "jardin"]))
    await refused(engine, UnknownSkill, desk.volunteer("v1", "05", languages=["xx"]))
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    await refused(engine, UnknownSkill, engine.transfer("v1", "t1", skill="cuisine"))


async def test_unknown_task(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    for action in (
        engine.accept("v1", "nope"),
        engine.decline("v1", "nope"),
        engine.complete("v1", "nope"),
        engine.finish_wrapup("v1", "nope"),
        engine.transfer("v1", "nope", skill="impots"),
        engine.cancel("nope"),
        engine.close("nope", "line_closed"),
        engine.set_priority("nope", 3),
        engine.to_callback("nope", "cb"),
    ):
        await refused(engine, UnknownTask, action)


async def test_duplicate_task_ids(desk, engine) -> None:
    await desk.busy("v1", "05")
    await desk.call("t1", "05")
    await desk.call("t2", "05")
    await refused(engine, TaskExists, desk.call("t1", "13"))
    await refused(engine, TaskExists, desk.chat("busy-v1", "05"))
    await refused(engine, TaskExists, engine.to_callback("t1", "t2"))


async def test_task_ids_that_the_scripts_could_misread(desk, engine) -> None:
    await desk.busy("v1", "05")
    await desk.call("t1", "05", caller_key="ck-a")
    for bad in ("", "a|b", "|"):
        await refused(engine, InvalidTaskId, desk.call(bad, "05", caller_key="ck-b"))
        await refused(engine, InvalidTaskId, engine.to_callback("t1", bad))


async def test_identifiers_holding_the_separator_are_refused(desk, engine) -> None:
    """A transition's identifiers travel as one '|'-joined argument: a '|' inside one would be
    read as two fields (accept("v2", "t1|x") as v2 accepting t1), so the engine refuses it."""
    await desk.volunteer("v1", "05")
    await desk.volunteer("v2", "05")
    await desk.call("t1", "05")
    assert await desk.offered_to("t1") == "v1"
    err = await refused(engine, InvalidIdentifier, engine.accept("v1", "t1|x"))
    assert err.detail == "t1|x"
    await refused(engine, InvalidIdentifier, engine.accept("v1|t1", "t1"))
    await refused(engine, InvalidIdentifier, engine.decline("v1", "t1|"))
    await refused(engine, InvalidIdentifier, engine.cancel("t1|t1"))
    await refused(engine, InvalidIdentifier, engine.set_presence("v2|v1", Presence.PAUSED))
    await refused(engine, InvalidIdentifier, desk.call("t2", "05", caller_key="ck|5"))
    await refused(engine, InvalidIdentifier, desk.volunteer("v|3", "05"))
    await engine.accept("v1", "t1")
    await refused(engine, InvalidIdentifier, engine.transfer("v1", "t1", to_volunteer="v2|v1"))
    assert (await desk.task("t1")).volunteer == "v1"


async def test_free_text_may_hold_the_separator(desk, engine) -> None:
    """A name or a reason is free text: it travels on its own and is kept as written."""
    await engine.log_in(VolunteerProfile("v1", "05", frozenset(), frozenset(), name="Anne | Gap"))
    await engine.set_presence("v1", Presence.PAUSED, "pause | café")
    v = await engine.volunteer("v1")
    assert (v.name, v.presence, v.reason) == ("Anne | Gap", Presence.PAUSED, "pause | café")
    await desk.busy("v2", "05")
    await desk.call("t1", "05")
    await engine.close("t1", "ligne | fermée")
    assert (await desk.task("t1")).reason == "ligne | fermée"


async def test_a_script_refuses_another_number_of_fields(desk, engine) -> None:
    """Below the engine's check: a script sent more or fewer fields than it takes stops before
    it writes anything."""
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    before = await everything(engine)
    for fields in ("v1|t1|x", "v1", ""):
        packed = f"{engine.clock.now_ms()}|{buckets(engine.clock.now_ms())[1]}|{fields}"
        with pytest.raises(ResponseError, match="number of fields"):
            await engine.redis.evalsha(engine._scripts["accept"].sha, 1, engine.keys.cfg, packed)
    assert await everything(engine) == before
    await engine.accept("v1", "t1")


# Offers ---------------------------------------------------------------------------------


async def test_accepting_or_declining_someone_elses_offer(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await desk.volunteer("v2", "05")
    await desk.call("t1", "05")
    assert await desk.offered_to("t1") == "v1"
    await refused(engine, OfferNotYours, engine.accept("v2", "t1"))
    await refused(engine, OfferNotYours, engine.decline("v2", "t1"))
    await refused(engine, OfferNotYours, engine.accept("stranger", "t1"))


async def test_accepting_an_offer_whose_time_is_up(desk, engine, clock) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    clock.advance(RING_S + 0.001)
    # Ring time over but its timer not yet run: still too late to accept.
    await refused(engine, OfferExpired, engine.accept("v1", "t1"))
    await engine.tick()
    await refused(engine, OfferExpired, engine.accept("v1", "t1"))
    await refused(engine, OfferExpired, engine.decline("v1", "t1"))


async def test_accepting_an_offer_that_moved_to_someone_else(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await desk.volunteer("v2", "05")
    await desk.call("t1", "05")
    await engine.decline("v1", "t1")
    assert await desk.offered_to("t1") == "v2"
    await refused(engine, OfferNotYours, engine.accept("v1", "t1"))


async def test_accepting_a_task_that_ended(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await engine.cancel("t1")
    await refused(engine, TaskAlreadyEnded, engine.accept("v1", "t1"))
    await refused(engine, TaskAlreadyEnded, engine.decline("v1", "t1"))


# Completing and wrap-up -------------------------------------------------------------------


async def test_completing_twice(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    await engine.complete("v1", "t1")
    await refused(engine, TaskAlreadyEnded, engine.complete("v1", "t1"))
    await engine.finish_wrapup("v1", "t1")
    await refused(engine, TaskAlreadyEnded, engine.complete("v1", "t1"))


async def test_completing_what_you_do_not_hold(desk, engine) -> None:
    await desk.busy("v1", "05")
    await desk.volunteer("v2", "13", available=False)
    await desk.call("t1", "05")  # waiting
    await refused(engine, TaskNotAssigned, engine.complete("v2", "busy-v1"))
    await refused(engine, TaskNotAssigned, engine.complete("v1", "t1"))
    await refused(engine, TaskNotAssigned, engine.transfer("v2", "busy-v1", skill="impots"))


async def test_completing_an_offer_not_yet_accepted(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await refused(engine, TaskNotAssigned, engine.complete("v1", "t1"))


async def test_finishing_a_wrapup_that_is_not_yours(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await desk.volunteer("v2", "05")
    await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    await refused(engine, NotInWrapUp, engine.finish_wrapup("v1", "t1"))  # still talking
    await engine.complete("v1", "t1")
    await refused(engine, NotInWrapUp, engine.finish_wrapup("v2", "t1"))
    await engine.finish_wrapup("v1", "t1")
    await refused(engine, NotInWrapUp, engine.finish_wrapup("v1", "t1"))  # twice


async def test_finishing_a_wrapup_after_it_timed_out(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    await engine.complete("v1", "t1")
    await desk.wait(120)
    await refused(engine, NotInWrapUp, engine.finish_wrapup("v1", "t1"))


# Presence and capacity -------------------------------------------------------------------


async def test_presence_of_an_unknown_volunteer(engine) -> None:
    await refused(engine, UnknownVolunteer, engine.set_presence("ghost", Presence.AVAILABLE))


@pytest.mark.parametrize("nonsense", ["busy", "wrapup", "AVAILABLE", "", "disponible"])
async def test_presence_nonsense(desk, engine, nonsense) -> None:
    await desk.volunteer("v1", "05")
    await refused(engine, InvalidPresence, engine.set_presence("v1", nonsense))


async def test_lowering_chat_capacity_below_the_chats_in_hand(desk, engine) -> None:
    await desk.volunteer("v1", "05", chat_capacity=3)
    for tid in ("c1", "c2"):
        await desk.chat(tid, "05")
        await engine.accept("v1", tid)
    lower = VolunteerProfile("v1", "05", chat_capacity=1)
    await refused(engine, OverCapacity, engine.log_in(lower))
    await engine.log_in(VolunteerProfile("v1", "05", chat_capacity=2))  # two in hand: fine
    assert (await engine.volunteer("v1")).chat_capacity == 2


# Task operations at the wrong moment -----------------------------------------------------


async def test_queue_operations_on_a_task_being_handled(desk, engine) -> None:
    await desk.busy("v1", "05")
    await refused(engine, TaskNotWaiting, engine.to_callback("busy-v1", "cb1"))
    await refused(engine, TaskNotWaiting, engine.close("busy-v1", "line_closed"))
    await refused(engine, TaskNotWaiting, engine.set_priority("busy-v1", 5))
    await engine.complete("v1", "busy-v1")
    await refused(engine, TaskAlreadyEnded, engine.to_callback("busy-v1", "cb1"))
    await refused(engine, TaskAlreadyEnded, engine.close("busy-v1", "line_closed"))
    await refused(engine, TaskNotWaiting, engine.set_priority("busy-v1", 5))


async def test_out_of_range_values_are_refused_before_anything_runs(desk, engine) -> None:
    await desk.busy("v1", "05")
    await desk.call("t1", "05")  # waiting
    for priority in (10, -1, "3", 2.5, True):
        await refused(engine, InvalidPriority, desk.call("t2", "05", priority=priority))
        await refused(engine, InvalidPriority, engine.set_priority("t1", priority))
    for capacity in (0, -2, "2", 1.5):
        profile = VolunteerProfile("v2", "05", chat_capacity=capacity)  # type: ignore[arg-type]
        await refused(engine, InvalidChatCapacity, engine.log_in(profile))
    for channel in ("fax", "", None, "VOICE"):
        spec = TaskSpec("t2", channel, "05")  # type: ignore[arg-type]
        await refused(engine, UnknownChannel, engine.enqueue(spec))


async def test_finishing_a_wrapup_needs_a_volunteer(desk, engine) -> None:
    """An empty id is the wrap-up timer's; through the API it must not end the wrap-up."""
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    await engine.complete("v1", "t1")
    err = await refused(engine, VolunteerRequired, engine.finish_wrapup("", "t1"))
    assert err.detail == "t1"
    await refused(engine, VolunteerRequired, engine.finish_wrapup("", "nope"))
    await engine.finish_wrapup("v1", "t1")  # the volunteer's own submit still works
    assert (await desk.task("t1")).reason == ""


async def test_finishing_a_wrapup_with_an_empty_id_is_refused_by_the_script_too(
    desk, engine
) -> None:
    """Below the Python check, the script itself only lets the timer end a wrap-up unnamed."""
    await desk.volunteer("v1", "05")
    await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    await engine.complete("v1", "t1")
    await refused(engine, VolunteerRequired, engine._run("finish_wrapup", "", "t1", ""))


async def test_a_transfer_needs_a_skill_or_a_colleague(desk, engine) -> None:
    await desk.volunteer("v1", "05")
    await desk.volunteer("v2", "05")
    await desk.call("t1", "05")
    await engine.accept("v1", "t1")
    await refused(engine, TransferWithoutTarget, engine.transfer("v1", "t1"))
    await refused(engine, TransferWithoutTarget, engine._run("transfer", "v1", "t1", "", ""))
    assert (await desk.task("t1")).state is TaskState.ASSIGNED


async def test_lowering_chat_capacity_counts_the_chat_ringing(desk, engine) -> None:
    await desk.volunteer("v1", "05", chat_capacity=2)
    await desk.chat("c1", "05")
    await engine.accept("v1", "c1")
    await desk.chat("c2", "05")
    assert await desk.offered_to("c2") == "v1"
    lower = VolunteerProfile("v1", "05", chat_capacity=1)
    await refused(engine, OverCapacity, engine.log_in(lower))
