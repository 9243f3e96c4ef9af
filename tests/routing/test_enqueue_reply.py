"""Engine.enqueue sends the task's attributes as one packed argument and builds the task it
returns from the spec and the script's short reply: it must be the task the engine stores,
field for field, whatever the script decided. (Group ids, the one attribute a coordinator
names, cannot hold the separator: tests/routing/test_territory.py.)"""

from __future__ import annotations

from typing import Any

from routing.engine import Engine
from routing.models import Channel, TaskSpec, TaskState

Desk = Any  # tests/routing/conftest.py's desk fixture


async def assert_returned_as_stored(engine: Engine, spec: TaskSpec) -> None:
    returned = await engine.enqueue(spec)
    stored = await engine.require_task(spec.id)
    assert returned == stored  # every field but the raw hash
    assert returned.raw == {}


async def test_a_call_offered_at_once(desk: Desk) -> None:
    await desk.volunteer("v05", "05")
    await assert_returned_as_stored(desk.engine, TaskSpec("t1", Channel.VOICE, "05"))
    assert await desk.offered_to("t1") == "v05"


async def test_a_call_queued_where_nobody_is_on_duty(desk: Desk) -> None:
    await desk.busy("v13", "13")  # région PACA has someone, busy
    await assert_returned_as_stored(desk.engine, TaskSpec("t1", Channel.VOICE, "05", priority=3))
    assert (await desk.task("t1")).state is TaskState.WAITING


async def test_a_chat_needing_a_skill_and_a_language(desk: Desk) -> None:
    await desk.busy("v05", "05")
    spec = TaskSpec("c1", Channel.CHAT, "2A", skill="famille", language="ar")
    await assert_returned_as_stored(desk.engine, spec)


async def test_a_callback_keeping_an_earlier_place(desk: Desk) -> None:
    place = desk.clock.now_ms() - 600_000
    spec = TaskSpec("cb1", Channel.CALLBACK, "974", caller_key="k1", place_ms=place)
    await assert_returned_as_stored(desk.engine, spec)
    assert (await desk.task("cb1")).place_ms == place


async def test_a_returning_caller_resumes_their_place_and_priority(desk: Desk) -> None:
    await desk.busy("v05", "05")
    await desk.call("t1", "05", caller_key="k1", priority=5)
    place = (await desk.task("t1")).place_ms
    await desk.wait(20)
    await desk.engine.cancel("t1")
    await desk.wait(5)
    await assert_returned_as_stored(
        desk.engine, TaskSpec("t2", Channel.VOICE, "05", caller_key="k1")
    )
    again = await desk.task("t2")
    assert (again.resumed, again.place_ms, again.priority) == (True, place, 5)


async def test_a_returning_caller_offered_to_the_volunteer_who_helped_them(desk: Desk) -> None:
    await desk.volunteer("v05", "05")
    await desk.volunteer("w05", "05")
    await desk.call("t1", "05", caller_key="k1")
    helper = await desk.offered_to("t1")
    assert helper is not None
    await desk.engine.accept(helper, "t1")
    await desk.engine.complete(helper, "t1")
    await desk.engine.finish_wrapup(helper, "t1")
    await assert_returned_as_stored(
        desk.engine, TaskSpec("t2", Channel.VOICE, "05", caller_key="k1")
    )
    again = await desk.task("t2")
    assert (again.preferred, again.volunteer) == (helper, helper)
