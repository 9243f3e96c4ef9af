"""Replay of a line's event stream, checking that its story is coherent.

Scripts append their events inside the same atomic transition, so the stream is the
exact order in which transitions happened. Replaying it independently of the engine
tells whether any task was ever offered or assigned to two volunteers at once, whether
a volunteer ever held two offers or more work than their capacity, and what the live
state must be at the end (compared with a snapshot by the caller).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from routing.events import Event, EventType
from routing.models import NO_ANSWER_REASON

ENDED_FROM = {
    "completed": {"wrapup"},
    "abandoned": {"waiting", "reserved"},
    "callback": {"waiting", "reserved"},
    "closed": {"waiting", "reserved"},
}


@dataclass
class TaskStory:
    cls: str
    state: str = "waiting"
    vol: str = ""
    level: int = 0
    assigned: int = 0
    transfers: int = 0


@dataclass
class VolunteerStory:
    presence: str = "logged_out"
    offer: str = ""
    load: Counter[str] = field(default_factory=Counter)


@dataclass
class Replay:
    tasks: dict[str, TaskStory] = field(default_factory=dict)
    vols: dict[str, VolunteerStory] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    types: Counter[str] = field(default_factory=Counter)  # event types, auto-pauses, resumes


def replay(events: list[Event], chat_capacity: dict[str, int]) -> Replay:
    """Walk the stream; every incoherence is a problem naming the event id."""
    r = Replay()

    def vol(vid: str) -> VolunteerStory:
        return r.vols.setdefault(vid, VolunteerStory())

    def bad(e: Event, what: str) -> None:
        if len(r.problems) < 200:
            r.problems.append(
                f"event {e.id} {e.type.value} task={e.task} vol={e.volunteer}: {what}"
            )

    def over_capacity(v: VolunteerStory, vid: str) -> bool:
        voice, chat = v.load["voice"], v.load["chat"]
        return voice > 1 or (voice > 0 and chat > 0) or chat > chat_capacity[vid]

    for e in events:
        r.types[e.type.value] += 1
        if e.type is EventType.VOLUNTEER_PRESENCE:
            v = vol(e.volunteer)
            v.presence = e.data["presence"]
            if e.data.get("reason") == NO_ANSWER_REASON:
                r.types["auto_pause"] += 1
            if v.presence != "available" and v.offer:
                # Going off duty withdraws the offer: the task goes back to its place.
                withdrawn = r.tasks[v.offer]
                if withdrawn.state != "reserved" or withdrawn.vol != e.volunteer:
                    bad(e, f"held offer {v.offer} which was {withdrawn.state}/{withdrawn.vol}")
                withdrawn.state, withdrawn.vol = "waiting", ""
                v.offer = ""
            continue
        if e.type is EventType.TASK_CREATED:
            if e.task in r.tasks:
                bad(e, "created twice")
            r.tasks[e.task] = TaskStory(cls="chat" if e.data["channel"] == "chat" else "voice")
            if e.data.get("resumed") == "1":
                r.types["resumed"] += 1
            continue
        t = r.tasks.get(e.task)
        if t is None:
            bad(e, "event about a task never created")
            continue
        if e.type is EventType.TASK_WIDENED:
            level = int(e.data["level"])
            if t.state != "waiting" or level <= t.level:
                bad(e, f"widened to {level} while {t.state} at level {t.level}")
            t.level = max(t.level, level)
        elif e.type is EventType.TASK_OFFERED:
            v = vol(e.volunteer)
            if t.state != "waiting":
                bad(e, f"offered while {t.state} by {t.vol!r}")
            if v.offer:
                bad(e, f"volunteer already has the offer {v.offer} ringing")
            if v.presence != "available":
                bad(e, f"offered to a volunteer who is {v.presence}")
            free = v.load["voice"] == 0 and (
                v.load["chat"] == 0
                if t.cls == "voice"
                else v.load["chat"] < chat_capacity[e.volunteer]
            )
            if not free:
                bad(e, f"offered a {t.cls} task to a volunteer holding {dict(v.load)}")
            t.state, t.vol, v.offer = "reserved", e.volunteer, e.task
        elif e.type in (EventType.OFFER_DECLINED, EventType.OFFER_TIMEOUT):
            v = vol(e.volunteer)
            if t.state != "reserved" or t.vol != e.volunteer or v.offer != e.task:
                bad(e, f"offer ended while {t.state} by {t.vol!r}, volunteer's offer {v.offer!r}")
            t.state, t.vol = "waiting", ""
            if v.offer == e.task:
                v.offer = ""
        elif e.type is EventType.TASK_ASSIGNED:
            v = vol(e.volunteer)
            if t.state != "reserved" or t.vol != e.volunteer or v.offer != e.task:
                bad(e, f"assigned while {t.state} by {t.vol!r}, volunteer's offer {v.offer!r}")
            t.state, t.vol, v.offer = "assigned", e.volunteer, ""
            t.assigned += 1
            if t.assigned > t.transfers + 1:
                bad(e, f"assigned {t.assigned} times with only {t.transfers} transfers")
            v.load[t.cls] += 1
            if over_capacity(v, e.volunteer):
                bad(e, f"volunteer over capacity: {dict(v.load)}")
        elif e.type is EventType.TASK_TRANSFERRED:
            if t.state != "assigned" or t.vol != e.volunteer:
                bad(e, f"transferred while {t.state} by {t.vol!r}")
            vol(e.volunteer).load[t.cls] -= 1
            t.state, t.vol = "waiting", ""
            t.transfers += 1
        elif e.type is EventType.TASK_COMPLETED:
            if t.state != "assigned" or t.vol != e.volunteer:
                bad(e, f"completed while {t.state} by {t.vol!r}")
            t.state = "wrapup"
        elif e.type is EventType.TASK_ENDED:
            outcome = e.data["outcome"]
            if t.state not in ENDED_FROM.get(outcome, set()):
                bad(e, f"ended as {outcome!r} while {t.state}")
            if t.state == "wrapup":
                vol(t.vol).load[t.cls] -= 1
            if t.state == "reserved":
                v = vol(t.vol)
                if v.offer != e.task:
                    bad(e, f"ringing for {t.vol} whose offer is {v.offer!r}")
                v.offer = ""
            t.state, t.vol = "ended", ""
    return r


def compare_with_snapshot(r: Replay, snap: dict) -> list[str]:
    """The replayed end state must be the snapshot's live state."""
    problems = []
    for tid, t in r.tasks.items():
        h = snap["tasks"].get(tid)
        if t.state == "ended":
            if h is not None:
                problems.append(f"task {tid} ended in the stream but is live ({h.get('state')})")
            continue
        if h is None:
            problems.append(f"task {tid} is {t.state} in the stream but not live")
        elif (h["state"], h.get("vol", "")) != (t.state, t.vol):
            problems.append(
                f"task {tid}: stream says {t.state}/{t.vol!r}, Redis {h['state']}/{h.get('vol')!r}"
            )
    for vid, v in r.vols.items():
        h = snap["vols"].get(vid)
        if h is None:
            problems.append(f"volunteer {vid} in the stream is unknown to Redis")
            continue
        stored = (h["presence"], h["reserved"], int(h["load_voice"]), int(h["load_chat"]))
        told = (v.presence, v.offer, v.load["voice"], v.load["chat"])
        if stored != told:
            problems.append(f"volunteer {vid}: stream says {told}, Redis {stored}")
    return problems
