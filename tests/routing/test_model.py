"""The engine, on a real Redis, behaves as a simple in-memory model of DESIGN.md says.

A hypothesis state machine drives the engine and the reference model
(``_model_reference.py``: dictionaries and brute-force matching) with the same random
operations and the same manual clock, and after every step compares what can be
observed: every task's state, volunteer, ring, outcome, place and preference, every
volunteer's presence, offer, loads, misses and idle time, the pending timers, the
refusals — and the engine's own invariants on an atomic snapshot.

Time only moves forward to the next due timer at most and the timers run at once
(as the app's tick loop does), so no operation ever sees a timer that is overdue.

Each example uses a fresh line and its own event loop and ManualClock. For a deeper
search than the default run: MODEL_EXAMPLES=2000 MODEL_STEPS=80 (several minutes).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from redis.asyncio import Redis

from routing.clock import ManualClock
from routing.config import RoutingConfig
from routing.engine import Engine
from routing.errors import RoutingError
from routing.invariants import check_snapshot
from routing.models import Channel, Presence, TaskSpec, VolunteerProfile
from routing.territory import MASSIF_ALPIN, load_territories
from tests.routing._model_reference import Model, Refused

TERRITORIES = load_territories().with_groups([MASSIF_ALPIN])
# Short, distinct times (s) so that an example of a few dozen steps crosses every threshold.
CONFIG = RoutingConfig(
    widen_group_s=10,
    widen_region_s=20,
    widen_national_s=40,
    skill_relax_s=30,
    local_first_max_wait_s=25,
    leave_to_closer=True,
    ring_s=10,
    max_no_answer=2,
    no_answer_delay_s=3,
    reject_delay_s=4,
    wrapup_s=15,
    resume_window_s=60,
    recent_caller_s=120,
    known_volunteer_s=8,
    transfer_wait_s=12,
)
VOLUNTEERS = ("a", "b", "c", "d")
# 05 and 04: same group and région; 38: same group, another région; 13: same région only.
VOLUNTEER_DEPTS = ("05", "04", "38", "13", "75")
TASK_DEPTS = ("05", "05", "04", "38", "13", "69", "75")
SKILLS = ("impots", "famille")
CALLERS = ("", "", "k1", "k2")

PICK = st.integers(0, 10_000)
SKILL_SETS = st.frozensets(st.sampled_from(SKILLS), max_size=2)


def _pick(items: list[Any], i: int) -> Any:
    return items[i % len(items)] if items else None


class RoutingMachine(RuleBasedStateMachine):
    """The engine and the reference model, driven step by step alike (a fresh line each)."""

    def __init__(self, redis_url: str) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.redis = Redis.from_url(redis_url, decode_responses=True)
        self.clock = ManualClock()
        line = "m" + uuid.uuid4().hex[:12]
        self.engine = Engine(self.redis, line=line, territories=TERRITORIES, clock=self.clock)
        self.run(self.engine.configure(CONFIG))
        self.run(self.engine.staffing())  # from here the transitions keep the staffing counts
        self.model = Model(CONFIG, TERRITORIES, self.clock.now_ms())
        self.serial = 0

    def run(self, coro: Awaitable[Any]) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        async def clean() -> None:
            async for key in self.redis.scan_iter(match=self.engine.keys.pattern(), count=1000):
                await self.redis.delete(key)
            await self.redis.aclose()

        try:
            self.run(clean())
        finally:
            self.loop.close()

    def both(
        self, engine_call: Callable[[], Awaitable[Any]], model_call: Callable[[], Any]
    ) -> None:
        """The same request to both; they must agree on whether (and why) it is refused."""
        try:
            self.run(engine_call())
            got = None
        except RoutingError as exc:
            got = exc.code
        try:
            model_call()
            expected = None
        except Refused as exc:
            expected = exc.code
        assert got == expected, f"engine refusal {got!r}, model refusal {expected!r}"

    def _tasks(self, *states: str) -> list[str]:
        return sorted(t.id for t in self.model.tasks.values() if not states or t.state in states)

    def _offers(self) -> list[tuple[str, str]]:
        return sorted((v.id, v.reserved) for v in self.model.vols.values() if v.reserved)

    # Volunteers ------------------------------------------------------------------------

    @initialize(
        staff=st.lists(
            st.tuples(
                st.sampled_from(VOLUNTEER_DEPTS),
                SKILL_SETS,
                st.integers(1, 3),
                st.sampled_from([True, True, True, False]),
            ),
            min_size=1,
            max_size=len(VOLUNTEERS),
        )
    )
    def staff(self, staff: list[tuple[str, frozenset[str], int, bool]]) -> None:
        """Volunteers log in and most go available, so that work flows from the first step."""
        for vid, (dept, skills, capacity, available) in zip(VOLUNTEERS, staff, strict=False):
            self.log_in(vid, dept, skills, False, capacity)
            if available:
                self.set_presence(vid, "available", "")

    @rule(
        vid=st.sampled_from(VOLUNTEERS),
        dept=st.sampled_from(VOLUNTEER_DEPTS),
        skills=SKILL_SETS,
        arabic=st.booleans(),
        capacity=st.integers(1, 3),
    )
    def log_in(
        self, vid: str, dept: str, skills: frozenset[str], arabic: bool, capacity: int
    ) -> None:
        langs = frozenset({"ar"} if arabic else ())
        profile = VolunteerProfile(vid, dept, skills, langs, capacity, name=vid)
        self.both(
            lambda: self.engine.log_in(profile),
            lambda: self.model.log_in(vid, dept, skills, langs, capacity),
        )

    @rule(
        vid=st.sampled_from(VOLUNTEERS),
        presence=st.sampled_from(["available", "available", "available", "paused", "logged_out"]),
        reason=st.sampled_from(["", "pause café"]),
    )
    def set_presence(self, vid: str, presence: str, reason: str) -> None:
        self.both(
            lambda: self.engine.set_presence(vid, Presence(presence), reason),
            lambda: self.model.set_presence(vid, presence, reason),
        )

    @precondition(lambda self: self._tasks("reserved", "assigned", "wrapup"))
    @rule(i=PICK, by_caller=st.sampled_from([False, False, False, True]))
    def serve(self, i: int, by_caller: bool) -> None:
        """The next step of a conversation: answer the offer, hang up, submit the wrap-up."""
        tid = _pick(self._tasks("reserved", "assigned", "wrapup"), i)
        t = self.model.tasks[tid]
        action = {"reserved": "accept", "assigned": "complete", "wrapup": "finish_wrapup"}[t.state]
        vid = "" if by_caller and action == "complete" else t.vol  # '' = the caller hung up
        self.both(
            lambda: getattr(self.engine, action)(vid, tid),
            lambda: getattr(self.model, action)(vid, tid),
        )

    @precondition(lambda self: self._offers())
    @rule(i=PICK)
    def decline(self, i: int) -> None:
        vid, tid = _pick(self._offers(), i)
        self.both(lambda: self.engine.decline(vid, tid), lambda: self.model.decline(vid, tid))

    @precondition(lambda self: self._tasks("assigned"))
    @rule(
        i=PICK,
        skill=st.sampled_from(["", "", *SKILLS]),
        colleague=st.sampled_from(["", "", *VOLUNTEERS]),
    )
    def transfer(self, i: int, skill: str, colleague: str) -> None:
        tid = _pick(self._tasks("assigned"), i)
        vid = self.model.tasks[tid].vol
        self.both(
            lambda: self.engine.transfer(vid, tid, skill=skill, to_volunteer=colleague),
            lambda: self.model.transfer(vid, tid, skill, colleague),
        )

    @precondition(lambda self: self._tasks("assigned"))
    @rule(i=PICK)
    def give_back(self, i: int) -> None:
        """The volunteer's phone leg failed after the accept (the voice bridge)."""
        tid = _pick(self._tasks("assigned"), i)
        vid = self.model.tasks[tid].vol
        self.both(lambda: self.engine.give_back(vid, tid), lambda: self.model.give_back(vid, tid))

    @precondition(lambda self: self.model.tasks)
    @rule(
        i=PICK,
        vid=st.sampled_from(VOLUNTEERS),
        action=st.sampled_from(
            ["accept", "decline", "complete", "finish_wrapup", "transfer", "give_back"]
        ),
    )
    def stale_click(self, i: int, vid: str, action: str) -> None:
        """A request about any task by any volunteer: usually refused, then nothing changes."""
        tid = _pick(self._tasks(), i)
        if action == "transfer":
            self.both(
                lambda: self.engine.transfer(vid, tid, skill="impots"),
                lambda: self.model.transfer(vid, tid, "impots", ""),
            )
            return
        self.both(
            lambda: getattr(self.engine, action)(vid, tid),
            lambda: getattr(self.model, action)(vid, tid),
        )

    # Tasks -----------------------------------------------------------------------------

    @rule(
        channel=st.sampled_from(["voice", "voice", "chat", "chat", "callback"]),
        dept=st.sampled_from(TASK_DEPTS),
        skill=st.sampled_from(["", "", "", *SKILLS]),
        arabic=st.sampled_from([False, False, False, True]),
        priority=st.sampled_from([0, 0, 0, 4, 9]),
        caller=st.sampled_from(CALLERS),
        earlier_s=st.sampled_from([None, None, None, 0, 25]),
    )
    def enqueue(
        self,
        channel: str,
        dept: str,
        skill: str,
        arabic: bool,
        priority: int,
        caller: str,
        earlier_s: int | None,
    ) -> None:
        self.serial += 1
        tid = f"t{self.serial:02d}"
        place = None if earlier_s is None else self.clock.now_ms() - earlier_s * 1000
        lang = "ar" if arabic else ""
        spec = TaskSpec(tid, Channel(channel), dept, skill, lang, priority, caller, place)
        self.both(
            lambda: self.engine.enqueue(spec),
            lambda: self.model.enqueue(tid, channel, dept, skill, lang, priority, caller, place),
        )

    @rule(channel=st.sampled_from(["voice", "voice", "chat"]), dept=st.sampled_from(TASK_DEPTS))
    def enqueue_plain(self, channel: str, dept: str) -> None:
        """Calls and chats with no particulars: queues form more often."""
        self.enqueue(channel, dept, "", False, 0, "", None)

    @precondition(lambda self: self._tasks("waiting", "reserved", "assigned"))
    @rule(
        i=PICK,
        how=st.sampled_from(["cancel", "cancel", "to_callback", "close", "priority"]),
        priority=st.integers(0, 9),
    )
    def caller_or_coordinator(self, i: int, how: str, priority: int) -> None:
        """The caller hangs up or asks to be called back; a coordinator closes or reprioritises."""
        tid = _pick(self._tasks("waiting", "reserved", "assigned"), i)
        if how == "cancel":
            self.both(lambda: self.engine.cancel(tid), lambda: self.model.cancel(tid))
        elif how == "to_callback":
            self.serial += 1
            cid = f"cb{self.serial:02d}"
            self.both(
                lambda: self.engine.to_callback(tid, cid), lambda: self.model.to_callback(tid, cid)
            )
        elif how == "close":
            self.both(
                lambda: self.engine.close(tid, "line_closed"),
                lambda: self.model.close(tid, "line_closed"),
            )
        else:
            self.both(
                lambda: self.engine.set_priority(tid, priority),
                lambda: self.model.set_priority(tid, priority),
            )

    # Time --------------------------------------------------------------------------------

    def _time_passes(self, seconds: float | None) -> None:
        """Move to now + seconds, or to the next due timer if sooner; then run the timers."""
        now = self.clock.now_ms()
        due = self.run(self.engine.next_timer_ms())
        assert due == self.model.next_due(), "the engine and the model expect different timers"
        target = due if seconds is None else now + int(seconds * 1000)
        if target is None:
            return
        if due is not None:
            target = min(target, due)
        self.clock.advance((target - now) / 1000)
        self.model.now = self.clock.now_ms()
        self.run(self.engine.tick())
        self.model.tick()

    @rule(seconds=st.sampled_from([0.5, 1, 2, 3, 5, 8, 13, 21, 34]))
    def wait(self, seconds: float) -> None:
        self._time_passes(seconds)

    @rule()
    def until_next_timer(self) -> None:
        self._time_passes(None)

    # What must agree after every step ----------------------------------------------------

    @invariant()
    def engine_matches_model(self) -> None:
        snap = self.run(self.engine.snapshot())
        assert check_snapshot(snap) == []
        ended = sorted(tid for tid in self.model.tasks if tid not in snap["tasks"])

        async def read_ended() -> list[dict[str, str]]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for tid in ended:
                    pipe.hgetall(self.engine.keys.task(tid))
                return await pipe.execute()

        hashes = {**snap["tasks"], **dict(zip(ended, self.run(read_ended()), strict=True))}
        for tid, t in self.model.tasks.items():
            h = hashes[tid]
            expected = (
                t.state,
                t.vol,
                t.level,
                t.outcome,
                t.reason,
                t.priority,
                t.enq,
                t.pref,
                t.skill,
                t.resumed,
                t.ring,
                t.acc_misses,
            )
            seen = (
                h.get("state"),
                h.get("vol"),
                int(h.get("level", -1)),
                h.get("outcome", ""),
                h.get("reason", ""),
                int(h.get("priority", -1)),
                int(h.get("enq", -1)),
                h.get("pref"),
                h.get("skill"),
                h.get("resumed") == "1",
                h.get("ring"),
                int(h.get("acc_misses", 0)),
            )
            assert seen == expected, f"task {tid}: engine {seen}, model {expected}"
        live = {tid for tid, t in self.model.tasks.items() if t.state != "ended"}
        assert set(snap["tasks"]) == live
        assert set(snap["vols"]) == set(self.model.vols)
        for vid, v in self.model.vols.items():
            h = snap["vols"][vid]
            expected_v = (
                v.presence,
                v.reason,
                v.reserved,
                v.load["voice"],
                v.load["chat"],
                v.misses,
                v.idle_since,
                v.dept,
            )
            seen_v = (
                h["presence"],
                h["reason"],
                h["reserved"],
                int(h["load_voice"]),
                int(h["load_chat"]),
                int(h["misses"]),
                int(h["idle_since"]),
                h["dept"],
            )
            assert seen_v == expected_v, f"volunteer {vid}: engine {seen_v}, model {expected_v}"
        assert {m: int(float(s)) for m, s in snap["timers"].items()} == self.model.timers


def test_engine_behaves_as_the_reference_model(redis_url: str) -> None:
    run_state_machine_as_test(
        lambda: RoutingMachine(redis_url),
        settings=settings(
            max_examples=int(os.environ.get("MODEL_EXAMPLES", "120")),
            stateful_step_count=int(os.environ.get("MODEL_STEPS", "50")),
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


# Scenarios the model test found (or that reasoning on the model found), kept as fixed steps so
# they run every time; each step is still compared with the model, and the outcome is spelled
# out.


def _scenario(redis_url: str, steps: Callable[[RoutingMachine], None]) -> RoutingMachine:
    machine = RoutingMachine(redis_url)
    try:
        machine.engine_matches_model()
        steps(machine)
        machine.engine_matches_model()
    except BaseException:
        machine.teardown()
        raise
    return machine


def _offered_to(machine: RoutingMachine, tid: str) -> str:
    task = machine.run(machine.engine.require_task(tid))
    return task.volunteer if task.state.value == "reserved" else ""


def test_tasks_freed_by_an_emptied_ring_go_in_queue_order_across_channels(redis_url: str) -> None:
    """An older chat and a newer call of 05 skip to the région together: the chat goes first.

    The engine used to widen calls before chats, whatever their age (found by the model test).
    """

    def steps(m: RoutingMachine) -> None:
        m.staff([("05", frozenset(), 2, True), ("13", frozenset(), 2, False)])
        m.enqueue_plain("voice", "05")  # t01 rings for a, who answers: a is busy
        m.serve(0, False)
        m.wait(1)
        m.enqueue_plain("chat", "05")  # t02: waits for a
        m.wait(1)
        m.enqueue_plain("voice", "05")  # t03: waits for a
        m.set_presence("b", "available", "")  # b (13) is free but only for the région ring
        m.engine_matches_model()
        m.set_presence("a", "paused", "")  # nobody left in 05 nor in the group

    m = _scenario(redis_url, steps)
    try:
        assert (_offered_to(m, "t02"), _offered_to(m, "t03")) == ("b", "")
    finally:
        m.teardown()


def test_tasks_freed_by_emptied_rings_go_in_queue_order_across_scopes(redis_url: str) -> None:
    """An older 04 task (group ring) and a newer 05 task (département ring) reach the région at
    once when the only volunteer of both rings pauses: the older one is offered first.

    The engine used to serve the département's queue before the group's.
    """

    def steps(m: RoutingMachine) -> None:
        m.staff([("05", frozenset(), 2, True), ("13", frozenset(), 2, False)])
        m.enqueue_plain("voice", "05")  # t01 rings for a, who answers
        m.serve(0, False)
        m.enqueue_plain("voice", "04")  # t02: nobody in 04, waits for the group (a)
        m.wait(1)
        m.enqueue_plain("voice", "05")  # t03: waits for a
        m.set_presence("b", "available", "")
        m.engine_matches_model()
        m.set_presence("a", "paused", "")

    m = _scenario(redis_url, steps)
    try:
        assert (_offered_to(m, "t02"), _offered_to(m, "t03")) == ("b", "")
    finally:
        m.teardown()


def test_a_caller_passed_on_for_a_skill_resumes_with_it(redis_url: str) -> None:
    """A call passed on for 'impots' is dropped while it waits; the caller calls back within
    the window with the menu's 'famille': their place, and 'impots' again. The volunteer who
    passed them on lacks it, so they are not the returning caller's volunteer this time."""

    def steps(m: RoutingMachine) -> None:
        m.staff([("05", frozenset({"famille"}), 1, True), ("13", frozenset({"impots"}), 1, False)])
        m.enqueue("voice", "05", "famille", False, 0, "k1", None)  # t01 rings for a
        m.serve(0, False)  # a answers
        m.transfer(0, "impots", "")  # nobody free has it: t01 waits
        m.wait(2)
        m.caller_or_coordinator(0, "cancel", 0)  # the line drops
        m.wait(2)
        m.enqueue("voice", "05", "famille", False, 0, "k1", None)  # t02: the same caller

    m = _scenario(redis_url, steps)
    try:
        t02 = m.run(m.engine.require_task("t02"))
        assert (t02.resumed, t02.skill, t02.preferred, t02.state.value) == (
            True,
            "impots",
            "",
            "waiting",
        )
        m.set_presence("b", "available", "")  # the specialist, in the région ring
        while m.clock.now_ms() < t02.place_ms + 20_000:  # the région ring opens then
            m.wait(21)  # (to the next timer, at most 21 s on)
        m.engine_matches_model()
        assert _offered_to(m, "t02") == "b"
    finally:
        m.teardown()
