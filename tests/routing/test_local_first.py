"""A freed volunteer's choice of task: the closest ring first, within a priority, until a task
has waited local_first_max_wait (then strictly the longest waiting); 0 turns it off.

The lines here open every ring at once (widening 0/0/0, RoutingConfig's defaults since the
policy study of 2026-11-30), so that only the choice of task decides who gets what. 05 and 13
are in PACA, 38 shares the Massif alpin group with 05, 75 is in Île-de-France.
"""

from __future__ import annotations

import pytest

from routing.config import RoutingConfig

CAP_S = 60


async def all_rings_open(
    engine, local_first_s: float = CAP_S, *, leave_to_closer: bool = False
) -> None:
    await engine.configure(
        RoutingConfig(
            widen_group_s=0,
            widen_region_s=0,
            widen_national_s=0,
            local_first_max_wait_s=local_first_s,
            leave_to_closer=leave_to_closer,
        )
    )


async def free(desk, engine, vid: str, tid: str) -> str | None:
    """vid ends the task in hand (accept if ringing, talk, wrap up): what rings for them next."""
    task = await desk.task(tid)
    if task.state.value == "reserved":
        await engine.accept(vid, tid)
    await engine.complete(vid, tid)
    await engine.finish_wrapup(vid, tid)
    return (await engine.volunteer(vid)).reserved or None


async def test_a_freed_volunteer_takes_the_closest_ring_first(desk, engine) -> None:
    await all_rings_open(engine)
    await desk.busy("v05", "05")
    for tid, dept in (("t75", "75"), ("t13", "13"), ("t38", "38"), ("t05", "05")):
        await desk.call(tid, dept)
        await desk.wait(5)  # each newer than the last: oldest first would go 75, 13, 38, 05
    assert {t.level for t in await engine.live_tasks() if t.id != "busy-v05"} == {3}
    order, held = [], "busy-v05"
    while (held := await free(desk, engine, "v05", held)) is not None:
        order.append(held)
    assert order == ["t05", "t38", "t13", "t75"]  # département, group, région, national


@pytest.mark.parametrize(("free_at_s", "expected"), [(CAP_S - 0.001, "t05"), (CAP_S, "t75")])
async def test_a_task_that_waited_the_cap_goes_first(desk, engine, free_at_s, expected) -> None:
    await all_rings_open(engine)
    await desk.busy("v05", "05")
    await desk.call("t75", "75")  # waits from 0 s
    await desk.wait(30)
    await desk.call("t05", "05")
    await desk.wait(free_at_s - 30)
    assert await free(desk, engine, "v05", "busy-v05") == expected


async def test_the_cap_counts_from_the_place_a_callback_keeps(desk, engine) -> None:
    await all_rings_open(engine)
    await desk.busy("v05", "05")
    await desk.call("t75", "75")
    await desk.wait(40)
    await desk.call("t05", "05")
    await desk.wait(10)
    await engine.to_callback("t75", "cb75")  # created at 50 s, in the queue since 0 s
    await desk.wait(CAP_S - 50)
    assert await free(desk, engine, "v05", "busy-v05") == "cb75"


async def test_priority_wins_over_closeness(desk, engine) -> None:
    await all_rings_open(engine)
    await desk.busy("v05", "05")
    await desk.call("t05", "05")
    await desk.call("t75-urgent", "75", priority=5)  # newer and far, but urgent
    await desk.call("t13-urgent", "13", priority=5)
    assert await free(desk, engine, "v05", "busy-v05") == "t13-urgent"  # closest of priority 5
    assert await free(desk, engine, "v05", "t13-urgent") == "t75-urgent"
    assert await free(desk, engine, "v05", "t75-urgent") == "t05"


async def test_a_long_wait_of_lower_priority_does_not_pass_a_higher_one(desk, engine) -> None:
    await all_rings_open(engine)
    await desk.busy("v05", "05")
    await desk.call("t75", "75")  # priority 0, will have waited past the cap
    await desk.wait(CAP_S + 10)
    await desk.call("t13-urgent", "13", priority=5)
    await desk.call("t05-urgent", "05", priority=5)
    assert await free(desk, engine, "v05", "busy-v05") == "t05-urgent"


async def test_zero_turns_local_first_off(desk, engine) -> None:
    await all_rings_open(engine, local_first_s=0)
    await desk.busy("v05", "05")
    await desk.call("t75", "75")
    await desk.wait(5)
    await desk.call("t05", "05")
    assert await free(desk, engine, "v05", "busy-v05") == "t75"  # strictly the longest waiting


async def test_the_known_volunteers_caller_comes_first(desk, engine) -> None:
    """A returning caller waiting for their volunteer's turn is closer to them than any ring."""
    await all_rings_open(engine)
    await desk.volunteer("v05", "05")
    await desk.call("t1", "75", caller_key="ck-a")
    assert await free(desk, engine, "v05", "t1") is None  # v05 has helped ck-a
    await desk.call("hold", "05")
    await engine.accept("v05", "hold")
    await desk.call("t05", "05")
    await desk.call("t2", "75", caller_key="ck-a")  # back while v05 talks: v05's turn
    assert (await desk.task("t2")).preferred == "v05"
    assert await free(desk, engine, "v05", "hold") == "t2"


async def test_the_choice_is_made_when_the_volunteer_goes_available(desk, engine) -> None:
    await all_rings_open(engine)
    await desk.volunteer("v05", "05", available=False)
    await desk.volunteer("v13", "13", available=False)
    await desk.call("t75", "75")
    await desk.wait(5)
    await desk.call("t05", "05")
    await desk.wait(5)
    await desk.call("t13", "13")
    await desk.volunteer("v13", "13")  # back from a pause: 13's own caller first
    assert await desk.offered_to("t13") == "v13"
    await desk.volunteer("v05", "05")
    assert await desk.offered_to("t05") == "v05"


# leave_to_closer: a task whose département (or group, or région) has a volunteer on duty is
# left to them by a farther volunteer who has something else to take. 29 (Bretagne) has
# nobody on duty in any of these tests.


async def t05_then_t29(desk) -> None:
    """A caller from 05, then 5 s later one from 29: the oldest is the 05 one."""
    await desk.call("t05", "05")
    await desk.wait(5)
    await desk.call("t29", "29")


async def test_a_farther_volunteer_leaves_a_task_to_its_local_volunteer(desk, engine) -> None:
    await all_rings_open(engine, leave_to_closer=True)
    await desk.busy("v05", "05")
    await desk.busy("v75", "75")
    await t05_then_t29(desk)
    assert await free(desk, engine, "v75", "busy-v75") == "t29"  # t05 is older, but v05 is on duty
    assert await free(desk, engine, "v05", "busy-v05") == "t05"


async def test_a_task_left_to_a_closer_volunteer_is_taken_rather_than_idle(desk, engine) -> None:
    await all_rings_open(engine, leave_to_closer=True)
    await desk.busy("v05", "05")
    await desk.busy("v75", "75")
    await desk.call("t05", "05")
    assert await free(desk, engine, "v75", "busy-v75") == "t05"  # nothing else waits


async def test_a_région_colleague_on_duty_counts_as_closer(desk, engine) -> None:
    await all_rings_open(engine, leave_to_closer=True)
    await desk.busy("v13", "13")  # PACA, like 05
    await desk.busy("v75", "75")
    await t05_then_t29(desk)
    assert await free(desk, engine, "v75", "busy-v75") == "t29"


@pytest.mark.parametrize(("free_at_s", "expected"), [(CAP_S - 0.001, "t29"), (CAP_S, "t05")])
async def test_a_task_is_left_to_a_closer_volunteer_until_the_cap(
    desk, engine, free_at_s, expected
) -> None:
    await all_rings_open(engine, leave_to_closer=True)
    await desk.busy("v05", "05")
    await desk.busy("v75", "75")
    await t05_then_t29(desk)
    await desk.wait(free_at_s - 5)
    assert await free(desk, engine, "v75", "busy-v75") == expected


async def test_a_paused_local_volunteer_is_not_waited_for(desk, engine) -> None:
    await all_rings_open(engine, leave_to_closer=True)
    await desk.volunteer("v05", "05", available=False)  # logged in, not on duty
    await desk.busy("v75", "75")
    await t05_then_t29(desk)
    assert await free(desk, engine, "v75", "busy-v75") == "t05"  # oldest first, as without


async def test_a_task_declined_once_is_no_longer_left_to_anyone(desk, engine) -> None:
    await all_rings_open(engine, leave_to_closer=True)
    await desk.busy("v75", "75")
    await desk.volunteer("v05", "05")
    await desk.call("t05", "05")
    await engine.decline("v05", "t05")  # v05 stays on duty, blocked for the reject delay
    await desk.wait(1)
    await desk.call("t29", "29")
    assert await free(desk, engine, "v75", "busy-v75") == "t05"


async def test_a_task_needing_a_skill_is_not_left_to_anyone(desk, engine) -> None:
    """The on-duty counts do not say whether the closer volunteer has the skill."""
    await all_rings_open(engine, leave_to_closer=True)
    await desk.busy("v05", "05")
    await desk.volunteer("v75", "75", skills={"impots"})
    await desk.call("busy-v75", "75")
    await engine.accept("v75", "busy-v75")
    await desk.call("t05", "05", skill="impots")
    await desk.wait(5)
    await desk.call("t29", "29")
    assert await free(desk, engine, "v75", "busy-v75") == "t05"


async def test_without_leave_to_closer_the_oldest_goes_first(desk, engine) -> None:
    await all_rings_open(engine, leave_to_closer=False)
    await desk.busy("v05", "05")
    await desk.busy("v75", "75")
    await t05_then_t29(desk)
    assert await free(desk, engine, "v75", "busy-v75") == "t05"


async def test_priority_wins_over_leaving_to_closer(desk, engine) -> None:
    await all_rings_open(engine, leave_to_closer=True)
    await desk.busy("v05", "05")
    await desk.busy("v75", "75")
    await desk.call("t29", "29")
    await desk.call("t05-urgent", "05", priority=5)
    assert await free(desk, engine, "v75", "busy-v75") == "t05-urgent"


@pytest.mark.parametrize(("queued", "expected"), [(64, "t29"), (65, "t05-00")])
async def test_the_scan_past_tasks_left_to_others_is_bounded(
    desk, engine, queued, expected
) -> None:
    """A freed volunteer looks up to 64 tasks past the first for one not left to a closer
    volunteer, so a long queue costs a bounded scan; past that, the oldest goes."""
    await all_rings_open(engine, local_first_s=3600, leave_to_closer=True)
    await desk.busy("v05", "05")
    await desk.busy("v75", "75")
    for i in range(queued):
        await desk.call(f"t05-{i:02}", "05")
    await desk.call("t29", "29")
    assert await free(desk, engine, "v75", "busy-v75") == expected
