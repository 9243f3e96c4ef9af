"""Who the voice and chat paths count as logged in and working (Engine.staffing)."""

from __future__ import annotations

from routing.models import Channel, Presence, TaskSpec
from tests.callers.helpers import volunteer_on_duty


async def test_staffing_counts_logged_in_working_and_chat_lanes(ctx, engine):
    assert (await engine.staffing()).logged_in == 0
    await volunteer_on_duty(engine, "anne", "05", chat_capacity=3)
    await volunteer_on_duty(engine, "paul", "05", Presence.PAUSED, chat_capacity=2)
    await volunteer_on_duty(engine, "lea", "05", Presence.LOGGED_OUT)
    # Marc takes a call, then pauses: still working until it ends.
    await volunteer_on_duty(engine, "marc", "38", chat_capacity=4)
    await engine.enqueue(TaskSpec(id="v1", channel=Channel.VOICE, departement="38"))
    await engine.accept("marc", "v1")
    await engine.set_presence("marc", Presence.PAUSED)
    staff = await engine.staffing()
    assert (staff.logged_in, staff.working, staff.chat_lanes) == (3, 2, 7)
    assert await ctx.on_duty() == 3
    volunteers = await engine.volunteers()  # the engine's own view agrees
    assert staff.logged_in == sum(v.presence is not Presence.LOGGED_OUT for v in volunteers)
