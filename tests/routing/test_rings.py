"""Territory-first matching: rings, widening on a timer, ring skipping, choice of volunteer/task.

Thresholds (tests/routing/conftest.py): group 15 s, région 30 s, national 90 s, skills 60 s.
Territories include the Massif alpin group (04 05 06 26 38 73 74 83 84); 05 and 13 are in
PACA (93), 38 in Auvergne-Rhône-Alpes (84), 75 in Île-de-France (11). Time only moves with
``desk.wait``, which runs the timers that fell due, as the app's tick loop would.
"""

from __future__ import annotations

import pytest

from routing.invariants import check_invariants
from routing.models import Presence, TaskState

GROUP_S, REGION_S, NATIONAL_S, SKILL_S = 15, 30, 90, 60
JUST_BEFORE = 0.001
# (TaskSpec field, VolunteerProfile field): a skill or a language the task needs.
REQUIREMENTS = [("skill", "skills"), ("language", "languages")]


async def test_issue_scenario_departement_then_region_then_anyone(desk, engine, clock) -> None:
    """A task from 05 waits for an 05 volunteer while a volunteer from 75 idles; later a
    volunteer from 13 (same région) gets it; after the last threshold anyone does."""
    await desk.busy("v05", "05")  # on duty, on a call
    await desk.volunteer("v75", "75")
    await desk.volunteer("v13", "13")
    start = clock.now_ms()

    await desk.call("t1", "05")
    assert (await desk.task("t1")).level == 0
    # The next thing that can change for t1 is its first threshold, and nothing happens before.
    assert await engine.next_timer_ms() == start + GROUP_S * 1000
    await desk.wait(GROUP_S - JUST_BEFORE)
    assert await desk.state("t1") is TaskState.WAITING

    # Group ring: nobody else from the Massif alpin is on duty, so still nobody to offer to;
    # v13 (PACA, not in the massif) is not eligible yet.
    await desk.wait(JUST_BEFORE)
    assert (await desk.task("t1")).level == 1
    assert await desk.offered_to("t1") is None
    await desk.wait(REGION_S - GROUP_S - JUST_BEFORE)
    assert await desk.offered_to("t1") is None

    # The tick that crosses the région threshold makes the offer; nothing else is needed.
    clock.advance(JUST_BEFORE)
    assert await desk.state("t1") is TaskState.WAITING  # time alone changes nothing...
    await engine.tick()  # ...the timer does
    task = await desk.task("t1")
    assert (task.state, task.volunteer, task.ring, task.level) == ("reserved", "v13", 2, 2)
    await engine.accept("v13", "t1")

    # A second task from 05: v05 and v13 are busy; only the national ring reaches v75.
    await desk.call("t2", "05")
    await desk.wait(NATIONAL_S - JUST_BEFORE)
    assert await desk.offered_to("t2") is None
    assert (await desk.task("t2")).level == 2
    await desk.wait(JUST_BEFORE)
    task = await desk.task("t2")
    assert (task.volunteer, task.ring, task.level) == ("v75", 3, 3)


async def test_group_ring_comes_before_the_region(desk, clock) -> None:
    await desk.busy("v05", "05")
    await desk.volunteer("v13", "13")  # same région, idle longest
    clock.advance(5)
    await desk.volunteer("v38", "38")  # other région, same massif

    await desk.call("t1", "05")
    await desk.wait(GROUP_S - JUST_BEFORE)
    assert await desk.offered_to("t1") is None
    await desk.wait(JUST_BEFORE)
    task = await desk.task("t1")
    assert (task.volunteer, task.ring) == ("v38", 1)


async def test_widening_counts_from_the_task_place_not_from_the_last_event(desk) -> None:
    await desk.busy("v05", "05")
    await desk.volunteer("v13", "13")
    await desk.call("t1", "05")
    # Unrelated activity in between must not delay (or advance) the threshold.
    for i in range(3):
        await desk.wait(9)
        await desk.volunteer(f"v2b-{i}", "2B")  # too far for t1 yet: nothing to offer them
    assert await desk.offered_to("t1") is None  # 27 s
    await desk.wait(REGION_S - 27)
    assert await desk.offered_to("t1") == "v13"


async def test_no_volunteer_in_the_departement_skips_its_ring_at_once(desk) -> None:
    await desk.volunteer("v75", "75")  # idle longest, but national
    await desk.volunteer("v13", "13")
    task = await desk.call("t1", "05")  # nobody from 05 or the massif is on duty
    assert (task.state, task.volunteer, task.level, task.ring) == ("reserved", "v13", 2, 2)


async def test_only_a_national_volunteer_gets_the_task_at_once(desk) -> None:
    await desk.volunteer("v75", "75")
    task = await desk.call("t1", "05")
    assert (task.volunteer, task.level, task.ring) == ("v75", 3, 3)


async def test_empty_departement_with_a_staffed_group_goes_to_the_group_at_once(desk) -> None:
    await desk.volunteer("v13", "13")
    await desk.volunteer("v38", "38")
    task = await desk.call("t1", "05")
    assert (task.volunteer, task.level, task.ring) == ("v38", 1, 1)


async def test_a_task_nobody_can_take_waits_at_national_level_for_the_first_to_come(
    desk,
) -> None:
    task = await desk.call("t1", "05")
    assert (task.state, task.level) == (TaskState.WAITING, 3)
    await desk.volunteer("v2b", "2B")  # Corsica: as far as it gets
    assert await desk.offered_to("t1") == "v2b"


@pytest.mark.parametrize("leaving", [Presence.PAUSED, Presence.LOGGED_OUT])
async def test_a_ring_emptied_by_pause_or_logout_widens_waiting_tasks_at_once(
    desk, engine, leaving
) -> None:
    await desk.busy("v05", "05")
    await desk.volunteer("v13", "13")
    await desk.call("t1", "05")
    assert await desk.offered_to("t1") is None

    await engine.set_presence("v05", leaving, reason="fin de permanence")
    task = await desk.task("t1")
    assert (task.volunteer, task.level, task.ring) == ("v13", 2, 2)
    # The call v05 had in hand is still theirs.
    assert (await desk.task("busy-v05")).volunteer == "v05"


async def test_a_ring_still_staffed_does_not_widen(desk, engine) -> None:
    await desk.busy("v05a", "05")
    await desk.busy("v05b", "05")
    await desk.volunteer("v13", "13")
    await desk.call("t1", "05")
    await engine.set_presence("v05a", Presence.PAUSED)
    task = await desk.task("t1")
    assert (task.state, task.level) == (TaskState.WAITING, 0)


async def test_closest_ring_first_even_after_widening(desk, engine, clock) -> None:
    """A local volunteer who frees up keeps priority over a longer-idle national one."""
    await desk.busy("v05", "05")
    await desk.call("t1", "05")
    await desk.wait(NATIONAL_S)
    assert (await desk.task("t1")).level == 3
    await desk.volunteer("v69", "69")  # anyone may take it now: v69 is offered it
    assert await desk.offered_to("t1") == "v69"

    await desk.volunteer("v75", "75")  # idle from now
    await desk.wait(10)
    await engine.complete("v05", "busy-v05")
    await engine.finish_wrapup("v05", "busy-v05")  # v05 idle from now, 10 s after v75

    await engine.decline("v69", "t1")
    task = await desk.task("t1")
    assert (task.volunteer, task.ring) == ("v05", 0)


async def test_longest_idle_volunteer_first(desk, engine, clock) -> None:
    await desk.volunteer("v05c", "05")
    clock.advance(1)
    await desk.volunteer("v05a", "05")
    clock.advance(1)
    await desk.volunteer("v05b", "05")
    clock.advance(1)
    for tid, expected in (("t1", "v05c"), ("t2", "v05a"), ("t3", "v05b")):
        await desk.call(tid, "05")
        assert await desk.offered_to(tid) == expected


async def test_idle_time_restarts_after_a_task(desk, engine, clock) -> None:
    await desk.volunteer("va", "05")
    clock.advance(10)
    await desk.volunteer("vb", "05")
    await desk.call("t1", "05")
    assert await desk.offered_to("t1") == "va"
    await engine.accept("va", "t1")
    await desk.wait(60)
    await engine.complete("va", "t1")
    await engine.finish_wrapup("va", "t1")
    # va idled 10 s longer before t1, but vb has been idle since, for 60 s.
    await desk.call("t2", "05")
    assert await desk.offered_to("t2") == "vb"


async def test_ties_between_equally_idle_volunteers_are_broken_by_id(desk) -> None:
    for vid in ("v05-b", "v05-c", "v05-a"):
        await desk.volunteer(vid, "05")  # same instant
    await desk.call("t1", "05")
    await desk.call("t2", "05")
    await desk.call("t3", "05")
    assert [await desk.offered_to(t) for t in ("t1", "t2", "t3")] == ["v05-a", "v05-b", "v05-c"]


async def test_ties_across_groups_of_a_ring_are_broken_by_id(engine, clock, territories) -> None:
    """A département in two groups: equally idle volunteers of either group, lowest id wins."""
    from routing.engine import Engine
    from routing.models import Channel, TaskSpec, VolunteerProfile
    from routing.territory import Group

    valley = Group("vallee-du-rhone", "Vallée du Rhône", frozenset({"26", "69", "84"}))
    eng = Engine(
        engine.redis,
        line=engine.keys.line,
        territories=territories.with_groups([*territories.groups.values(), valley]),
        clock=clock,
    )
    await eng.log_in(VolunteerProfile("z-alps", "38"))
    await eng.log_in(VolunteerProfile("a-valley", "69"))
    for vid in ("z-alps", "a-valley"):
        await eng.set_presence(vid, Presence.AVAILABLE)
    task = await eng.enqueue(TaskSpec("t1", Channel.VOICE, "26"))
    assert (task.volunteer, task.ring) == ("a-valley", 1)


async def test_freed_volunteer_takes_highest_priority_then_oldest(desk, engine, clock) -> None:
    await desk.busy("v05", "05")
    for tid, priority in (("old", 0), ("older-urgent", 5), ("new", 0), ("new-urgent", 5)):
        await desk.call(tid, "05", priority=priority)
        clock.advance(1)
    await desk.call("busy-place", "05")
    positions = {t: await engine.position(t) for t in ("old", "older-urgent", "new", "new-urgent")}
    assert positions == {"older-urgent": 1, "new-urgent": 2, "old": 3, "new": 4}

    await engine.complete("v05", "busy-v05")
    await engine.finish_wrapup("v05", "busy-v05")
    assert await desk.offered_to("older-urgent") == "v05"
    served = []
    for _ in range(3):
        tid = (await engine.volunteer("v05")).reserved
        served.append(tid)
        await engine.accept("v05", tid)
        await engine.complete("v05", tid)
        await engine.finish_wrapup("v05", tid)
    assert served == ["older-urgent", "new-urgent", "old"]
    assert (await engine.volunteer("v05")).reserved == "new"


async def test_freed_volunteer_skips_tasks_outside_their_reach(desk, engine, clock) -> None:
    await desk.busy("v05", "05")
    await desk.busy("v13", "13")
    await desk.call("from05", "05")  # older, but at département level: not v13's yet
    clock.advance(1)
    await desk.call("from13", "13")
    await engine.complete("v13", "busy-v13")
    await engine.finish_wrapup("v13", "busy-v13")
    assert await desk.offered_to("from13") == "v13"
    assert await desk.offered_to("from05") is None


@pytest.mark.parametrize(("need", "volunteer_has"), REQUIREMENTS)
async def test_a_requirement_holds_until_it_relaxes_then_territory_decides(
    desk, need, volunteer_has
) -> None:
    value = "impots" if need == "skill" else "ar"
    await desk.volunteer("v75", "75", **{volunteer_has: [value]})  # has it, but far away
    await desk.volunteer("v05", "05")  # near, but lacks it
    await desk.call("t1", "05", **{need: value})
    await desk.wait(SKILL_S - JUST_BEFORE)
    assert await desk.offered_to("t1") is None
    await desk.wait(JUST_BEFORE)
    task = await desk.task("t1")
    assert (task.volunteer, task.ring) == ("v05", 0)


@pytest.mark.parametrize(("need", "volunteer_has"), REQUIREMENTS)
async def test_a_volunteer_with_the_requirement_goes_first(desk, need, volunteer_has) -> None:
    value = "impots" if need == "skill" else "ar"
    await desk.volunteer("v05-lacks", "05")  # idle longest
    await desk.volunteer("v05-has", "05", **{volunteer_has: [value]})
    task = await desk.call("t1", "05", **{need: value})
    assert task.volunteer == "v05-has"


async def test_a_skilled_volunteer_arriving_before_relax_gets_the_task(desk) -> None:
    await desk.volunteer("v05", "05")
    await desk.call("t1", "05", skill="impots")
    await desk.wait(20)
    assert await desk.offered_to("t1") is None
    await desk.volunteer("v05-impots", "05", skills=["impots"])
    assert await desk.offered_to("t1") == "v05-impots"


async def test_requirement_and_territory_together(desk) -> None:
    """A skilled volunteer in the région is reached at the région threshold, before relax."""
    await desk.volunteer("v05", "05")  # near, lacks the skill
    await desk.volunteer("v13", "13", skills=["retraite"])
    await desk.call("t1", "05", skill="retraite")
    await desk.wait(REGION_S - JUST_BEFORE)
    assert await desk.offered_to("t1") is None
    await desk.wait(JUST_BEFORE)
    assert await desk.offered_to("t1") == "v13"


async def test_a_profile_refresh_does_not_widen_waiting_tasks(desk, engine) -> None:
    """The console sends the profile again when it reconnects: same rings, nothing moves."""
    await desk.busy("v05", "05")
    await desk.volunteer("v13", "13")
    await desk.call("t1", "05")
    await desk.volunteer("v05", "05", skills=["impots"])  # log_in again, still available
    task = await desk.task("t1")
    assert (task.state, task.level) == (TaskState.WAITING, 0)
    assert "task_widened" not in await desk.event_types("t1")


async def test_moving_the_last_volunteer_away_widens_waiting_tasks(desk, engine) -> None:
    await desk.busy("v05", "05")
    await desk.volunteer("v13", "13")
    await desk.call("t1", "05")
    await desk.volunteer("v05", "75")  # the profile now says Paris: 05 has nobody on duty
    task = await desk.task("t1")
    assert (task.volunteer, task.level) == ("v13", 2)


async def test_moving_away_with_two_tasks_for_you_gives_you_one_offer(desk, engine) -> None:
    """A profile change that both widens a task to the volunteer and lets them take another
    one must still leave them with a single offer (teardown checks the invariants)."""
    await desk.volunteer("v", "05")  # lacks the skill the two calls need
    await desk.call("from05", "05", skill="impots")  # waits for a skilled 05 volunteer
    await desk.call("from13", "13", skill="impots")  # nobody in 13: waits at région level
    await desk.volunteer("v", "13", skills=["impots"])  # moves to 13 and learns the skill
    offered = [t for t in ("from05", "from13") if await desk.offered_to(t) == "v"]
    assert offered == [(await engine.volunteer("v")).reserved]


async def test_a_chat_goes_to_the_longest_idle_with_chats_in_hand_or_nothing(
    desk, engine, clock
) -> None:
    # Free for a chat: in the 'voice' sets with nothing in hand, in the 'chat' sets with chats
    # under capacity; a chat looks at both, by idle time.
    await desk.volunteer("chatting", "05", chat_capacity=3)
    await desk.chat("c1", "05")
    await engine.accept("chatting", "c1")  # idle since now, one chat in hand
    clock.advance(5)
    await desk.volunteer("idle", "05")  # idle since 5 s later, nothing in hand
    assert (await engine.longest_idle("chat")).id == "chatting"
    assert (await engine.longest_idle("voice")).id == "idle"
    await desk.chat("c2", "05")
    assert await desk.offered_to("c2") == "chatting"
    clock.advance(1)
    await engine.accept("chatting", "c2")  # idle since now: the other one has waited longer
    await desk.chat("c3", "05")
    assert await desk.offered_to("c3") == "idle"
    await desk.call("t1", "05")  # nobody is free for a call: both have a chat in hand or ringing
    assert await desk.offered_to("t1") is None


async def test_a_free_set_mark_written_before_the_split_is_rewritten(desk, engine) -> None:
    # Before 2026-12-02 a volunteer with nothing in hand was in the chat sets too, marked 'vc'.
    await desk.volunteer("v1", "05")
    vol = await engine.redis.hgetall(engine.keys.vol("v1"))
    scopes = ["d:05", "g:massif-alpin", "r:93", "n"]
    for scope in scopes:
        await engine.redis.zadd(engine.keys.free("chat", scope), {"v1": vol["idle_since"]})
    await engine.redis.hset(engine.keys.vol("v1"), "fs", "vc:" + vol["idle_since"])
    assert await check_invariants(engine) == []
    await desk.chat("c1", "05")
    assert await desk.offered_to("c1") == "v1"
    for scope in scopes:  # reserved: out of every set, both kinds
        assert await engine.redis.zscore(engine.keys.free("chat", scope), "v1") is None
        assert await engine.redis.zscore(engine.keys.free("voice", scope), "v1") is None


async def test_the_invariants_see_a_volunteer_in_the_wrong_free_set(desk, engine, clock) -> None:
    await desk.volunteer("chats", "05", chat_capacity=3)
    clock.advance(1)
    await desk.volunteer("idle", "05")
    await desk.chat("c1", "05")
    await engine.accept("chats", "c1")  # the longest idle takes it: one chat in hand now
    in_chat_sets, in_voice_sets = engine.keys.free("chat", "n"), engine.keys.free("voice", "n")
    assert await engine.redis.zscore(in_chat_sets, "chats") is not None
    assert await engine.redis.zscore(in_voice_sets, "idle") is not None
    assert await check_invariants(engine) == []

    chats_idle_since = await engine.redis.zscore(in_chat_sets, "chats")
    await engine.redis.zadd(in_chat_sets, {"idle": 1})  # nothing in hand: the voice sets only
    await engine.redis.zrem(in_chat_sets, "chats")  # a chat in hand, room for more
    problems = await check_invariants(engine)
    assert "volunteer idle wrongly in f:chat:n" in problems
    assert "volunteer chats missing from f:chat:n" in problems
    await engine.redis.zrem(in_chat_sets, "idle")  # as it was, for teardown's check
    await engine.redis.zadd(in_chat_sets, {"chats": chats_idle_since})
    assert await check_invariants(engine) == []


async def test_the_invariants_see_a_free_set_out_of_step_with_idle_since(desk, engine) -> None:
    # find_volunteer ranks the free by the idle_since it loads: the sets' order must agree.
    await desk.volunteer("v1", "05")
    idle_since = (await engine.redis.hgetall(engine.keys.vol("v1")))["idle_since"]
    await engine.redis.zadd(engine.keys.free("voice", "r:93"), {"v1": 5})
    assert await check_invariants(engine) == [
        f"volunteer v1 in f:voice:r:93 as idle since 5, but idle since {idle_since}"
    ]
    await engine.redis.zadd(engine.keys.free("voice", "r:93"), {"v1": idle_since})
