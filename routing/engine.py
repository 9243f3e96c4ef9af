"""The routing engine: the only way to change a line's live state.

Every public coroutine runs exactly one Lua script (one atomic transition) after
validating its input, so any number of processes can drive the same Redis.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from routing import scripts
from routing.clock import Clock, buckets
from routing.config import RoutingConfig
from routing.errors import (
    ERRORS_BY_CODE,
    InvalidChatCapacity,
    InvalidIdentifier,
    InvalidPresence,
    InvalidPriority,
    InvalidTaskId,
    RoutingError,
    TransferWithoutTarget,
    UnknownChannel,
    UnknownSkill,
    UnknownTask,
    VolunteerRequired,
)
from routing.keys import FREE_SETS, Keys
from routing.metrics import Counts
from routing.models import (
    Channel,
    Presence,
    Staffing,
    Task,
    TaskSpec,
    TaskState,
    Volunteer,
    VolunteerProfile,
)
from routing.skills import LANGUAGES, SKILLS
from routing.territory import Territories, load_territories

# Volunteers per read in volunteers(): the script holds Redis while it runs (~6 µs each, so
# ~1.2 ms a batch; other clients wait that long at most).
VOLUNTEERS_PER_READ = 200
TIMER_KINDS = {"w": "widen", "r": "ring_timeout", "u": "unblock", "x": "finish_wrapup"}
# By value (a member is equal to its value too): a lookup, where calling the enum class costs
# ~0.3 µs each, three times per enqueue.
CHANNELS = {channel.value: channel for channel in Channel}
TASK_STATES = {state.value: state for state in TaskState}


class Engine:
    """Routing of one line (a hash tag in Redis) through atomic scripts."""

    def __init__(
        self,
        redis: Redis,
        *,
        line: str = "main",
        territories: Territories | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not redis.get_connection_kwargs().get("decode_responses"):
            raise ValueError("the engine needs a Redis client with decode_responses=True")
        self.redis = redis
        self.keys = Keys(line)
        self.territories = territories or load_territories()
        self.clock = clock or Clock()
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(scripts.source(name)) for name in scripts.TRANSITIONS
        }
        # What every transition sends first, ready as bytes: the client packs bytes as they
        # are, and converting these on each call was 5 % of a task life cycle's client work.
        self._shas = {name: script.sha.encode() for name, script in self._scripts.items()}
        self._cfg = self.keys.cfg.encode()
        self._snapshot = redis.register_script(scripts.snapshot_source())
        self._staffing = redis.register_script(scripts.staffing_source())
        self._volunteers = redis.register_script(scripts.volunteers_source())

    # Configuration -----------------------------------------------------------------

    async def configure(self, config: RoutingConfig, *, overwrite: bool = True) -> None:
        """Store the line's parameters; with overwrite=False only fill what is missing."""
        values = config.to_redis()
        if overwrite:
            await self.redis.hset(self.keys.cfg, mapping=values)
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            for field, value in values.items():
                pipe.hsetnx(self.keys.cfg, field, value)
            await pipe.execute()

    async def config(self) -> RoutingConfig:
        return RoutingConfig.from_redis(await self.redis.hgetall(self.keys.cfg))

    # Running scripts ---------------------------------------------------------------

    async def _run(self, name: str, *fields: str, text: str | None = None) -> Any:
        """Run one transition; its outcome (a string, enqueue's a list), or its typed error
        when it refused.

        ``fields`` are identifiers, codes and numbers; ``text`` is free text (a name, a reason)."""
        now = self.clock.now_ms()
        # Now, its quarter-hour's label (which starts with the day's) and the fields in one
        # argument (prelude.lua): the client's cost grows with each argument it packs; nine fewer
        # per task life cycle are 3.5 % fewer client instructions (bench/README.md, 2026-12-03).
        packed = f"{now}|{buckets(now)[1]}|{'|'.join(fields)}"
        if packed.count("|") != len(fields) + 1:  # a field held a '|': it would be misread
            raise InvalidIdentifier(next(field for field in fields if "|" in field))
        args = (packed,) if text is None else (packed, text)
        try:
            # EVALSHA straight from the client's execute_command: the Script object's call path,
            # and even the client's evalsha and its layer below, each repacking the arguments,
            # cost a few percent of the engine's Python time on every transition.
            result = await self.redis.execute_command(
                "EVALSHA", self._shas[name], b"1", self._cfg, *args
            )
        except NoScriptError:  # a fresh or flushed server: load the script, then run it
            script = self._scripts[name]
            result = await script(keys=[self._cfg], args=args)
        if isinstance(result, list) and result[0] == "err":  # refused, nothing changed
            raise ERRORS_BY_CODE.get(result[1], RoutingError)(result[2] or None)
        return result

    # Volunteers --------------------------------------------------------------------

    async def log_in(self, profile: VolunteerProfile) -> None:
        """Create or refresh a volunteer's routing profile (presence unchanged)."""
        territory = self.territories.territory(profile.departement)
        self._check_skills(profile.skills, profile.languages)
        capacity = profile.chat_capacity
        if not isinstance(capacity, int) or isinstance(capacity, bool) or capacity < 1:
            raise InvalidChatCapacity(str(capacity))
        await self._run(
            "log_in",
            profile.id,
            territory.departement,
            territory.region,
            ",".join(territory.groups),
            ",".join(sorted(profile.skills)),
            ",".join(sorted(profile.languages)),
            str(profile.chat_capacity),
            text=profile.name,
        )

    async def set_presence(self, volunteer_id: str, presence: Presence, reason: str = "") -> None:
        """Go available, pause (with a reason) or log out; an offer in flight moves on."""
        try:
            value = Presence(presence).value
        except ValueError:
            raise InvalidPresence(str(presence)) from None  # typed and French, like the rest
        await self._run("set_presence", volunteer_id, value, text=reason)

    async def accept(self, volunteer_id: str, task_id: str) -> None:
        """Accept the offer ringing for this volunteer; idempotent for the same volunteer."""
        await self._run("accept", volunteer_id, task_id)

    async def decline(self, volunteer_id: str, task_id: str) -> None:
        """Decline an offer: it goes to the next volunteer and keeps its place."""
        await self._run("decline", volunteer_id, task_id)

    async def complete(self, volunteer_id: str, task_id: str) -> None:
        """End the conversation; the volunteer goes to wrap-up."""
        await self._run("complete", volunteer_id, task_id)

    async def finish_wrapup(self, volunteer_id: str, task_id: str) -> None:
        """Submit the wrap-up: the capacity the task held comes back."""
        # An empty id is how the wrap-up timer speaks (tick); a caller must name who submits.
        if not volunteer_id:
            raise VolunteerRequired(task_id)
        await self._run("finish_wrapup", volunteer_id, task_id, "")

    async def transfer(
        self, volunteer_id: str, task_id: str, *, skill: str = "", to_volunteer: str = ""
    ) -> None:
        """Hand a task over to anyone with a skill, or to a named colleague first.

        Handed over to a skill alone, the task is never offered back to this volunteer.
        """
        if not skill and not to_volunteer:
            raise TransferWithoutTarget(task_id)
        if skill:
            self._check_skills({skill}, ())
        await self._run("transfer", volunteer_id, task_id, skill, to_volunteer)

    async def give_back(self, volunteer_id: str, task_id: str) -> None:
        """The volunteer accepted but cannot be reached (their phone leg failed: busy, no
        answer, voicemail; or their console stayed lost while they held a chat): the task
        goes back to the queue at its place, and for them it counts as a missed offer
        (no-answer delay, paused "sans réponse" after max_no_answer in a row)."""
        await self._run("give_back", volunteer_id, task_id)

    # Tasks ---------------------------------------------------------------------------

    async def enqueue(self, spec: TaskSpec) -> Task:
        """Put a call, chat or callback in the queue; offered at once when possible.

        The task is returned as the transition left it, without its raw hash (``task()``
        reads that)."""
        self._check_task_id(spec.id)
        territory = self.territories.territory(spec.departement)
        skill, language = spec.skill or "", spec.language or ""
        self._check_skills({skill} - {""}, {language} - {""})
        self._check_priority(spec.priority)
        channel = self._channel(spec.channel)
        # Each is a catalogue value, a territory code, a group id (Territories checks them), a
        # number, or the caller's key (a keyed hash): a '|' in one is refused by _run.
        reply = await self._run(
            "enqueue",
            spec.id,
            channel,
            territory.departement,
            territory.region,
            ",".join(territory.groups),
            skill,
            language,
            str(spec.priority),
            "" if spec.place_ms is None else str(int(spec.place_ms)),
            spec.caller_key,
        )
        state, volunteer, level, ring, place, priority, resumed, preferred, created, skill = reply
        return Task(
            id=spec.id,
            channel=channel,
            state=TASK_STATES[state],
            departement=territory.departement,
            region=territory.region,
            groups=territory.groups,
            level=int(level),
            priority=int(priority),
            skill=skill,
            language=language,
            caller_key=spec.caller_key,
            place_ms=int(place),
            created_ms=int(created),
            volunteer=volunteer,
            outcome=None,
            reason="",
            ring=int(ring) if ring else None,
            preferred=preferred,
            resumed=resumed == "1",
        )

    async def cancel(self, task_id: str) -> str:
        """The caller left: abandoned if not yet answered, else the conversation ends.

        Returns 'abandoned' (their place kept for the resume window), 'wrapup' (they were
        talking) or 'already' (the task had ended: a retried callback)."""
        return str(await self._run("cancel", task_id))

    async def to_callback(self, task_id: str, callback_id: str) -> Task:
        """Replace a waiting call by a callback task that keeps its place."""
        self._check_task_id(callback_id)
        await self._run("to_callback", task_id, callback_id)
        return await self.require_task(callback_id)

    async def close(self, task_id: str, reason: str) -> None:
        """End a task nobody is handling, with a reason (e.g. 'line_closed')."""
        await self._run("close_task", task_id, text=reason)

    async def set_priority(self, task_id: str, priority: int) -> None:
        """Move a waiting task up (9) or down (0) the queue."""
        self._check_priority(priority)
        await self._run("set_priority", task_id, str(priority))

    # Timers -------------------------------------------------------------------------

    async def tick(self, limit: int = 500) -> int:
        """Run every due timer (widening, ring time, delays, wrap-up); returns how many."""
        due = await self.redis.zrangebyscore(
            self.keys.timers, "-inf", self.clock.now_ms(), start=0, num=limit
        )
        for member in due:
            kind, _, ident = member.partition(":")
            script = TIMER_KINDS.get(kind)
            try:
                if script == "finish_wrapup":
                    await self._run(script, "", ident, "timer")
                elif script:
                    await self._run(script, ident)
            except InvalidIdentifier:
                # Written before ids were checked, it can never run: left there, it would be
                # due first forever and stop every timer behind it.
                await self.redis.zrem(self.keys.timers, member)
        return len(due)

    async def next_timer_ms(self) -> int | None:
        """When the next timer is due, if any."""
        first = await self.redis.zrange(self.keys.timers, 0, 0, withscores=True)
        return int(first[0][1]) if first else None

    # Reading ------------------------------------------------------------------------

    async def task(self, task_id: str) -> Task | None:
        h = await self.redis.hgetall(self.keys.task(task_id))
        return Task.from_hash(task_id, h) if h else None

    async def require_task(self, task_id: str) -> Task:
        task = await self.task(task_id)
        if task is None:
            raise UnknownTask(task_id)
        return task

    async def volunteer(self, volunteer_id: str) -> Volunteer | None:
        h = await self.redis.hgetall(self.keys.vol(volunteer_id))
        return Volunteer.from_hash(volunteer_id, h) if h else None

    async def longest_idle(self, channel_class: str = "voice") -> Volunteer | None:
        """The volunteer free for this channel class who has waited longest, if anyone is."""
        heads = []
        for free_set in FREE_SETS[channel_class]:
            key = self.keys.free(free_set, "n")
            heads += await self.redis.zrange(key, 0, 0, withscores=True)
        first = min(heads, key=lambda head: (head[1], head[0]), default=None)
        return await self.volunteer(first[0]) if first else None

    async def volunteers(
        self,
        known: Mapping[str, Volunteer] | None = None,
        changed: Collection[str] | None = None,
    ) -> list[Volunteer]:
        """Every volunteer of the line, by id, read in batches (not one instant).

        ``known``: models from an earlier read, returned again where a volunteer's hash has
        not changed (parsing 2,000 hashes is most of a dashboard rebuild's Python). With
        ``changed`` (the dashboard's builder learns from the event stream who changed), only
        the volunteers named there and those not known are read again.
        """
        known = known or {}
        ids = sorted(await self.redis.smembers(self.keys.vols))
        stale = ids if changed is None else [v for v in ids if v in changed or v not in known]
        read = await self._read_volunteers(stale, known)
        gone = set(stale) - read.keys()
        return [read.get(vid) or known[vid] for vid in ids if vid not in gone]

    async def _read_volunteers(
        self, ids: list[str], reuse: Mapping[str, Volunteer]
    ) -> dict[str, Volunteer]:
        """These volunteers' models (none for a hash gone since), reusing unchanged ones."""
        out: dict[str, Volunteer] = {}
        for start in range(0, len(ids), VOLUNTEERS_PER_READ):
            batch = ids[start : start + VOLUNTEERS_PER_READ]
            flats = await self._volunteers(keys=[self.keys.cfg], args=batch)
            for vid, flat in zip(batch, flats, strict=True):
                if flat:
                    h = dict(zip(flat[::2], flat[1::2], strict=True))
                    known = reuse.get(vid)
                    out[vid] = known if known and known.raw == h else Volunteer.from_hash(vid, h)
        return out

    async def live_tasks(self) -> list[Task]:
        """Every task not yet ended, in queue order for waiting ones."""
        ids = sorted(await self.redis.smembers(self.keys.live))
        async with self.redis.pipeline(transaction=False) as pipe:
            for tid in ids:
                pipe.hgetall(self.keys.task(tid))
            hashes = await pipe.execute()
        tasks = [Task.from_hash(tid, h) for tid, h in zip(ids, hashes, strict=True) if h]
        return sorted(tasks, key=lambda t: (-t.priority, t.place_ms, t.id))

    async def position(self, task_id: str) -> int | None:
        """1-based place among waiting tasks of the same channel class, or None."""
        task = await self.task(task_id)
        return None if task is None else await self.place(task)

    async def place(self, task: Task) -> int | None:
        """position() of a task already read (one round trip less), None if not waiting."""
        if task.state is not TaskState.WAITING:
            return None
        rank = await self.redis.zrank(self.keys.wait(task.channel.capacity_class, "all"), task.id)
        return None if rank is None else rank + 1

    async def waiting_count(self, channel_class: str) -> int:
        return await self.redis.zcard(self.keys.wait(channel_class, "all"))

    async def recent_caller(self, caller_key: str) -> dict[str, str]:
        """The last volunteer and département of a caller helped recently ({} if none)."""
        recent = await self.redis.hgetall(self.keys.recent(caller_key))
        # Forgotten after recent_caller_s on the engine's clock; the key's TTL only cleans up.
        until = recent.pop("until", "")
        if until and int(until) < self.clock.now_ms():
            return {}
        return recent

    async def counts(self, bucket: str) -> Counts:
        """Live counters of a day ('2026-11-23') or 15-minute interval ('2026-11-23T09:45')."""
        return Counts.from_hash(await self.redis.hgetall(self.keys.stats(bucket)))

    async def snapshot(self) -> dict[str, Any]:
        """The whole live state at one instant (one read-only script)."""
        raw = await self._snapshot(keys=[self.keys.cfg], args=[])
        snap = json.loads(raw)
        snap["now"] = self.clock.now_ms()
        return snap

    async def staffing(self) -> Staffing:
        """Who is logged in and who is working: the counts the transitions keep, in one script
        (the callers ask on every incoming contact and hold announcement)."""
        logged_in, working, lanes = await self._staffing(keys=[self.keys.cfg], args=[])
        return Staffing(int(logged_in), int(working), int(lanes))

    # Validation --------------------------------------------------------------------

    @staticmethod
    def _check_priority(priority: object) -> None:
        if not isinstance(priority, int) or isinstance(priority, bool) or not 0 <= priority <= 9:
            raise InvalidPriority(str(priority))

    @staticmethod
    def _check_task_id(task_id: object) -> None:
        # A '|' would be read as a separator where the scripts keep a task id with other
        # fields in one string (the place a caller may resume, cancel.lua).
        if not isinstance(task_id, str) or not task_id or "|" in task_id:
            raise InvalidTaskId(str(task_id))

    @staticmethod
    def _channel(channel: object) -> Channel:
        try:
            return CHANNELS[channel]  # type: ignore[index]
        except (KeyError, TypeError):  # TypeError: not hashable
            raise UnknownChannel(str(channel)) from None

    @staticmethod
    def _check_skills(skills: Iterable[str], languages: Iterable[str]) -> None:
        for skill in skills:
            if skill not in SKILLS:
                raise UnknownSkill(skill)
        for language in languages:
            if language not in LANGUAGES:
                raise UnknownSkill(language)
