"""An in-memory reference model of the routing semantics (DESIGN.md, "Routing semantics").

Plain Python on purpose: dictionaries of tasks and volunteers, and matching by brute
force over every pair instead of the engine's sorted sets, counters and Lua. It
keeps the same pending deadlines as the engine (widening, ring time, decline and
no-answer delays, wrap-up time) because *when* something happens is part of the
semantics; everything else is derived from first principles at each step.

Every operation checks before it changes anything and raises ``Refused(code)`` with
the engine's error code, so a refused request leaves the model unchanged too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from routing.config import RoutingConfig
from routing.territory import Territories

RINGS = 3
PAUSED_NO_ANSWER = "sans réponse"


class Refused(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class MTask:
    id: str
    channel: str
    dept: str
    region: str
    groups: tuple[str, ...]
    skill: str
    lang: str
    priority: int
    ck: str
    enq: int  # the place in the queue (ms): kept by resumes, callbacks and requeues
    created: int
    level: int = 0
    state: str = "waiting"
    vol: str = ""
    ring: str = ""
    pref: str = ""
    pref_until: int = 0
    need_until: int = 0
    outcome: str = ""
    reason: str = ""
    answered: bool = False
    resumed: bool = False
    offered_at: int = 0
    excl: tuple[str, ...] = ()  # volunteers who passed it on for a skill: never offered back
    acc_misses: int = 0  # the misses in a row its last accept cleared (undone by a give-back)
    passed_on: str = ""  # the skill a volunteer passed it on for (kept by a resume)

    @property
    def cls(self) -> str:
        return "chat" if self.channel == "chat" else "voice"

    def score(self) -> tuple[int, int, str]:
        """Queue order: highest priority, then earliest place, then id."""
        return (-self.priority, self.enq, self.id)


@dataclass
class MVolunteer:
    id: str
    dept: str
    region: str
    groups: tuple[str, ...]
    skills: frozenset[str]
    langs: frozenset[str]
    chat_cap: int
    idle_since: int
    presence: str = "logged_out"
    reason: str = ""
    reserved: str = ""
    misses: int = 0
    load: dict[str, int] = field(default_factory=lambda: {"voice": 0, "chat": 0})

    def scopes(self) -> set[str]:
        return {f"d:{self.dept}", *(f"g:{g}" for g in self.groups), f"r:{self.region}", "n"}


def task_ring_scopes(t: MTask, ring: int) -> set[str]:
    if ring == 0:
        return {f"d:{t.dept}"}
    if ring == 1:
        return {f"g:{g}" for g in t.groups}
    if ring == 2:
        return {f"r:{t.region}"}
    return {"n"}


def ring_of(t: MTask, v: MVolunteer) -> int:
    """0 same département, 1 a shared group, 2 same région, 3 anywhere."""
    if v.dept == t.dept:
        return 0
    if set(t.groups) & set(v.groups):
        return 1
    if v.region == t.region:
        return 2
    return 3


class Model:
    """The routing of one line, as DESIGN.md describes it."""

    def __init__(self, config: RoutingConfig, territories: Territories, now: int) -> None:
        cfg = config.to_redis()
        self.ms = {k: int(v) for k, v in cfg.items() if k.endswith("_ms")}
        self.thresholds = [
            0,
            self.ms["widen_group_ms"],
            self.ms["widen_region_ms"],
            self.ms["widen_national_ms"],
        ]
        self.max_no_answer = int(cfg["max_no_answer"])
        self.leave_to_closer = config.leave_to_closer
        self.territories = territories
        self.now = now
        self.tasks: dict[str, MTask] = {}
        self.vols: dict[str, MVolunteer] = {}
        self.timers: dict[str, int] = {}  # member -> due (ms), as the engine names them
        # caller key -> (place, priority, until, skill the call was passed on for, and by whom)
        self.resume: dict[str, tuple[int, int, int, str, tuple[str, ...]]] = {}
        self.recent: dict[str, tuple[str, int]] = {}  # caller key -> (volunteer, until)

    # Who may take what -----------------------------------------------------------------

    def blocked(self, v: MVolunteer) -> bool:
        """After a decline or a miss, no offer until the delay's timer has run."""
        return f"u:{v.id}" in self.timers

    def free_for(self, v: MVolunteer, cls: str) -> bool:
        if v.presence != "available" or v.reserved or self.blocked(v):
            return False
        if cls == "voice":
            return v.load["voice"] == 0 and v.load["chat"] == 0
        return v.load["voice"] == 0 and v.load["chat"] < v.chat_cap

    def eligible(self, t: MTask, v: MVolunteer) -> bool:
        if t.pref_until > self.now:  # a returning caller's or a named colleague's turn
            return t.pref == v.id
        if v.id in t.excl:
            return False
        if ring_of(t, v) > t.level:
            return False
        if t.need_until > self.now:
            if t.skill and t.skill not in v.skills:
                return False
            if t.lang and t.lang not in v.langs:
                return False
        return True

    def on_duty(self) -> list[MVolunteer]:
        return [v for v in self.vols.values() if v.presence == "available"]

    def target_level(self, t: MTask) -> int:
        """The ring reached by age, then past every ring with nobody on duty."""
        level = t.level
        for ring in range(t.level + 1, RINGS + 1):
            if self.now - t.enq >= self.thresholds[ring]:
                level = ring
        while level < RINGS and not any(ring_of(t, v) <= level for v in self.on_duty()):
            level += 1
        return level

    def best_volunteer(self, t: MTask) -> MVolunteer | None:
        """Closest ring, then longest idle, then id."""
        free = [v for v in self.vols.values() if self.free_for(v, t.cls) and self.eligible(t, v)]
        return min(free, key=lambda v: (ring_of(t, v), v.idle_since, v.id), default=None)

    def best_task(self, v: MVolunteer) -> MTask | None:
        """Highest priority always. Within it: first the tasks that have waited
        local_first_max_wait (all of them when that is 0), by earliest place; then the
        closest (their own caller, then ring), then earliest place; with leave_to_closer, last
        the tasks never offered yet, needing no skill or language now, for which a volunteer
        of a closer ring is on duty, by earliest place. Ties
        by id. (The engine looks at most 64 tasks past the first of a ring for one not left
        to a closer volunteer; the examples never queue that many.)"""
        waiting = [
            t
            for t in self.tasks.values()
            if t.state == "waiting" and self.free_for(v, t.cls) and self.eligible(t, v)
        ]
        head = min(waiting, key=MTask.score, default=None)
        if head is None:
            return None
        cap = self.ms["local_first_max_wait_ms"]

        def closeness(t: MTask) -> int:
            return -1 if t.pref == v.id else ring_of(t, v)

        def tier(t: MTask) -> int:
            if cap <= 0 or self.now - t.enq >= cap:
                return 0
            ring = closeness(t)
            needs = t.need_until > self.now and bool(t.skill or t.lang)
            if (
                self.leave_to_closer
                and not t.offered_at
                and not needs
                and any(ring_of(t, w) < ring for w in self.on_duty())
            ):
                return 2
            return 1

        def order(t: MTask) -> tuple[int, int, int, str]:
            k = tier(t)
            return (k, closeness(t) if k == 1 else 0, t.enq, t.id)

        return min((t for t in waiting if t.priority == head.priority), key=order)

    # Moves shared by the transitions ----------------------------------------------------

    def reserve(self, t: MTask, v: MVolunteer) -> None:
        t.state, t.vol, t.ring, t.offered_at = "reserved", v.id, str(ring_of(t, v)), self.now
        v.reserved = t.id
        self.timers.pop(f"w:{t.id}", None)
        self.timers[f"r:{t.id}"] = self.now + self.ms["ring_ms"]

    def dispatch_task(self, t: MTask) -> None:
        if t.state == "waiting":
            v = self.best_volunteer(t)
            if v:
                self.reserve(t, v)

    def dispatch_volunteer(self, v: MVolunteer) -> None:
        t = self.best_task(v)
        if t:
            self.reserve(t, v)

    def schedule(self, t: MTask) -> None:
        """The next instant something changes for a waiting task without any event."""
        moments = [t.enq + self.thresholds[r] for r in range(t.level + 1, RINGS + 1)]
        moments += [t.need_until, t.pref_until]
        due = min((m for m in moments if m > self.now), default=None)
        if due is None:
            self.timers.pop(f"w:{t.id}", None)
        else:
            self.timers[f"w:{t.id}"] = due

    def settle(self, t: MTask) -> None:
        """A waiting task looks again at its ring, its next deadline and who may take it."""
        t.level = max(t.level, self.target_level(t))
        self.schedule(t)
        self.dispatch_task(t)

    def requeue(self, t: MTask) -> None:
        t.state, t.vol = "waiting", ""
        self.timers.pop(f"r:{t.id}", None)
        self.settle(t)

    def create(self, t: MTask) -> None:
        self.tasks[t.id] = t
        self.settle(t)

    def end(self, t: MTask, outcome: str, reason: str) -> None:
        for kind in "wrx":
            self.timers.pop(f"{kind}:{t.id}", None)
        t.state, t.outcome, t.reason = "ended", outcome, reason

    def release(self, v: MVolunteer, t: MTask) -> None:
        v.load[t.cls] -= 1
        if v.load["voice"] == 0 and v.load["chat"] == 0:
            v.idle_since = self.now
        self.dispatch_volunteer(v)

    def empty_scopes(self, scopes: set[str], but: MVolunteer | None = None) -> set[str]:
        """The scopes in which nobody (but this volunteer) is on duty."""
        others = [v for v in self.on_duty() if v is not but]
        return {s for s in scopes if not any(s in v.scopes() for v in others)}

    def skip_empty_rings(self, emptied: set[str]) -> None:
        """Tasks of rings nobody is on duty in any more widen at once, in queue order."""
        touched = [
            t
            for t in self.tasks.values()
            if t.state == "waiting"
            and any(task_ring_scopes(t, r) & emptied for r in range(t.level + 1))
        ]
        for t in sorted(touched, key=MTask.score):
            if t.state == "waiting" and self.target_level(t) > t.level:
                self.settle(t)

    def forget_preferences(self, v: MVolunteer) -> None:
        """A preferred volunteer's turn lasts only while they are on duty."""
        for t in sorted(self.tasks.values(), key=MTask.score):
            if t.state == "waiting" and t.pref == v.id:
                t.pref, t.pref_until = "", 0
                self.settle(t)

    def pass_preference(self, t: MTask, vid: str) -> None:
        """The volunteer a task waited for declined or missed it: the rings apply now."""
        if t.pref == vid:
            t.pref, t.pref_until = "", 0

    def leave_duty(self, v: MVolunteer, requeued: MTask | None) -> None:
        """After a volunteer stopped being available: their offer, preferences, rings."""
        emptied = self.empty_scopes(v.scopes())
        if requeued:
            self.requeue(requeued)
        self.forget_preferences(v)
        self.skip_empty_rings(emptied)

    def _task(self, tid: str) -> MTask:
        if tid not in self.tasks:
            raise Refused("unknown_task")
        return self.tasks[tid]

    # Volunteers ------------------------------------------------------------------------

    def log_in(
        self, vid: str, dept: str, skills: frozenset[str], langs: frozenset[str], chat_cap: int
    ) -> None:
        territory = self.territories.territory(dept)
        v = self.vols.get(vid)
        if v is not None:  # a lower chat capacity must still hold the chats in hand and ringing
            ringing = v.reserved and self.tasks[v.reserved].cls == "chat"
            if v.load["chat"] + (1 if ringing else 0) > chat_cap:
                raise Refused("over_capacity")
        if v is None:
            v = self.vols[vid] = MVolunteer(
                vid, "", "", (), frozenset(), frozenset(), chat_cap, idle_since=self.now
            )
        # On duty: moves to the new rings at once; the rings left empty behind are skipped.
        left = self.empty_scopes(v.scopes(), but=v) if v.presence == "available" else set()
        v.dept, v.region, v.groups = territory.departement, territory.region, territory.groups
        v.skills, v.langs, v.chat_cap = skills, langs, chat_cap
        if v.presence == "available":
            self.skip_empty_rings(left)
            self.dispatch_volunteer(v)

    def set_presence(self, vid: str, presence: str, reason: str) -> None:
        v = self.vols.get(vid)
        if v is None:
            raise Refused("unknown_volunteer")
        if v.presence == presence and v.reason == reason:
            return
        was = v.presence
        v.presence, v.reason = presence, reason
        if presence == "available":
            v.misses = 0
            if was != "available" and v.load["voice"] == 0 and v.load["chat"] == 0:
                v.idle_since = self.now
            self.dispatch_volunteer(v)
            return
        offered = self.tasks[v.reserved] if v.reserved else None
        v.reserved = ""
        if was == "available":
            self.leave_duty(v, offered)
        elif offered:
            self.requeue(offered)

    def accept(self, vid: str, tid: str) -> None:
        t = self._task(tid)
        if t.state == "assigned" and t.vol == vid:
            return
        if t.state in ("ended", "wrapup"):
            raise Refused("task_already_ended")
        if t.state != "reserved":
            raise Refused("offer_expired")
        if t.vol != vid:
            raise Refused("offer_not_yours")
        if self.now > t.offered_at + self.ms["ring_ms"]:
            raise Refused("offer_expired")
        v = self.vols[vid]
        v.load[t.cls] += 1
        t.acc_misses = v.misses
        v.reserved, v.misses, v.idle_since = "", 0, self.now
        t.state, t.answered = "assigned", True
        self.timers.pop(f"r:{tid}", None)
        if t.ck:
            self.recent[t.ck] = (vid, self.now + self.ms["recent_caller_ms"])
        self.dispatch_volunteer(v)

    def decline(self, vid: str, tid: str) -> None:
        t = self._task(tid)
        if t.state in ("ended", "wrapup"):
            raise Refused("task_already_ended")
        if t.state != "reserved":
            raise Refused("offer_expired")
        if t.vol != vid:
            raise Refused("offer_not_yours")
        v = self.vols[vid]
        v.reserved = ""
        self.timers[f"u:{vid}"] = self.now + self.ms["reject_delay_ms"]
        self.pass_preference(t, vid)
        self.requeue(t)

    def complete(self, vid: str, tid: str) -> None:
        t = self._task(tid)
        if t.state in ("ended", "wrapup"):
            raise Refused("task_already_ended")
        if t.state != "assigned" or (vid and t.vol != vid):
            raise Refused("task_not_assigned")
        self._to_wrapup(t)

    def _to_wrapup(self, t: MTask) -> None:
        t.state, t.outcome = "wrapup", "completed"
        self.timers[f"x:{t.id}"] = self.now + self.ms["wrapup_ms"]

    def finish_wrapup(self, vid: str, tid: str) -> None:
        if not vid:
            raise Refused("volunteer_required")
        t = self._task(tid)
        if t.state != "wrapup" or t.vol != vid:
            raise Refused("not_in_wrapup")
        self.end(t, "completed", "")
        self.release(self.vols[t.vol], t)

    def transfer(self, vid: str, tid: str, skill: str, target: str) -> None:
        if not skill and not target:
            raise Refused("transfer_without_target")
        t = self._task(tid)
        if t.state in ("ended", "wrapup"):
            raise Refused("task_already_ended")
        if t.state != "assigned" or t.vol != vid:
            raise Refused("task_not_assigned")
        if target and (
            target == vid or target not in self.vols or self.vols[target].presence != "available"
        ):
            raise Refused("transfer_target_unavailable")
        if skill:
            t.skill, t.need_until = skill, self.now + self.ms["skill_relax_ms"]
            t.passed_on = skill
            if not target and vid not in t.excl:
                t.excl += (vid,)
        if target:
            t.pref, t.pref_until = target, self.now + self.ms["transfer_wait_ms"]
        # The task looks for someone else while the volunteer still holds it, then they let go.
        self.requeue(t)
        self.release(self.vols[vid], t)

    def give_back(self, vid: str, tid: str) -> None:
        """The volunteer's phone failed after the accept: a missed offer, the task keeps its
        place and looks for someone else first."""
        t = self._task(tid)
        if t.state in ("ended", "wrapup"):
            raise Refused("task_already_ended")
        if t.state != "assigned" or t.vol != vid:
            raise Refused("task_not_assigned")
        v = self.vols[vid]
        v.misses += t.acc_misses + 1
        t.acc_misses = 0
        self.pass_preference(t, vid)
        if v.misses >= self.max_no_answer and v.presence == "available":
            v.presence, v.reason = "paused", PAUSED_NO_ANSWER
            ringing = self.tasks[v.reserved] if v.reserved else None  # another chat ringing
            v.reserved = ""
            emptied = self.empty_scopes(v.scopes())
            self.requeue(t)
            if ringing:
                self.requeue(ringing)
            self.release(v, t)
            self.forget_preferences(v)
            self.skip_empty_rings(emptied)
        else:
            self.timers[f"u:{vid}"] = self.now + self.ms["no_answer_delay_ms"]
            self.requeue(t)
            self.release(v, t)

    # Tasks -----------------------------------------------------------------------------

    def enqueue(
        self,
        tid: str,
        channel: str,
        dept: str,
        skill: str,
        lang: str,
        priority: int,
        ck: str,
        place: int | None,
    ) -> None:
        if tid in self.tasks:
            raise Refused("task_exists")
        territory = self.territories.territory(dept)
        t = MTask(
            tid,
            channel,
            territory.departement,
            territory.region,
            territory.groups,
            skill,
            lang,
            priority,
            ck,
            self.now if place is None else place,
            self.now,
        )
        if ck:
            passed_on = ""  # the skill a volunteer passed this caller on for
            resume = self.resume.pop(ck, None)
            if resume and resume[2] >= self.now:  # abandon-resume: the old place comes back
                t.enq, t.resumed, t.priority = resume[0], True, max(priority, resume[1])
                passed_on = resume[3]
                if passed_on:
                    t.skill, t.passed_on, t.excl = passed_on, passed_on, resume[4]
            known = self.recent.get(ck)
            if (
                known
                and known[1] >= self.now
                and self.ms["known_volunteer_ms"] > 0
                and known[0] in self.vols
                and self.vols[known[0]].presence == "available"
                and (
                    not passed_on
                    or (passed_on in self.vols[known[0]].skills and known[0] not in t.excl)
                )
            ):
                t.pref, t.pref_until = known[0], self.now + self.ms["known_volunteer_ms"]
        if t.skill or lang:
            t.need_until = self.now + self.ms["skill_relax_ms"]
        self.create(t)

    def cancel(self, tid: str) -> None:
        t = self._task(tid)
        if t.state in ("wrapup", "ended"):
            return
        if t.state == "assigned":
            self._to_wrapup(t)
            return
        v = self._drop_offer(t)
        # Also waiting again after an answer (given back, transferred); a window of 0: no resume.
        if t.ck and self.ms["resume_window_ms"] > 0:
            until = self.now + self.ms["resume_window_ms"]
            self.resume[t.ck] = (t.enq, t.priority, until, t.passed_on, t.excl)
        self.end(t, "abandoned", "caller_left")
        if v:
            self.dispatch_volunteer(v)

    def _drop_offer(self, t: MTask) -> MVolunteer | None:
        if t.state != "reserved":
            return None
        v = self.vols[t.vol]
        v.reserved = ""
        return v

    def _refuse_unless_unanswered(self, t: MTask) -> None:
        if t.state in ("wrapup", "ended"):
            raise Refused("task_already_ended")
        if t.state == "assigned":
            raise Refused("task_not_waiting")

    def to_callback(self, tid: str, cid: str) -> None:
        t = self._task(tid)
        self._refuse_unless_unanswered(t)
        if cid in self.tasks:
            raise Refused("task_exists")
        v = self._drop_offer(t)
        self.end(t, "callback", cid)
        c = MTask(
            cid,
            "callback",
            t.dept,
            t.region,
            t.groups,
            t.skill,
            t.lang,
            t.priority,
            t.ck,
            t.enq,
            self.now,
            level=t.level,
            need_until=t.need_until,
            excl=t.excl,
            passed_on=t.passed_on,
        )
        self.create(c)
        if v:
            self.dispatch_volunteer(v)

    def close(self, tid: str, reason: str) -> None:
        t = self._task(tid)
        self._refuse_unless_unanswered(t)
        v = self._drop_offer(t)
        self.end(t, "closed", reason)
        if v:
            self.dispatch_volunteer(v)

    def set_priority(self, tid: str, priority: int) -> None:
        t = self._task(tid)
        if t.state not in ("waiting", "reserved"):
            raise Refused("task_not_waiting")
        t.priority = priority

    # Time ------------------------------------------------------------------------------

    def next_due(self) -> int | None:
        return min(self.timers.values(), default=None)

    def tick(self) -> None:
        """Run what fell due, in the order of the due time, then of the timer's name."""
        due = sorted((at, member) for member, at in self.timers.items() if at <= self.now)
        for _, member in due[:500]:
            kind, _, ident = member.partition(":")
            self.timers.pop(member, None)
            {"w": self._widen, "r": self._ring_timeout, "u": self._unblock, "x": self._wrapup_over}[
                kind
            ](ident)

    def _widen(self, tid: str) -> None:
        t = self.tasks.get(tid)
        if t is None or t.state != "waiting":
            return
        if t.pref and t.pref_until <= self.now:
            t.pref, t.pref_until = "", 0
        self.settle(t)

    def _ring_timeout(self, tid: str) -> None:
        t = self.tasks.get(tid)
        if t is None or t.state != "reserved":
            return
        if self.now < t.offered_at + self.ms["ring_ms"]:  # offered again since
            self.timers[f"r:{tid}"] = t.offered_at + self.ms["ring_ms"]
            return
        v = self.vols[t.vol]
        v.reserved = ""
        v.misses += 1
        if v.misses >= self.max_no_answer and v.presence == "available":
            v.presence, v.reason = "paused", PAUSED_NO_ANSWER
            self.pass_preference(t, v.id)
            self.leave_duty(v, t)
        else:
            self.timers[f"u:{v.id}"] = self.now + self.ms["no_answer_delay_ms"]
            self.pass_preference(t, v.id)
            self.requeue(t)

    def _unblock(self, vid: str) -> None:
        v = self.vols.get(vid)
        if v is not None:
            self.dispatch_volunteer(v)

    def _wrapup_over(self, tid: str) -> None:
        t = self.tasks.get(tid)
        if t is None or t.state != "wrapup":
            return
        self.end(t, "completed", "wrapup_timeout")
        self.release(self.vols[t.vol], t)
