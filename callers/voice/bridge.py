"""Putting callers and volunteers together on the phone, driven by the engine's events.

- task_offered, phone-mode volunteer: their phone rings with a whisper; pressing 1
  accepts the offer in the engine (so a voicemail can never take a caller).
- task_assigned (voice): the volunteer's leg is dialled if not yet connected
  (softphone ``client:<identity>``, or phone with the whisper), and the caller is taken
  out of the queue (queue member update) into the task's conference.
- task_assigned (callback): the volunteer is called first; once they are in the
  conference, the caller is dialled in as a conference participant.
- task_transferred (voice): the task left its volunteer, passed on from the console or
  their softphone lost: the caller goes back to the queue at their place, told why, and
  that volunteer's leg is hung up. (Callback: the person is told another volunteer will
  call back, and the next volunteer's call dials them again.)
- offer_declined / offer_timeout / task_ended: a volunteer phone still ringing for that
  offer is hung up.
- task_completed (voice), whoever ended the call (caller, volunteer's phone, console):
  whatever is still up is hung up, the volunteer's leg and the caller's call, each once.
  A caller who hangs up on the way into the conference would otherwise leave the
  volunteer alone there.
A volunteer who does not pick up is left to the engine's ring timeout (its no-answer
path); a volunteer leg that fails after assignment hands the task back to the queue, and
so does a softphone that drops mid-call (the console, not the softphone, ends a call, so
a softphone leg ending while the call is still theirs is a lost line, not a goodbye;
unless the conference ended around it first, which their <Dial>'s action tells: the
caller hung up). A leg's status counts only while it is its volunteer's current leg.

Events are read through a Redis consumer group, so with several app processes each
event is handled once, but two events of one task may be handled at the same time by two
processes: every handler re-reads the current state, so a replayed or stale event does
nothing wrong, and the caller is moved under a lock per task, to where the task's state
wants them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from redis.exceptions import LockNotOwnedError, ResponseError
from twilio.base.exceptions import TwilioRestException
from twilio.twiml.voice_response import VoiceResponse

from callers.context import Callers
from callers.reach import ReachMode, VolunteerReach
from callers.voice import prompts as P
from callers.voice.state import TTL_S, caller_off, get_call, get_task, new_id, once, set_task
from callers.voice.twiml import Speaker
from routing.errors import RoutingError
from routing.models import Channel, Task, TaskState

log = logging.getLogger("callers.bridge")

FINAL_STATUSES = {"completed", "busy", "failed", "no-answer", "canceled"}
RECLAIM_IDLE_MS = 30_000  # an event unacknowledged this long: its process is presumed dead
# Longer than moving a caller can take (two Twilio REST requests of at most 10 s each), so
# the lock never expires under its holder; shorter than RECLAIM_IDLE_MS, so a process
# waiting for it is not taken for dead.
PLACE_LOCK_S = 25
EventHook = Callable[[dict[str, str]], Awaitable[None]]
Action = Callable[[Task, dict[str, str]], Awaitable[None]]


class Bridge:
    """Reacts to engine events with Twilio REST calls, and serves the volunteer legs."""

    def __init__(self, ctx: Callers) -> None:
        self.ctx = ctx
        self.s = Speaker(ctx.settings)
        self.hooks: list[EventHook] = []  # other consumers (the chat rooms) plug in here
        # The engine events the bridge acts on; it ignores every other kind, unread.
        self._actions: dict[str, Action] = {
            "task_offered": self._offered,
            "task_assigned": self._assigned,
            "task_transferred": self._handed_over,
            "offer_declined": self._offer_refused,
            "offer_timeout": self._offer_refused,
            "task_completed": self._conversation_over,
            "task_ended": self._task_ended,
        }

    # Reading the engine's event stream ---------------------------------------------

    async def ensure_group(self, start: str = "$") -> None:
        """Create the consumer group ('$': only events from now on; '0': the whole stream)."""
        try:
            await self.ctx.redis.xgroup_create(
                self.ctx.engine.keys.events, self.ctx.keys.bridge_group, id=start, mkstream=True
            )
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def drain(self, consumer: str = "bridge", block_ms: int | None = None) -> int:
        """Handle every event delivered to this consumer; returns how many."""
        handled = 0
        while True:
            batches = await self.ctx.redis.xreadgroup(
                self.ctx.keys.bridge_group, consumer,
                {self.ctx.engine.keys.events: ">"}, count=100, block=block_ms,
            )
            if not batches:
                return handled
            for _stream, entries in batches:
                for entry_id, fields in entries:
                    try:
                        await self.handle(fields)
                    except Exception:  # one bad event must not stop the line
                        log.exception("event %s failed", entry_id)
                    await self.ctx.redis.xack(
                        self.ctx.engine.keys.events, self.ctx.keys.bridge_group, entry_id
                    )
                    handled += 1
            if block_ms is not None:
                return handled

    async def reclaim(self, consumer: str, idle_ms: int = RECLAIM_IDLE_MS) -> int:
        """Handle events another process took but never acknowledged (it died meanwhile)."""
        handled, start = 0, "0-0"
        while True:
            reply = await self.ctx.redis.xautoclaim(
                self.ctx.engine.keys.events, self.ctx.keys.bridge_group, consumer,
                min_idle_time=idle_ms, start_id=start, count=100,
            )
            start, entries = reply[0], reply[1]
            for entry_id, fields in entries:
                if fields:  # None: trimmed from the stream meanwhile
                    try:
                        await self.handle(fields)
                    except Exception:
                        log.exception("reclaimed event %s failed", entry_id)
                await self.ctx.redis.xack(
                    self.ctx.engine.keys.events, self.ctx.keys.bridge_group, entry_id
                )
                handled += 1
            if start == "0-0":
                return handled

    async def run(self, stop: asyncio.Event, consumer: str = "bridge") -> None:
        """The loop web/ runs in each process (one consumer name per process)."""
        await self.ensure_group()
        loop = asyncio.get_running_loop()
        next_reclaim = 0.0
        while not stop.is_set():
            try:
                if loop.time() >= next_reclaim:
                    next_reclaim = loop.time() + RECLAIM_IDLE_MS / 1000
                    await self.reclaim(consumer)
                await self.drain(consumer, block_ms=1000)
            except ResponseError as error:
                if "NOGROUP" not in str(error):
                    raise
                await self.ensure_group()  # Redis lost the group (flushed, restarted)
            except Exception:
                log.exception("bridge loop error")
                await asyncio.sleep(1)

    async def handle(self, event: dict[str, str]) -> None:
        """Dispatch one engine event."""
        kind, task_id = event.get("type", ""), event.get("task", "")
        for hook in self.hooks:
            await hook(event)
        act = self._actions.get(kind)
        if act is None or not task_id:
            return  # no task read for the rest (queued, widened...): a round trip per event
        task = await self.ctx.engine.task(task_id)
        if task is None or task.channel is Channel.CHAT:
            return
        await act(task, event)

    async def _offer_refused(self, task: Task, event: dict[str, str]) -> None:
        await self._hang_up_legs(task.id, event.get("volunteer", ""), accepted_too=False)

    async def _task_ended(self, task: Task, _event: dict[str, str]) -> None:
        await self._hang_up_legs(task.id, "", accepted_too=False)

    async def _conversation_over(self, task: Task, _event: dict[str, str]) -> None:
        """A call completed, whoever ended it: nobody is left on the line.

        A caller who hangs up inside the conference ends it (end_conference_on_exit), but one
        who hangs up on the way there, just after the volunteer's "yes", would leave the
        volunteer alone in it until they hung up themselves; and a volunteer who ends the
        call from the console would leave the caller there."""
        if task.channel is Channel.VOICE:
            await self._hang_up_legs(task.id, "", accepted_too=True)
            await self._hang_up_caller(task.id)

    # Offers and assignments --------------------------------------------------------------

    async def _reach(self, vid: str) -> VolunteerReach | None:
        reach = await self.ctx.reach(vid)
        if reach is None or (reach.mode is ReachMode.PHONE and not reach.phone):
            log.warning("no way to ring volunteer %s (unknown, or no number)", vid)
            return None
        return reach

    async def _by_phone(self, task: Task) -> bool:
        """Calls always; callbacks only with a number (an e-mail reply is the console's)."""
        if task.channel is not Channel.CALLBACK:
            return True
        return bool((await get_task(self.ctx, task.id)).get("num"))

    async def _offered(self, task: Task, event: dict[str, str]) -> None:
        vid = event.get("volunteer", "")
        if task.state is not TaskState.RESERVED or task.volunteer != vid:
            return
        if not await self._by_phone(task):
            return
        reach = await self._reach(vid)
        if reach is None or reach.mode is not ReachMode.PHONE:
            return  # a softphone volunteer accepts in the console
        if not await once(self.ctx, f"offer:{task.id}:{vid}:{task.raw.get('offered_at', '')}"):
            return
        ring_s = int((await self.ctx.engine.config()).ring_s)
        await self._dial_volunteer(task, reach, purpose="offer", ring_s=ring_s)

    async def _assigned(self, task: Task, event: dict[str, str]) -> None:
        vid = event.get("volunteer", "")
        if task.state is not TaskState.ASSIGNED or task.volunteer != vid:
            return
        # Once per assignment: the same volunteer may get the task again after a lost line.
        assignment = f"assigned:{task.id}:{vid}:{task.raw.get('assigned_at', '')}"
        if not await self._by_phone(task) or not await once(self.ctx, assignment):
            return
        meta = await get_task(self.ctx, task.id)
        if not meta.get("conf"):
            await set_task(self.ctx, task.id, conf=new_id("k"))
        leg_id = await self._current_leg_id(task.id, vid)
        leg = await self.ctx.redis.hgetall(self.ctx.keys.leg(leg_id)) if leg_id else {}
        if leg.get("accepted") != "1" or leg.get("done") == "1":  # done: a line lost before
            reach = await self._reach(vid)
            if reach is None:
                await self._give_back(task.id, vid)
                return
            await self._dial_volunteer(task, reach, purpose="assigned", ring_s=30)
        if task.channel is Channel.VOICE:
            await self._place_caller(task.id)

    async def _handed_over(self, task: Task, event: dict[str, str]) -> None:
        """The task left its volunteer (transferred, or their line lost): the caller waits
        in the queue again at their place, and that volunteer's leg is hung up."""
        vid, lost = event.get("volunteer", ""), event.get("back") == "1"
        if task.channel is Channel.VOICE:
            await self._place_caller(task.id, why="lost" if lost else "transfer")
        again = task.volunteer == vid  # a late event: the task came back to them since
        if again and task.state is TaskState.ASSIGNED:
            return  # their leg now is a new one
        if task.channel is Channel.CALLBACK and await self._by_phone(task):
            await self._tell_callback_person(task.id, vid)
        # Offered to them again: a leg still ringing is that offer's, not the old call's.
        await self._hang_up_legs(task.id, vid, accepted_too=True, ringing_too=not again)

    async def _dial_volunteer(
        self, task: Task, reach: VolunteerReach, *, purpose: str, ring_s: int
    ) -> None:
        leg_id = new_id("l")
        fields = {"task": task.id, "vol": reach.volunteer_id, "mode": reach.mode.value,
                  "purpose": purpose, "accepted": "0"}
        leg_key, legs_key = self.ctx.keys.leg(leg_id), self.ctx.keys.task_legs(task.id)
        async with self.ctx.redis.pipeline(transaction=True) as pipe:  # one round trip
            pipe.hset(leg_key, mapping=fields)
            pipe.expire(leg_key, TTL_S)
            pipe.hset(legs_key, reach.volunteer_id, leg_id)
            pipe.expire(legs_key, TTL_S)
            await pipe.execute()
        try:
            call_sid = await self.ctx.rest.create_call(
                to=reach.address,
                from_=self.ctx.settings.twilio_number,
                url=self.s.url("leg/answer", leg=leg_id),
                method="POST",
                status_callback=self.s.url("leg/status", leg=leg_id),
                status_callback_method="POST",
                ring_s=ring_s,
            )
        except TwilioRestException as error:
            log.warning("could not call volunteer %s: %s", reach.volunteer_id, error.code)
            if purpose == "assigned":
                await self._give_back(task.id, reach.volunteer_id)
            return
        await self.ctx.redis.hset(self.ctx.keys.leg(leg_id), "sid", call_sid)

    async def _place_caller(self, task_id: str, why: str = "transfer") -> None:
        """Move the caller where the task's state wants them: in the conference once it is
        assigned, back in the queue when it waits again (`why` is what they are told).

        Under a lock per task, reading the state under it: a transfer and the next
        assignment, handled at once by two processes, must not leave the caller in the
        queue while the next volunteer waits for them in the conference."""
        lock = self.ctx.redis.lock(
            self.ctx.keys.caller_place(task_id), timeout=PLACE_LOCK_S,
            blocking_timeout=PLACE_LOCK_S,
        )
        if not await lock.acquire():
            log.error("caller of %s not moved: the task's lock stayed taken", task_id)
            return
        try:
            await self._move_caller(task_id, why)
        finally:
            try:
                await lock.release()
            except LockNotOwnedError:  # cannot happen while a move is shorter than the lock
                log.warning("lock of %s expired during a move", task_id)

    async def _move_caller(self, task_id: str, why: str) -> None:
        task = await self.ctx.engine.task(task_id)
        meta = await get_task(self.ctx, task_id)
        call_sid = meta.get("call", "")
        if task is None or not call_sid:
            return
        if task.state is TaskState.ASSIGNED:
            want = task.volunteer
        elif task.state in {TaskState.WAITING, TaskState.RESERVED}:
            want = ""
        else:
            return  # over: ending the call is _conversation_over's
        now = meta.get("with", "")  # the volunteer whose conference the caller was sent to
        if now == want:
            return
        if want and now:
            # Still in the task's conference (the next volunteer took the call before the
            # hand-over was handled): that is where the next volunteer joins them.
            moved = True
        elif want:
            moved = await self._bring_caller(task_id, call_sid)
        else:
            moved = await self._redirect_caller(
                task_id, call_sid, self.s.url("back-in-queue", task=task_id, why=why)
            )
        if moved:
            await set_task(self.ctx, task_id, **{"with": want})

    async def _bring_caller(self, task_id: str, call_sid: str) -> bool:
        """Take the waiting caller out of the queue into the conference."""
        state = await get_call(self.ctx, call_sid)
        url = self.s.url("join", task=task_id)
        if state.get("inq") == "1" and state.get("qsid"):
            try:
                await self.ctx.rest.redirect_queue_member(
                    state["qsid"], call_sid, url=url, method="POST"
                )
                return True
            except TwilioRestException as error:
                # Not in the queue any more (e.g. in the callback menu): redirect the call.
                log.info("caller of %s not in the queue: %s", task_id, error.code)
        return await self._redirect_caller(task_id, call_sid, url)

    async def _redirect_caller(self, task_id: str, call_sid: str, url: str) -> bool:
        try:
            await self.ctx.rest.update_call(call_sid, url=url, method="POST")
        except TwilioRestException as error:
            # The caller is gone (hung up meanwhile): their status callback ends the task.
            log.info("caller of %s not redirected: %s", task_id, error.code)
            return False
        return True

    async def _tell_callback_person(self, task_id: str, vid: str) -> None:
        """A callback passed on mid-call: the person hears that someone will call back
        (their call placed by that volunteer's leg: not one a later volunteer placed)."""
        leg_id = await self._current_leg_id(task_id, vid)
        call_sid = await self.ctx.redis.hget(self.ctx.keys.leg(leg_id), "person") if leg_id else ""
        if not call_sid:
            return
        r = self.s.goodbye(VoiceResponse(), P.CALLBACK_HANDED_OVER)
        try:
            await self.ctx.rest.update_call(call_sid, twiml=str(r))
        except TwilioRestException as error:
            log.info("person called back not told: %s", error.code)

    async def _hang_up_legs(
        self, task_id: str, vid: str, *, accepted_too: bool, ringing_too: bool = True
    ) -> None:
        """Hang up the task's volunteer legs still up (only `vid`'s when given)."""
        legs = await self.ctx.redis.hgetall(self.ctx.keys.task_legs(task_id))
        for volunteer, leg_id in legs.items():
            if vid and volunteer != vid:
                continue
            leg = await self.ctx.redis.hgetall(self.ctx.keys.leg(leg_id))
            if not leg.get("sid") or leg.get("done") == "1":
                continue
            if leg.get("accepted") == "1" and not accepted_too:
                continue
            if leg.get("accepted") != "1" and not ringing_too:
                continue
            await self._hang_up(leg["sid"])
            await self.ctx.redis.hset(self.ctx.keys.leg(leg_id), "done", "1")

    async def _hang_up_caller(self, task_id: str) -> None:
        call_sid = (await get_task(self.ctx, task_id)).get("call", "")
        if call_sid and await caller_off(self.ctx, call_sid):
            await self._hang_up(call_sid)

    async def _hang_up(self, call_sid: str) -> None:
        try:
            await self.ctx.rest.update_call(call_sid, status="completed")
        except TwilioRestException as error:
            log.info("hang-up of a leg failed: %s", error.code)

    async def _give_back(self, task_id: str, vid: str) -> None:
        """The volunteer could not be reached after accepting: the task goes back, same place."""
        try:
            await self.ctx.engine.give_back(vid, task_id)
        except RoutingError as error:
            log.info("task %s not given back: %s", task_id, error.code)

    # The volunteer's leg (webhooks) ------------------------------------------------------

    async def _current_leg_id(self, task_id: str, vid: str) -> str | None:
        """The volunteer's latest leg for this task (a new dial replaces it)."""
        return await self.ctx.redis.hget(self.ctx.keys.task_legs(task_id), vid)

    async def _leg(self, query: dict[str, str]) -> dict[str, str]:
        leg_id = query.get("leg", "")
        return await self.ctx.redis.hgetall(self.ctx.keys.leg(leg_id)) if leg_id else {}

    async def _context_phrase(self, task_id: str) -> str:
        task = await self.ctx.engine.task(task_id)
        if task is None:
            return ""
        meta = await get_task(self.ctx, task_id)
        topic = self.ctx.settings.topics.get(meta.get("topic", ""), ("", ""))[0]
        where = "" if meta.get("national") == "1" else (
            f"Département {P.spoken_departement(task.departement)}. "
        )
        return where + (f"Sujet : {topic}." if topic else "")

    async def leg_answer(self, form: dict[str, str], query: dict[str, str]) -> VoiceResponse:
        """The volunteer picked up: a whisper and "press 1", or straight in (softphone)."""
        leg = await self._leg(query)
        r = VoiceResponse()
        if not leg:
            return self.s.goodbye(r, P.WHISPER_TAKEN)
        task = await self.ctx.engine.task(leg["task"])
        if task is None or task.state in {TaskState.ENDED, TaskState.WRAPUP}:
            return self.s.goodbye(r, P.WHISPER_TAKEN)
        if leg["mode"] == ReachMode.SOFTPHONE.value and leg["purpose"] == "assigned":
            return await self._join_volunteer(query["leg"], leg, r)
        context = await self._context_phrase(leg["task"])
        template = P.WHISPER_CALLBACK if task.channel is Channel.CALLBACK else P.WHISPER_CALL
        for _ in range(2):
            g = self.s.gather(r, "leg/key", timeout=6, leg=query["leg"])
            self.s.say(g, template.format(context=context))
        return self.s.goodbye(r, P.WHISPER_MISSED)

    async def leg_key(self, form: dict[str, str], query: dict[str, str]) -> VoiceResponse:
        """The volunteer pressed a key during the whisper: 1 takes the call."""
        leg = await self._leg(query)
        r = VoiceResponse()
        if not leg:
            return self.s.goodbye(r, P.WHISPER_TAKEN)
        if form.get("Digits") != "1":
            self.s.redirect(r, "leg/answer", leg=query["leg"])
            return r
        if leg["purpose"] == "offer":
            # Marked first: the task_assigned event must not dial this volunteer again.
            await self.ctx.redis.hset(self.ctx.keys.leg(query["leg"]), "accepted", "1")
            try:
                await self.ctx.engine.accept(leg["vol"], leg["task"])
            except RoutingError as error:
                await self.ctx.redis.hset(self.ctx.keys.leg(query["leg"]), "accepted", "0")
                log.info("whisper accept of %s refused: %s", leg["task"], error.code)
                return self.s.goodbye(r, P.WHISPER_TAKEN)
        return await self._join_volunteer(query["leg"], leg, r)

    async def _join_volunteer(
        self, leg_id: str, leg: dict[str, str], r: VoiceResponse
    ) -> VoiceResponse:
        await self.ctx.redis.hset(self.ctx.keys.leg(leg_id), mapping={
            "accepted": "1", "sid": leg.get("sid", "")})
        task = await self.ctx.engine.task(leg["task"])
        meta = await get_task(self.ctx, leg["task"])
        conf = meta.get("conf") or new_id("k")
        if not meta.get("conf"):
            await set_task(self.ctx, leg["task"], conf=conf)
        is_callback = task is not None and task.channel is Channel.CALLBACK
        self.s.say(r, P.VOLUNTEER_DIALING if is_callback else P.VOLUNTEER_CONNECTED)
        dial = r.dial(action=self.s.url("leg/after", leg=leg_id), method="POST")
        dial.conference(
            conf,
            start_conference_on_enter=True,
            end_conference_on_exit=is_callback,
            beep=False,
            wait_url=self.ctx.settings.hold_music_url,
        )
        if is_callback:
            await self._dial_callback_caller(leg_id, leg["task"], conf)
        return r

    async def _dial_callback_caller(self, leg_id: str, task_id: str, conf: str) -> None:
        """Callback tasks: the volunteer is on the line, now call the person back (once per
        volunteer leg: a callback passed on is dialled again by the next volunteer's)."""
        if not await once(self.ctx, f"cbdial:{leg_id}"):
            return
        meta = await get_task(self.ctx, task_id)
        number = self.ctx.identity.open(meta.get("num", ""))
        if not number:
            log.info("callback %s has no phone number (e-mail only)", task_id)
            return
        try:
            call_sid = await self.ctx.rest.add_participant(
                conf,
                from_=self.ctx.settings.twilio_number,
                to=number,
                label="caller",
                status_callback=self.s.url("callback-leg/status", task=task_id, leg=leg_id),
                status_callback_method="POST",
                status_callback_event=["completed"],
                start_conference_on_enter=True,
                end_conference_on_exit=True,
                beep="false",
                ring_s=30,
            )
        except TwilioRestException as error:
            log.warning("callback %s: dialling the caller failed: %s", task_id, error.code)
            return
        await set_task(self.ctx, task_id, call=call_sid)
        await self.ctx.redis.hset(self.ctx.keys.leg(leg_id), "person", call_sid)

    async def leg_after(self, form: dict[str, str], query: dict[str, str]) -> VoiceResponse:
        """The volunteer's <Dial> ended. With their leg still up, the conference ended around
        them (the caller left it): what follows is a goodbye, not a lost line."""
        leg = await self._leg(query)
        if leg and form.get("CallStatus") not in FINAL_STATUSES:
            await self.ctx.redis.hset(self.ctx.keys.leg(query["leg"]), "confover", "1")
        return self.s.goodbye(VoiceResponse(), P.VOLUNTEER_CALL_OVER)

    async def leg_status(self, form: dict[str, str], query: dict[str, str]) -> VoiceResponse:
        """A volunteer's leg changed: after a conversation, the task is completed."""
        if form.get("CallStatus") not in FINAL_STATUSES:
            return VoiceResponse()
        leg_id = query.get("leg", "")
        leg = await self._leg(query)
        if not leg or not await once(self.ctx, f"legend:{leg_id}"):
            return VoiceResponse()
        await self.ctx.redis.hset(self.ctx.keys.leg(leg_id), "done", "1")
        task = await self.ctx.engine.task(leg["task"])
        if task is None or task.volunteer != leg["vol"]:
            return VoiceResponse()
        if await self._current_leg_id(task.id, leg["vol"]) != leg_id:
            return VoiceResponse()  # a leg hung up before the task came back to them
        if leg.get("accepted") == "1" and task.state is TaskState.ASSIGNED:
            if _softphone_lost(leg, task):
                log.info("softphone of %s lost during %s", leg["vol"], leg["task"])
                await self._give_back(leg["task"], leg["vol"])  # the caller keeps their place
            else:
                # The volunteer hung up: the conversation is over for the caller too (now,
                # not when the engine's event comes round).
                try:
                    await self.ctx.engine.complete(leg["vol"], leg["task"])
                except RoutingError as error:
                    log.info("complete of %s: %s", leg["task"], error.code)
                await self._hang_up_caller(leg["task"])
        elif leg.get("accepted") != "1" and leg["purpose"] == "assigned":
            await self._give_back(leg["task"], leg["vol"])
        # An unanswered offer is left to the engine's ring timeout (no-answer path).
        return VoiceResponse()

    async def callback_leg_status(
        self, form: dict[str, str], query: dict[str, str]
    ) -> VoiceResponse:
        """The person called back did not answer, or the callback conversation ended."""
        if form.get("CallStatus") not in FINAL_STATUSES:
            return VoiceResponse()
        task = await self.ctx.engine.task(query.get("task", ""))
        if task is None or task.state is not TaskState.ASSIGNED:
            return VoiceResponse()
        leg_id = await self._current_leg_id(task.id, task.volunteer)
        if query.get("leg") and query["leg"] != leg_id:
            return VoiceResponse()  # the call an earlier volunteer placed, before a transfer
        if form.get("CallStatus") != "completed":
            leg = await self.ctx.redis.hgetall(self.ctx.keys.leg(leg_id or ""))
            if leg.get("sid"):
                r = VoiceResponse()
                self.s.goodbye(r, P.CALLBACK_NO_ANSWER)
                try:
                    await self.ctx.rest.update_call(leg["sid"], twiml=str(r))
                except TwilioRestException as error:
                    log.info("volunteer leg not told: %s", error.code)
        try:
            await self.ctx.engine.complete(task.volunteer, task.id)
        except RoutingError as error:
            log.info("callback %s completion: %s", task.id, error.code)
        return VoiceResponse()


def _softphone_lost(leg: dict[str, str], task: Task) -> bool:
    """A talking softphone leg ended: its line was lost (network, closed tab), since the
    console, not the softphone, ends a call; unless the conference ended around it first
    (the caller hung up, told by the leg's <Dial> action)."""
    return (leg["mode"] == ReachMode.SOFTPHONE.value and task.channel is Channel.VOICE
            and leg.get("confover") != "1")
