"""Engine.volunteers: every volunteer read in batches, unchanged ones reused."""

from __future__ import annotations

import pytest

from routing import engine as engine_module
from routing.models import Presence, Volunteer


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
    again = await engine.volunteers(reuse={v.id: v for v in first})
    await engine.redis.srem(engine.keys.vols, "v8")
    assert [v.id for v in again] == [f"v{i}" for i in range(8)]
    by_id = {v.id: v for v in first}
    for v in again:
        if v.id == "v4":
            assert v is not by_id["v4"] and (v.presence, v.reason) == (Presence.PAUSED, "café")
        else:
            assert v is by_id[v.id]  # unchanged: the same model, not parsed again
