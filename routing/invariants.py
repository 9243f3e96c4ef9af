"""Invariants of a line's live state, checked on one atomic snapshot.

This is an independent reading of the routing rules, not a call into the Lua:
it re-derives what must hold from the raw hashes and sets, so a bug in a script
shows up here instead of being repeated.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

LIVE_STATES = {"waiting", "reserved", "assigned", "wrapup"}
OUTCOMES = {"completed", "abandoned", "callback", "closed"}
RINGS = 3
THRESHOLDS = ("widen_group_ms", "widen_region_ms", "widen_national_ms")


def _split(csv: str) -> list[str]:
    return [x for x in (csv or "").split(",") if x]


def ring_scopes(task: dict[str, str], ring: int) -> list[str]:
    if ring == 0:
        return [f"d:{task['dept']}"]
    if ring == 1:
        return [f"g:{g}" for g in _split(task["groups"])]
    if ring == 2:
        return [f"r:{task['region']}"]
    return ["n"]


def volunteer_scopes(vol: dict[str, str]) -> list[str]:
    return [
        f"d:{vol['dept']}",
        *(f"g:{g}" for g in _split(vol["groups"])),
        f"r:{vol['region']}",
        "n",
    ]


def channel_class(task: dict[str, str]) -> str:
    return "chat" if task["channel"] == "chat" else "voice"


def ring_of(task: dict[str, str], vol: dict[str, str]) -> int:
    if vol["dept"] == task["dept"]:
        return 0
    if set(_split(task["groups"])) & set(_split(vol["groups"])):
        return 1
    if vol["region"] == task["region"]:
        return 2
    return 3


def free_for(vol: dict[str, str], cls: str, now: int) -> bool:
    if vol["presence"] != "available" or vol["reserved"] or int(vol["blocked_until"]) > now:
        return False
    voice, chat = int(vol["load_voice"]), int(vol["load_chat"])
    if cls == "voice":
        return voice == 0 and chat == 0
    return voice == 0 and chat < int(vol["chat_cap"])


def eligible(task: dict[str, str], vol: dict[str, str], now: int) -> bool:
    """May this volunteer take this task now, by preference, territory, skill and language?"""
    if int(task["pref_until"]) > now:
        return task["pref"] == vol["id"]
    if vol["id"] in _split(task.get("excl", "")):  # passed it on for a skill they lack
        return False
    if ring_of(task, vol) > int(task["level"]):
        return False
    if int(task["need_until"]) > now:
        if task["skill"] and task["skill"] not in _split(vol["skills"]):
            return False
        if task["lang"] and task["lang"] not in _split(vol["langs"]):
            return False
    return True


def on_duty_counts(vols: dict[str, dict[str, str]]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for vol in vols.values():
        if vol["presence"] == "available":
            counts.update(volunteer_scopes(vol))
    return counts


def target_level(task: dict[str, str], cfg: dict[str, str], on: Counter[str], now: int) -> int:
    """The ring a waiting task should have reached: by age, skipping rings with nobody on duty."""
    level = int(task["level"])
    age = now - int(task["enq"])
    for ring in range(level + 1, RINGS + 1):
        if age >= int(cfg[THRESHOLDS[ring - 1]]):
            level = ring

    def anyone(upto: int) -> bool:
        return any(on[s] > 0 for r in range(upto + 1) for s in ring_scopes(task, r))

    while level < RINGS and not anyone(level):
        level += 1
    return level


def staffing_counts(vols: dict[str, dict[str, str]]) -> dict[str, int]:
    """Logged in, working (available, or paused with a conversation in hand), their chat lanes."""
    counts = Counter({"logged_in": 0, "working": 0, "lanes": 0})
    for v in vols.values():
        if v["presence"] == "logged_out":
            continue
        counts["logged_in"] += 1
        if v["presence"] == "available" or int(v["load_voice"]) or int(v["load_chat"]):
            counts["working"] += 1
            counts["lanes"] += int(v["chat_cap"])
    return dict(counts)


def check_snapshot(snap: dict[str, Any]) -> list[str]:
    """Every violated invariant, in plain words; an empty list when all hold."""
    now = int(snap["now"])
    tasks: dict[str, dict[str, str]] = {tid: {**h, "id": tid} for tid, h in snap["tasks"].items()}
    vols: dict[str, dict[str, str]] = {vid: {**h, "id": vid} for vid, h in snap["vols"].items()}
    sets: dict[str, dict[str, str]] = snap["sets"]
    timers: dict[str, str] = snap["timers"]
    cfg: dict[str, str] = snap["cfg"]
    problems: list[str] = []

    def due(member: str) -> bool:
        return member in timers and int(float(timers[member])) <= now

    # Tasks: one state each, outcome only once ended (or in wrap-up, completed).
    for tid, t in tasks.items():
        state = t.get("state")
        if state not in LIVE_STATES:
            problems.append(f"task {tid} is live with state {state!r}")
            continue
        outcome = t.get("outcome", "")
        if state == "wrapup" and outcome != "completed":
            problems.append(f"task {tid} in wrap-up has outcome {outcome!r}")
        if state != "wrapup" and outcome:
            problems.append(f"task {tid} is {state} but already has outcome {outcome!r}")
        if state in {"reserved", "assigned", "wrapup"} and t.get("vol", "") not in vols:
            problems.append(f"task {tid} is {state} by unknown volunteer {t.get('vol')!r}")
        if state == "waiting" and t.get("vol"):
            problems.append(f"task {tid} is waiting but names volunteer {t['vol']}")
        if state == "reserved" and f"r:{tid}" not in timers:
            problems.append(f"task {tid} rings without a ring timer")
        if state == "wrapup" and f"x:{tid}" not in timers:
            problems.append(f"task {tid} is in wrap-up without a wrap-up timer")

    # Waiting sets hold exactly the waiting tasks, in the rings they reached.
    expected: dict[str, set[str]] = defaultdict(set)
    for tid, t in tasks.items():
        if t.get("state") != "waiting":
            continue
        cls = channel_class(t)
        for ring in range(int(t["level"]) + 1):
            for scope in ring_scopes(t, ring):
                expected[f"w:{cls}:{scope}"].add(tid)
        expected[f"w:{cls}:all"].add(tid)
    for key, members in sets.items():
        if not key.startswith("w:"):
            continue
        for tid in members:
            t = tasks.get(tid)
            if t is None:
                problems.append(f"ended or unknown task {tid} still queued in {key}")
            elif t.get("state") != "waiting":
                problems.append(f"task {tid} is {t.get('state')} but still queued in {key}")
            elif key.split(":", 2)[2].startswith("p:"):
                if key != f"w:{channel_class(t)}:p:{t.get('pref')}":
                    problems.append(f"task {tid} queued for a volunteer it does not prefer ({key})")
    for key, members in expected.items():
        missing = members - set(sets.get(key, {}))
        for tid in sorted(missing):
            problems.append(f"waiting task {tid} missing from {key}")

    # Volunteers: reservations one-to-one, load equals tasks held, capacity respected.
    holders: dict[str, list[str]] = defaultdict(list)
    load: dict[str, Counter[str]] = defaultdict(Counter)
    for t in tasks.values():
        if t.get("state") in {"assigned", "wrapup"}:
            load[t["vol"]][channel_class(t)] += 1
    for vid, v in vols.items():
        if v["reserved"]:
            holders[v["reserved"]].append(vid)
            t = tasks.get(v["reserved"])
            if t is None or t.get("state") != "reserved" or t.get("vol") != vid:
                problems.append(
                    f"volunteer {vid} holds an offer for {v['reserved']} that is not theirs"
                )
            if v["presence"] != "available":
                # Pausing or logging out withdraws a ringing offer: the caller must not wait
                # on someone who will not answer.
                problems.append(f"volunteer {vid} is {v['presence']} with an offer ringing")
        voice, chat = int(v["load_voice"]), int(v["load_chat"])
        if voice != load[vid]["voice"] or chat != load[vid]["chat"]:
            problems.append(
                f"volunteer {vid} load voice={voice} chat={chat} but holds "
                f"voice={load[vid]['voice']} chat={load[vid]['chat']}"
            )
        if voice > 1 or (voice and chat) or chat > int(v["chat_cap"]) or voice < 0 or chat < 0:
            problems.append(f"volunteer {vid} over capacity: voice={voice} chat={chat}")
        # After a decline, a miss or a failed phone leg: only the unblock timer lets them back.
        if int(v["blocked_until"]) > now and f"u:{vid}" not in timers:
            problems.append(f"volunteer {vid} blocked until {v['blocked_until']} with no timer")
    for tid, names in holders.items():
        if len(names) > 1:
            problems.append(f"task {tid} offered to several volunteers: {sorted(names)}")
    for tid, t in tasks.items():
        if t.get("state") == "reserved" and vols.get(t["vol"], {}).get("reserved") != tid:
            problems.append(f"task {tid} rings for {t['vol']} who does not hold it")

    # Free sets and on-duty counts agree with the volunteers' hashes: free for a call, in the
    # 'voice' sets; else free for a chat, in the 'chat' sets (keys.FREE_SETS).
    for vid, v in vols.items():
        voice = free_for(v, "voice", now)
        chat = not voice and free_for(v, "chat", now)
        # Marked 'vc' (before 2026-12-02), free for a call: in the chat sets too, a duplicate
        # that changes no choice; refresh_free takes it out at the volunteer's next change.
        in_both = voice and v.get("fs", "").startswith("vc:")
        for free_set, should in (("voice", voice), ("chat", chat)):
            if free_set == "chat" and in_both:
                continue
            for scope in volunteer_scopes(v):
                key = f"f:{free_set}:{scope}"
                score = sets.get(key, {}).get(vid)
                if should != (score is not None) and not due(f"u:{vid}"):
                    state = "missing from" if should else "wrongly in"
                    problems.append(f"volunteer {vid} {state} {key}")
                # find_volunteer ranks the free by the idle_since it loads, not the score.
                if score is not None and float(score) != float(v.get("idle_since") or "nan"):
                    problems.append(
                        f"volunteer {vid} in {key} as idle since {score}, "
                        f"but idle since {v.get('idle_since')}"
                    )
    for key, members in sets.items():
        if key.startswith("f:"):
            for vid in members:
                if vid not in vols:
                    problems.append(f"unknown volunteer {vid} in {key}")
    on = on_duty_counts(vols)
    stored = {k: int(v) for k, v in snap["on"].items()}
    if {k: v for k, v in on.items() if v} != {k: v for k, v in stored.items() if v}:
        problems.append(f"on-duty counts {stored} differ from presences {dict(on)}")
    kept = {k: int(v) for k, v in snap.get("staff", {}).items()}
    if kept and kept != (counted := staffing_counts(vols)):
        problems.append(f"staffing counts {kept} differ from presences {counted}")

    # Timeliness and work conservation: nothing waits that could be offered now.
    for tid, t in tasks.items():
        if t.get("state") != "waiting" or due(f"w:{tid}"):
            continue
        should_level = target_level(t, cfg, on, now)
        if should_level > int(t["level"]):
            problems.append(
                f"task {tid} at ring {t['level']} should have widened to {should_level}"
            )
        for vid, v in vols.items():
            if free_for(v, channel_class(t), now) and eligible(t, v, now) and not due(f"u:{vid}"):
                problems.append(f"volunteer {vid} idles while task {tid} they may take waits")
    return problems


async def check_invariants(engine: Any) -> list[str]:
    """Check a running line; returns the problems found (empty when all is well)."""
    return check_snapshot(await engine.snapshot())


def check_accounted(
    task_ids: list[str], snap: dict[str, Any], ended: dict[str, dict[str, str]]
) -> list[str]:
    """Every task created is either live in one state or ended with exactly one outcome."""
    problems = []
    for tid in task_ids:
        live = tid in snap["tasks"]
        h = ended.get(tid)
        if live and h and h.get("state") == "ended":
            problems.append(f"task {tid} is both live and ended")
        elif not live:
            if not h:
                problems.append(f"task {tid} is lost: neither live nor ended")
            elif h.get("state") != "ended" or h.get("outcome") not in OUTCOMES:
                problems.append(f"task {tid} left the live set without an outcome ({h})")
    return problems
