"""The live dashboard: its numbers from the engine, and hubs pushing them from the stream."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random

import pytest

from routing.clock import ManualClock, buckets
from routing.engine import Engine
from routing.errors import RoutingError
from routing.metrics import compute
from routing.models import Channel, Presence, TaskSpec, VolunteerProfile
from web.coordination import hub as hub_module
from web.coordination.delta import OutOfStep, apply, diff
from web.coordination.hub import DELTAS_KEPT, DashboardHub, encode, notify
from web.coordination.live import Slots, build_state, day_start_ms, volunteer_order


async def test_the_dashboard_shows_queue_volunteers_today_and_alerts(
    engine: Engine, clock: ManualClock
) -> None:
    await engine.log_in(VolunteerProfile("v1", "05", frozenset({"impots"}), name="Anne"))
    await engine.log_in(VolunteerProfile("v2", "05", name="Bruno"))
    await engine.log_in(VolunteerProfile("v3", "38", name="Chloé"))
    await engine.set_presence("v1", Presence.AVAILABLE)
    await engine.set_presence("v3", Presence.PAUSED, "réunion")
    await engine.enqueue(TaskSpec("a", Channel.VOICE, "05", skill="impots"))  # rings at v1
    clock.advance(12)
    await engine.accept("v1", "a")
    await engine.enqueue(TaskSpec("b", Channel.CHAT, "29"))  # Bretagne: nobody there
    await engine.enqueue(TaskSpec("c", Channel.VOICE, "29"))
    clock.advance(30)
    await engine.tick()
    slots = Slots(clock.now_ms() - 60_000, clock.now_ms() + 60_000, 2, 3,
                  {"v1": "Anne", "v2": "Bruno"}, [])

    s = await build_state(engine, slots=slots)

    assert s["waiting"] == {"total": 2, "voice": 1, "chat": 1, "callback": 0,
                            "oldest_since_ms": clock.now_ms() - 30_000}
    assert [q["id"] for q in s["queue"]] == ["b", "c"]  # queue order: arrival
    b = s["queue"][0]
    assert (b["channel_name"], b["departement_name"], b["level_name"]) == (
        "Chat", "Finistère", "national")  # nobody in the Bretagne rings: widened at once
    by_id = {v["id"]: v for v in s["volunteers"]}
    assert by_id["v1"]["state"] == "call" and by_id["v1"]["since_ms"] == clock.now_ms() - 30_000
    assert by_id["v3"]["label"] == "En pause : réunion"
    assert "v2" not in by_id and s["volunteers_by_state"]["logged_out"] == 1
    assert s["today"]["answered"] == 1 and s["today"]["asa_s"] == 12.0
    assert s["today"] == compute(await engine.counts(buckets(clock.now_ms())[0])).as_dict()
    assert s["map"] == {"waiting": {"29": 2}, "on_duty": {"05": 1}}
    assert s["slots"]["missing"] == [{"id": "v2", "name": "Bruno"}]
    texts = [a["text"] for a in s["alerts"]]
    assert (
        "Bretagne : 2 personnes attendent et aucun bénévole de la région n'est en service."
        in texts
    )


async def test_alerts_for_a_falling_service_level_and_unanswered_offers(
    engine: Engine, clock: ManualClock
) -> None:
    await engine.log_in(VolunteerProfile("v1", "05", name="Anne"))
    await engine.set_presence("v1", Presence.AVAILABLE)
    cfg = await engine.config()
    for i in range(3):  # three callers give up after a minute and a half
        await engine.enqueue(TaskSpec(f"x{i}", Channel.VOICE, "75"))
    await engine.set_presence("v1", Presence.PAUSED, "pause")
    clock.advance(90)
    for i in range(3):
        await engine.cancel(f"x{i}")
    await engine.set_presence("v1", Presence.AVAILABLE)
    await engine.enqueue(TaskSpec("y", Channel.VOICE, "05"))  # rings at v1, unanswered
    clock.advance(cfg.ring_s + 1)
    await engine.tick()
    s = await build_state(engine)
    kinds = {a["kind"]: a for a in s["alerts"]}
    assert kinds["service_level"]["text"].startswith("Niveau de service en baisse : 0 %")
    assert kinds["no_answer"]["text"] == "Anne n'a pas décroché au dernier appel proposé."


async def settle(hubs: list[DashboardHub]) -> None:
    """Step every hub until none has events left and all pass on the same version."""
    for _ in range(20):
        counts = [await hub.step(block_ms=10) for hub in hubs]
        if not any(counts) and len({hub.version for hub in hubs}) == 1:
            return
    raise AssertionError(f"hubs did not settle: {[hub.version for hub in hubs]}")


async def test_hubs_in_several_processes_push_every_change_from_the_stream(
    engine: Engine, clock: ManualClock
) -> None:
    hubs = [DashboardHub(engine) for _ in range(3)]  # as if in three app processes
    for hub in hubs:
        await hub.seed()
    subs = [await hub.subscribe() for hub in hubs]
    assert [(await s.next())["waiting"]["total"] for s in subs] == [0, 0, 0]

    await engine.log_in(VolunteerProfile("v1", "05", name="Anne"))
    await engine.set_presence("v1", Presence.AVAILABLE)
    await engine.enqueue(TaskSpec("a", Channel.VOICE, "05"))
    await settle(hubs)
    states = [await s.next() for s in subs]
    assert all(st["queue"][0]["ringing"] == "Anne" for st in states)

    await engine.accept("v1", "a")
    await settle(hubs)
    states = [await s.next() for s in subs]
    assert all(st["waiting"]["total"] == 0 and st["today"]["answered"] == 1 for st in states)
    assert all(st["volunteers"][0]["state"] == "call" for st in states)
    # One hub built each version; the others only passed it on.
    assert sum(hub.builds for hub in hubs) == hubs[0].version
    assert sorted(hub.builds for hub in hubs)[:2] == [0, 0]

    # A coordination notice (not an engine event) also reaches every hub.
    await notify(engine.redis, engine.keys.line, "line")
    assert [await h.step(block_ms=1000) for h in hubs] == [1, 1, 1]


async def test_another_hub_builds_when_the_builder_stops(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "BUILDER_TTL_MS", 200)
    first, second = DashboardHub(engine), DashboardHub(engine)
    for hub in (first, second):
        await hub.seed()
    await first.subscribe()
    watching = await second.subscribe()
    await watching.next()
    await engine.enqueue(TaskSpec("t1", Channel.CHAT, "75"))
    await settle([first, second])  # the first hub to step takes the lease
    assert first.builds >= 1 and second.builds == 0
    assert (await watching.next())["waiting"]["total"] == 1

    # The builder's process stops: once its lease lapses the other hub builds, carrying on
    # from the published version (its sockets get a delta, not the whole state again).
    await asyncio.sleep(0.3)
    await engine.enqueue(TaskSpec("t2", Channel.CHAT, "75"))
    await second.step(block_ms=1000)
    assert second.builds == 1 and second.version == first.version + 1
    message = json.loads(await watching.next_text())
    assert [d["version"] for d in message["deltas"]] == [second.version]
    assert apply(watching.held, message["deltas"][0])["waiting"]["total"] == 2


async def test_hubs_ask_whether_they_build_at_most_every_claim_period(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every hub used to ask Redis after each batch of events, dashboards open or not: on a
    busy line, most of its script calls."""
    monkeypatch.setattr(hub_module, "CLAIM_EVERY_S", 600.0)  # however slow this machine is
    monkeypatch.setattr(hub_module, "BUILDER_TTL_MS", 3_600_000)
    hub = DashboardHub(engine)
    await hub.seed()
    claims = 0
    claim = hub._claim

    async def counted(**kwargs: object) -> object:
        nonlocal claims
        claims += 1
        return await claim(**kwargs)

    hub._claim = counted  # type: ignore[method-assign]
    for i in range(10):  # ten batches of events within a claim period, nobody watching
        await engine.enqueue(TaskSpec(f"t{i}", Channel.CHAT, "75"))
        assert await hub.step(block_ms=1000) == 1
    assert claims == 1 and hub.builds == 0
    await hub.subscribe()  # a dashboard opens here: said at once, and this hub builds
    assert claims == 2 and await engine.redis.exists(hub.keys.watched)
    await engine.enqueue(TaskSpec("t10", Channel.CHAT, "75"))
    await hub.step(block_ms=1000)
    assert claims == 2 and hub.version == hub.builds == 2  # the subscribe's, then this batch's


async def test_a_dashboard_opening_after_a_quiet_spell_sees_the_line_as_it_is_now(
    engine: Engine, clock: ManualClock
) -> None:
    builder, other = DashboardHub(engine), DashboardHub(engine)
    for hub in (builder, other):
        await hub.seed()
    first = await builder.subscribe()
    assert (await first.next())["waiting"]["total"] == 0
    builder.unsubscribe(first)  # every dashboard closed...
    await engine.redis.delete(builder.keys.watched)  # ...long enough for the mark to lapse
    builds = builder.builds + other.builds
    await engine.enqueue(TaskSpec("t1", Channel.CHAT, "75"))
    await settle([builder, other])
    assert builder.builds + other.builds == builds  # nobody watches: nobody builds
    clock.advance(hub_module.REFRESH_S + 1)
    late = await other.subscribe()  # in another process, a while later
    state = await late.next()
    assert state["waiting"]["total"] == 1 and state["now_ms"] == clock.now_ms()


async def test_dashboards_start_again_when_redis_lost_the_published_versions(
    engine: Engine,
) -> None:
    hub = DashboardHub(engine)
    await hub.seed()
    sub = await hub.subscribe()
    for _ in range(3):
        await hub.refresh()
    await sub.next()
    assert sub.sent == hub.version == 4
    await engine.redis.delete(hub.keys.state)  # e.g. a Redis restarted without its data
    hub.state = None  # a fresh builder, with nothing to build on
    await engine.enqueue(TaskSpec("t1", Channel.CHAT, "75"))
    await hub.step(block_ms=1000)  # builds version 1 again...
    await hub.step(block_ms=1000)  # ...and reads it back from the stream
    message = json.loads(await asyncio.wait_for(sub.next_text(), 10))
    assert message["full"]["version"] == 1 and message["full"]["waiting"]["total"] == 1


async def test_builders_racing_never_fork_the_versions(engine: Engine) -> None:
    """Several hubs publishing at once (a lease lost under a pause): each version is
    published once, on top of the one before, and the deltas rebuild the last state."""
    hubs = [DashboardHub(engine) for _ in range(3)]
    for hub in hubs:
        await hub.seed()
    await hubs[0].refresh()
    held = json.loads(await engine.redis.hget(hubs[0].keys.state, "text"))
    for i in range(8):
        await engine.enqueue(TaskSpec(f"t{i}", Channel.CHAT, "75"))
        await asyncio.gather(*(hub.refresh() for hub in hubs))
    entries = await engine.redis.xrange(hubs[0].keys.stream)
    versions = [int(fields["version"]) for _, fields in entries]
    assert versions == list(range(1, len(versions) + 1))
    assert len(versions) == sum(hub.builds for hub in hubs) >= 9
    assert sum(1 for hub in hubs if hub.builds) >= 2  # they did race
    for _, fields in entries[1:]:
        held = apply(held, json.loads(fields["delta"]))
    state = json.loads(await engine.redis.hget(hubs[0].keys.state, "text"))
    assert held == state and state["waiting"]["total"] == 8


async def test_dashboards_opening_at_once_share_one_rebuild(engine: Engine) -> None:
    """A rebuild holds the whole line in memory: fifty dashboards opening together (a
    coordinators' meeting) must not start fifty of them side by side."""
    reloads: list[bool] = []

    async def extras(reload: bool) -> dict[str, object]:
        reloads.append(reload)
        return {}

    hub = DashboardHub(engine, extras=extras)
    await hub.seed()
    for i in range(30):
        await engine.log_in(VolunteerProfile(f"v{i}", "05", name=f"Bénévole {i}"))
    subs = await asyncio.gather(*(hub.subscribe() for _ in range(50)))  # nothing published yet
    assert 1 <= hub.builds <= 2
    texts = [await s.next_text() for s in subs]
    assert all(text is texts[0] for text in texts)
    assert json.loads(texts[0])["full"]["version"] == hub.version == hub.builds

    # A refresh asked for while a rebuild runs gets a rebuild that starts after it, with
    # the reload it asked for (a coordinator's change in SQL); the others share them.
    reloads.clear()
    builds = hub.builds
    await asyncio.gather(hub.refresh(), hub.refresh(reload=True), hub.refresh())
    assert reloads == [False, True] and hub.builds == builds + 2


async def test_a_build_reads_again_the_volunteers_events_named_and_all_now_and_then(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "FULL_READ_S", 3600.0)
    for vid, name in (("v1", "Anne"), ("v2", "Bruno")):
        await engine.log_in(VolunteerProfile(vid, "05", name=name))
        await engine.set_presence(vid, Presence.AVAILABLE)
    hub = DashboardHub(engine)
    await hub.seed()
    await hub.refresh()  # the first build reads everyone

    def rows() -> dict[str, dict[str, object]]:
        assert hub.state is not None
        return {v["id"]: v for v in hub.state["volunteers"]}

    await engine.log_in(VolunteerProfile("v2", "05", name="Bruno B."))  # no event names v2
    await engine.set_presence("v1", Presence.PAUSED, "café")
    await hub.step(block_ms=1000)
    await hub.refresh()
    assert rows()["v1"]["label"] == "En pause : café"  # named by its event: read again
    assert rows()["v2"]["name"] == "Bruno"  # not named: as read last time
    await hub.refresh(reload=True)  # a full read (also every FULL_READ_S)
    assert rows()["v2"]["name"] == "Bruno B."


async def test_a_slow_dashboard_gets_the_newest_state_not_a_backlog(engine: Engine) -> None:
    hub = DashboardHub(engine)
    await hub.seed()
    sub = await hub.subscribe()
    for i in range(5):
        await engine.enqueue(TaskSpec(f"t{i}", Channel.CHAT, "75"))
        await hub.step(block_ms=1000)
    state = await sub.next()
    assert state["waiting"]["total"] == 5 and state["version"] == hub.version
    assert not sub.ready.is_set()


async def test_every_dashboard_of_a_process_gets_the_same_text_encoded_once(
    engine: Engine,
) -> None:
    hub = DashboardHub(engine)
    await hub.seed()
    subs = [await hub.subscribe() for _ in range(3)]
    first = [await s.next_text() for s in subs]
    assert first[0] is first[1] is first[2]  # one encoding, shared
    whole = json.loads(first[0])["full"]
    assert whole["version"] == hub.version and whole["waiting"]["total"] == 0
    await engine.enqueue(TaskSpec("t1", Channel.CHAT, "29"))
    await hub.step(block_ms=1000)
    texts = [await s.next_text() for s in subs]
    assert texts[0] is texts[1] is texts[2] and texts[0] is not first[0]
    [delta] = json.loads(texts[0])["deltas"]  # what changed, not the whole state again
    assert (delta["base"], delta["version"]) == (whole["version"], hub.version)
    assert delta["set"]["waiting"]["total"] == 1 and "service_level_s" not in delta["set"]
    assert delta["lists"]["queue"]["put"][0]["departement_name"] == "Finistère"
    assert "Finistère" in texts[0]  # UTF-8 text, not \u-escaped (smaller frames)
    assert apply(whole, delta) == hub.state
    late = await hub.subscribe()  # a dashboard opening now gets the whole current state
    late_text = await late.next_text()
    assert json.loads(late_text)["full"] == hub.state
    assert await (await hub.subscribe()).next_text() is late_text


async def test_a_dashboard_that_fell_behind_gets_what_it_missed_or_the_whole_state(
    engine: Engine,
) -> None:
    hub = DashboardHub(engine)
    await hub.seed()
    slow, far = await hub.subscribe(), await hub.subscribe()
    held = json.loads(await slow.next_text())["full"]
    json.loads(await far.next_text())
    for i in range(3):
        await engine.enqueue(TaskSpec(f"t{i}", Channel.CHAT, "75"))
        await hub.step(block_ms=1000)
    deltas = json.loads(await slow.next_text())["deltas"]
    assert [d["version"] for d in deltas] == [hub.version - 2, hub.version - 1, hub.version]
    for delta in deltas:
        held = apply(held, delta)
    assert held == hub.state and held["waiting"]["total"] == 3
    with pytest.raises(OutOfStep):
        apply(held, deltas[0])  # the page reconnects rather than draw a wrong state

    for _ in range(DELTAS_KEPT + 1):  # further behind than the deltas kept
        await hub.refresh()
    message = json.loads(await far.next_text())
    assert "deltas" not in message and message["full"] == hub.state
    assert await slow.next_text() != ""  # still served; nothing is pending after it
    assert not slow.ready.is_set() and await hub.message_since(slow.sent) is None


async def test_deltas_rebuild_every_version_of_a_busy_line(
    engine: Engine, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Volunteers change state and places, tasks come and go: each delta applied to the
    previous version gives exactly the next one, rows in the server's order."""
    monkeypatch.setattr(hub_module, "FULL_READ_S", 3600.0)  # rows kept up by events alone
    rng = random.Random(7)
    names = ["Anne", "anne", "Élodie", "Bruno", "Zoé", "Émile", "Chloé", "bruno"]
    for i, name in enumerate(names):  # same names in other cases: the id breaks the tie
        await engine.log_in(VolunteerProfile(f"v{i}", rng.choice(["05", "38", "75"]), name=name))
    hub = DashboardHub(engine)
    await hub.seed()
    sub = await hub.subscribe()
    held = json.loads(await sub.next_text())["full"]
    sizes, seen = [], set()
    for step in range(60):
        vid = f"v{rng.randrange(len(names))}"
        action = rng.random()
        if action < 0.3:
            await engine.enqueue(
                TaskSpec(f"t{step}", rng.choice([Channel.VOICE, Channel.CHAT]),
                         rng.choice(["05", "38", "29"]), priority=rng.choice([0, 0, 5]))
            )
        elif action < 0.45:
            ringing = [v for v in await engine.volunteers() if v.reserved]
            if ringing:
                await engine.accept(ringing[0].id, ringing[0].reserved)
        elif action < 0.55:
            waiting = [t for t in await engine.live_tasks() if t.state.value == "waiting"]
            if waiting:
                await engine.cancel(rng.choice(waiting).id)  # the caller hangs up
        elif action < 0.7:
            held_tasks = [t for t in await engine.live_tasks()
                          if t.volunteer == vid and t.state.value == "assigned"]
            if held_tasks:
                await engine.complete(vid, held_tasks[0].id)
                await engine.finish_wrapup(vid, held_tasks[0].id)
        else:
            presence = rng.choice([Presence.AVAILABLE, Presence.AVAILABLE, Presence.PAUSED,
                                   Presence.LOGGED_OUT])
            with contextlib.suppress(RoutingError):  # e.g. logging out with a call in hand
                await engine.set_presence(vid, presence, f"raison {step}")
        clock.advance(rng.choice([1, 5, 40]))
        await engine.tick()
        if not await hub.step(block_ms=10):
            await hub.refresh()  # nothing happened: a version all the same (the clock moved)
        text = await sub.next_text()
        sizes.append(len(text))
        before = held
        for delta in json.loads(text)["deltas"]:
            held = apply(held, delta)
            seen.update(f"{key}.{part}" for key, rows in delta.get("lists", {}).items()
                        for part in ("put", "drop") if rows[part])
        assert held == hub.state, f"step {step}"
        # The builder reuses the volunteers it read last time: as a build from scratch says.
        assert hub.state["volunteers"] == (await build_state(engine))["volunteers"]
        if [v["id"] for v in before["volunteers"]] != [v["id"] for v in held["volunteers"]]:
            seen.add("volunteers.reordered")
        assert held == json.loads(encode(hub.state))  # as the page decodes it
    assert [v["id"] for v in held["volunteers"]] == [
        v["id"] for v in sorted(held["volunteers"], key=volunteer_order)]
    assert max(sizes) < len(encode(hub.state))  # no delta as large as the whole state
    assert seen == {"queue.put", "queue.drop", "volunteers.put", "volunteers.drop",
                    "volunteers.reordered"}, seen  # the run went through every kind of change


def test_volunteer_rows_are_put_back_in_the_servers_order() -> None:
    """Rows the delta does not carry keep their place among the ones it moves."""
    def row(vid: str, name: str, state: str) -> dict:
        return {"id": vid, "name": name, "state": state}

    old = {"version": 1, "volunteers": [row("a", "Zoé", "available"), row("b", "anne", "call"),
                                        row("c", "Anne", "paused")], "queue": []}
    rows = [row("a", "Zoé", "paused"), row("b", "anne", "call"), row("c", "Anne", "available"),
            row("d", "Émile", "available")]
    new = {"version": 2, "volunteers": sorted(rows, key=volunteer_order), "queue": []}
    delta = diff(old, new)
    assert {r["id"] for r in delta["lists"]["volunteers"]["put"]} == {"a", "c", "d"}
    assert "queue" not in delta.get("lists", {}) and delta["set"] == {}
    assert [r["id"] for r in apply(old, delta)["volunteers"]] == ["c", "d", "b", "a"]
    gone = diff(new, {"version": 3, "volunteers": new["volunteers"][1:], "queue": []})
    assert gone["lists"]["volunteers"] == {"put": [], "drop": ["c"]}


async def test_occupancy_today_is_folded_from_the_stream_and_resets_at_midnight(
    engine: Engine, clock: ManualClock
) -> None:
    await engine.log_in(VolunteerProfile("v1", "05", name="Anne"))
    await engine.set_presence("v1", Presence.AVAILABLE)
    await engine.enqueue(TaskSpec("a", Channel.VOICE, "05"))
    await engine.accept("v1", "a")
    clock.advance(60)
    hub = DashboardHub(engine)  # a process starting after the fact reads the day so far
    await hub.seed()
    clock.advance(60)
    await engine.complete("v1", "a")
    await engine.finish_wrapup("v1", "a")
    clock.advance(120)
    await hub.step(block_ms=1000)
    state = await hub.refresh()
    assert state["today"]["occupancy"] == pytest.approx(120 / 240)
    # Past midnight (Europe/Paris) the day starts again.
    day = buckets(clock.now_ms())[0]
    tomorrow = day_start_ms(day) + 24 * 3600 * 1000 + 8 * 3600 * 1000
    clock.advance((tomorrow - clock.now_ms()) / 1000)
    state = await hub.refresh()
    assert state["day"] != day and state["today"]["answered"] == 0
    assert state["today"]["occupancy"] == 0.0  # on duty since midnight, nothing handled yet


async def test_a_broadcast_reaches_the_consoles_of_every_process_once(
    engine: Engine, clock: ManualClock
) -> None:
    from web.coordination.controls import broadcast_key
    from web.coordination.relay import BroadcastRelay

    line = engine.keys.line
    await engine.redis.xadd(broadcast_key(line), {"text": "ancien", "author": "X", "at": "1"})
    inboxes: list[list[dict]] = [[], []]
    relays = [BroadcastRelay(engine.redis, line, inbox.append) for inbox in inboxes]
    for relay in relays:
        await relay.start_position()  # only messages sent from now on
    await engine.redis.xadd(broadcast_key(line),
                            {"text": "Réunion à 14 h.", "author": "Claire", "at": "1795420800000"})
    assert [await r.step(block_ms=1000) for r in relays] == [1, 1]
    assert inboxes == [[{"type": "broadcast", "text": "Réunion à 14 h.", "from": "Claire",
                         "at": 1795420800000}]] * 2
    assert [await r.step(block_ms=10) for r in relays] == [0, 0]
    await engine.redis.delete(broadcast_key(line))
