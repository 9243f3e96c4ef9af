"""Engine.volunteers: every volunteer read in batches, unchanged ones reused."""

from __future__ import annotations

import pytest

from routing import engine as engine_module
from routing.models import Presence, Volunteer, VolunteerProfile


async def test_every_volunteer_read_across_batches_with_unchanged_ones_reused(
    desk, engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "VOLUNTEERS_PER_READ", 3)  # 8 volunteers: 3 batches
    for i in range(8):
        await desk.volunteer(f"v{i}", "05" if i % 2 else "13")
    first = await engine.volunteers()
    assert [v.id for v in first] == [f"v{i}" for i in range(8)]
    for v in first:  # each as its own hash says
        assert v == Volunteer.from_hash(v.id, await engine.redis.hgetall(engine.keys.vol(v.id)))

    await engine.set_presence("v4", Presence.PAUSED, "café")
    await engine.redis.sadd(engine.keys.vols, "v8")  # listed, its hash not (or no longer) there
    again = await engine.volunteers({v.id: v for v in first})
    await engine.redis.srem(engine.keys.vols, "v8")
    assert [v.id for v in again] == [f"v{i}" for i in range(8)]
    by_id = {v.id: v for v in first}
    for v in again:
        if v.id == "v4":
            assert v is not by_id["v4"] and (v.presence, v.reason) == (Presence.PAUSED, "café")
        else:
            assert v is by_id[v.id]  # unchanged: the same model, not parsed again


async def test_only_the_volunteers_named_since_and_new_ones_are_read_again(desk, engine) -> None:
    for i in range(4):
        await desk.volunteer(f"v{i}", "05")
    known = {v.id: v for v in await engine.volunteers()}
    await engine.set_presence("v1", Presence.PAUSED, "café")  # an event names v1
    await engine.log_in(VolunteerProfile("v2", "05", name="Nouveau nom"))  # no event names v2
    await desk.volunteer("v9", "38")  # logged in since
    await engine.redis.sadd(engine.keys.vols, "v8")  # listed, its hash not (or no longer) there
    since = await engine.volunteers(known, {"v1", "v8"})
    await engine.redis.srem(engine.keys.vols, "v8")
    assert [v.id for v in since] == ["v0", "v1", "v2", "v3", "v9"]
    by_id = {v.id: v for v in since}
    assert by_id["v1"].reason == "café" and by_id["v9"].departement == "38"
    assert by_id["v0"] is known["v0"] and by_id["v2"] is known["v2"]  # not read again
    assert (await engine.volunteers(known, {"v2"}))[2].name == "Nouveau nom"
