"""The caller's path through the voice line, one method per Twilio webhook.

Each method takes the (already verified) webhook parameters and returns TwiML. State
is kept per CallSid in Redis; attempt counters travel in the URL so that a webhook
Twilio retries gives the same answer and changes nothing twice.
"""

from __future__ import annotations

import logging
from datetime import datetime

from twilio.twiml.voice_response import VoiceResponse

from callers import callbacks
from callers.context import Callers, national_departement
from callers.identity import normalize_number, spoken_tail
from callers.models import CallbackSource
from callers.schedule import PARIS, ClosedReason, LineStatus, opening_summary, spoken_moment
from callers.voice import prompts as P
from callers.voice.state import (
    call_is_over,
    caller_off,
    claim_call_field,
    get_call,
    get_task,
    new_id,
    set_call,
    set_task,
    update_call,
)
from callers.voice.twiml import Speaker
from routing.errors import RoutingError, TaskExists
from routing.models import Channel, Task, TaskSpec, TaskState

log = logging.getLogger("callers.voice")

FINAL_STATUSES = {"completed", "busy", "failed", "no-answer", "canceled"}
OVERSEAS_PREFIX = "97"


def _try(query: dict[str, str]) -> int:
    try:
        return max(1, min(9, int(query.get("try", "1"))))
    except ValueError:
        return 1


class VoiceFlow:
    """Menus, hold and callback requests of the voice line."""

    def __init__(self, ctx: Callers) -> None:
        self.ctx = ctx
        self.s = Speaker(ctx.settings)

    # Arrival ---------------------------------------------------------------------

    async def incoming(self, form: dict[str, str], query: dict[str, str]) -> VoiceResponse:
        """Welcome, then the menus, or a closed message with a callback offer."""
        sid = form["CallSid"]
        state = await get_call(self.ctx, sid)
        if not state:
            number = normalize_number(form.get("From", ""))
            state = {
                "ck": self.ctx.identity.caller_key(form.get("From", "")),
                "num": self.ctx.identity.seal(number) if number else "",
                "start": str(self.ctx.now_ms()),
            }
            await set_call(self.ctx, sid, **state)
        log.info("incoming call %s caller %s", sid, state.get("ck") or "anonymous")
        r = VoiceResponse()
        self.s.say(r, P.WELCOME)
        status = await self.ctx.schedule.status(self.ctx.now_ms())
        self.s.say(r, status.emergency_message)
        if not status.open:
            await claim_call_field(self.ctx, sid, "mode", "request")
            self.s.say(r, *await self._closed_phrases(status))
            return self._offer_callback(r, 1)
        if await self.ctx.on_duty() == 0:
            await claim_call_field(self.ctx, sid, "mode", "later")
            self.s.say(r, P.NOBODY)
            return self._offer_callback(r, 1)
        await claim_call_field(self.ctx, sid, "mode", "queue")
        answers = await self._resumable_answers(state.get("ck", ""))
        if answers:
            # Back within the resume window: no menus again, straight back to their place.
            return await self._enqueue(sid, await update_call(self.ctx, sid, **answers), r)
        self.s.redirect(r, "topic")
        return r

    async def _resumable_answers(self, caller_key: str) -> dict[str, str]:
        """The menu answers of a caller whose abandoned place the engine still keeps."""
        if not caller_key or not await self.ctx.redis.exists(
            self.ctx.engine.keys.resume(caller_key)
        ):
            return {}
        raw = await self.ctx.redis.hgetall(self.ctx.keys.answers(caller_key))
        if raw.get("dept") not in self.ctx.engine.territories.departements:
            return {}
        return {k: raw.get(k, "") for k in ("topic", "skill", "dept", "national")}

    async def _closed_phrases(self, status: LineStatus) -> list[str]:
        summary = opening_summary(await self.ctx.schedule.get(), spoken=True)
        phrases = {
            ClosedReason.HOURS: [P.CLOSED_HOURS, P.OPEN_HOURS.format(summary=summary)],
            ClosedReason.HOLIDAY: [P.CLOSED_HOLIDAY.format(name=status.holiday)],
            ClosedReason.CLOSURE: [P.CLOSED_CLOSURE, status.message],
        }[status.reason or ClosedReason.HOURS]
        if status.next_open is not None:
            now = datetime.fromtimestamp(self.ctx.now_ms() / 1000, PARIS)
            phrases.append(P.NEXT_OPEN.format(moment=spoken_moment(status.next_open, now)))
        return phrases

    def _offer_callback(self, r: VoiceResponse, n: int) -> VoiceResponse:
        g = self.s.gather(r, "offer-callback", timeout=6, **{"try": n})
        self.s.say(g, P.OFFER_CALLBACK)
        self.s.redirect(r, "offer-callback", **{"try": n})
        return r

    async def offer_callback(self, form: dict[str, str], query: dict[str, str]) -> VoiceResponse:
        """1: go on to the callback request; silence: offered once more, then goodbye."""
        n, digit = _try(query), form.get("Digits", "")
        r = VoiceResponse()
        if digit == "1":
            self.s.redirect(r, "topic")
            return r
        if not digit and n < 2:  # a slow caller gets a second chance
            return self._offer_callback(r, n + 1)
        return self.s.goodbye(r, P.GOODBYE)

    # Topic -------------------------------------------------------------------------

    async def topic(self, form: dict[str, str], query: dict[str, str]) -> VoiceResponse:
        n = _try(query)
        r = VoiceResponse()
        g = self.s.gather(r, "topic/answer", timeout=6, **{"try": n})
        items = [
            P.TOPIC_ITEM.format(label=label, digit=digit)
            for digit, (label, _skill) in sorted(self.ctx.settings.topics.items())
        ]
        self.s.say(g, P.TOPIC_INTRO + " " + " ".join(items))
        self.s.redirect(r, "topic/answer", **{"try": n})
        return r

    async def topic_answer(self, form: dict[str, str], query: dict[str, str]) -> VoiceResponse:
        n, digit, sid = _try(query), form.get("Digits", ""), form["CallSid"]
        r = VoiceResponse()
        topics = self.ctx.settings.topics
        if digit in topics:
            await set_call(self.ctx, sid, topic=digit, skill=topics[digit][1])
        elif n >= 2:
            await set_call(self.ctx, sid, topic="", skill="")
            self.s.say(r, P.TOPIC_FALLBACK)
        else:
            self.s.say(r, P.NOT_UNDERSTOOD)
            self.s.redirect(r, "topic", **{"try": n + 1})
            return r
        state = await get_call(self.ctx, sid)
        recent = await self.ctx.engine.recent_caller(state["ck"]) if state.get("ck") else {}
        if recent.get("dept") in self.ctx.engine.territories.departements:
            await set_call(self.ctx, sid, known=recent["dept"])
            self.s.redirect(r, "known")
        else:
            self.s.redirect(r, "dept")
        return r

    # Département ----------------------------------------------------------------

    async def known(self, form: dict[str, str], query: dict[str, str]) -> VoiceResponse:
        """A recognised caller confirms the département of their last contact."""
        n = _try(query)
        state = await get_call(self.ctx, form["CallSid"])
        r = VoiceResponse()
        fields = P.departement_phrase(self.ctx.engine.territories, state["known"])
        g = self.s.gather(r, "known/answer", **{"try": n})
        self.s.say(g, P.KNOWN_CALLER.format(**fields))
        self.s.redirect(r, "known/answer", **{"try": n})
        return r

    async def known_answer(self, form: dict[str, str], query: dict[str, str]) -> VoiceResponse:
        n, digit = _try(query), form.get("Digits", "")
        state = await get_call(self.ctx, form["CallSid"])
        if digit == "1" or (digit != "2" and n >= 2):
            # Silence twice: the département they used last time is the best guess.
            return await self._menus_done(form["CallSid"], state["known"])
        r = VoiceResponse()
        if digit == "2":
            self.s.redirect(r, "dept")
        else:
            self.s.say(r, P.NOT_UNDERSTOOD)
            self.s.redirect(r, "known", **{"try": n + 1})
        return r

    async def dept(self, form: dict[str, str], query: dict[str, str]) -> VoiceResponse:
        n = _try(query)
        r = VoiceResponse()
        g = self.s.gather(r, "dept/answer", digits=3, hash_ends=True, timeout=8, **{"try": n})
        self.s.say(g, P.DEPT_ASK)
        self.s.redirect(r, "dept/answer", **{"try": n})
        return r

    async def dept_answer(self, form: dict[str, str], query: dict[str, str]) -> VoiceResponse:
        n, digits = _try(query), form.get("Digits", "").strip()
        r = VoiceResponse()
        if digits == "20":
            self.s.redirect(r, "dept/corse")
            return r
        known = self.ctx.engine.territories.departements
        overseas = len(digits) == 3 and digits.startswith(OVERSEAS_PREFIX)
        if (len(digits) == 2 or overseas) and digits in known:
            self.s.redirect(r, "dept/confirm", code=digits, **{"try": n})
            return r
        return await self._dept_failed(form, n, P.DEPT_UNKNOWN if digits else P.NOT_UNDERSTOOD)

    async def _dept_failed(self, form: dict[str, str], n: int, why: str) -> VoiceResponse:
        if n >= 2:
            r = await self._menus_done(form["CallSid"], None)
            return r
        r = VoiceResponse()
        self.s.say(r, why)
        self.s.redirect(r, "dept", **{"try": n + 1})
        return r

    async def dept_corse(self, form: dict[str, str], query: dict[str, str]) -> VoiceResponse:
        n = _try(query)
        r = VoiceResponse()
        g = self.s.gather(r, "dept/corse/answer", **{"try": n})
        self.s.say(g, P.DEPT_CORSE)
        self.s.redirect(r, "dept/corse/answer", **{"try": n})
        return r

    async def dept_corse_answer(self, form: dict[str, str], query: dict[str, str]) -> VoiceResponse:
        n, digit = _try(query), form.get("Digits", "")
        code = {"1": "2A", "2": "2B"}.get(digit)
        r = VoiceResponse()
        if code:
            self.s.redirect(r, "dept/confirm", code=code, **{"try": 1})
            return r
        if n >= 2:
            return await self._menus_done(form["CallSid"], None)
        self.s.say(r, P.NOT_UNDERSTOOD)
        self.s.redirect(r, "dept/corse", **{"try": n + 1})
        return r

    async def dept_confirm(self, form: dict[str, str], query: dict[str, str]) -> VoiceResponse:
        n, code = _try(query), query.get("code", "")
        if code not in self.ctx.engine.territories.departements:
            return await self._dept_failed(form, n, P.DEPT_UNKNOWN)
        r = VoiceResponse()
        fields = P.departement_phrase(self.ctx.engine.territories, code)
        g = self.s.gather(r, "dept/confirm/answer", code=code, **{"try": n})
        self.s.say(g, P.DEPT_CONFIRM.format(**fields))
        self.s.redirect(r, "dept/confirm/answer", code=code, **{"try": n})
        return r

    async def dept_confirm_answer(
        self, form: dict[str, str], query: dict[str, str]
    ) -> VoiceResponse:
        n, code, digit = _try(query), query.get("code", ""), form.get("Digits", "")
        if code not in self.ctx.engine.territories.departements:
            return await self._dept_failed(form, n, P.DEPT_UNKNOWN)
        if digit == "1" or (digit != "2" and n >= 2):
            return await self._menus_done(form["CallSid"], code)
        r = VoiceResponse()
        if digit == "2":
            if n >= 3:
                return await self._menus_done(form["CallSid"], None)
            self.s.redirect(r, "dept", **{"try": n + 1})
        else:
            self.s.say(r, P.NOT_UNDERSTOOD)
            self.s.redirect(r, "dept/confirm", code=code, **{"try": n + 1})
        return r

    # After the menus -------------------------------------------------------------------

    async def _menus_done(self, sid: str, code: str | None) -> VoiceResponse:
        """Menus answered: join the queue, or go on to the callback request."""
        r = VoiceResponse()
        if code is None:
            self.s.say(r, P.DEPT_FALLBACK)
            fallback = await national_departement(self.ctx)
            code = await claim_call_field(self.ctx, sid, "dept", fallback)
            state = await update_call(self.ctx, sid, national="1")
        else:
            state = await update_call(self.ctx, sid, dept=code, national="0")
        if state.get("mode") == "queue":
            return await self._enqueue(sid, state, r)
        await set_call(self.ctx, sid, cbfrom=state.get("mode", "request"))
        self.s.redirect(r, "callback/confirm")
        return r

    async def _enqueue(self, sid: str, state: dict[str, str], r: VoiceResponse) -> VoiceResponse:
        task_id = await claim_call_field(self.ctx, sid, "task", new_id("v"))
        await set_task(
            self.ctx, task_id, first={"conf": new_id("k")}, call=sid,
            topic=state.get("topic", ""), national=state.get("national", "0"),
            ck=state.get("ck", ""),
        )
        try:
            task = await self.ctx.engine.enqueue(
                TaskSpec(
                    id=task_id,
                    channel=Channel.VOICE,
                    departement=state["dept"],
                    skill=state.get("skill", ""),
                    caller_key=state.get("ck", ""),
                )
            )
            resumed = task.resumed
        except TaskExists:  # a retried webhook: the task is already there
            task = await self.ctx.engine.require_task(task_id)
            resumed = task.resumed
        if await call_is_over(self.ctx, sid):
            # The hang-up's status callback came first (app processes answer webhooks in any
            # order) and found no task to end: end it here, or it would wait for nobody.
            await self._caller_left(sid, task_id)
            return VoiceResponse()
        if state.get("ck"):
            await self._remember_answers(state)
        self.s.say(r, P.RESUMED if resumed else P.QUEUED)
        return self._enqueue_twiml(r)

    async def _remember_answers(self, state: dict[str, str]) -> None:
        key = self.ctx.keys.answers(state["ck"])
        window_s = max(1, int((await self.ctx.engine.config()).resume_window_s) + 60)
        async with self.ctx.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={k: state.get(k, "") for k in
                                    ("topic", "skill", "dept", "national")})
            pipe.expire(key, window_s)
            await pipe.execute()

    def _enqueue_twiml(self, r: VoiceResponse) -> VoiceResponse:
        r.enqueue(
            self.ctx.settings.queue_name,
            action=self.s.url("queue-exit"),
            method="POST",
            wait_url=self.s.url("hold"),
            wait_url_method="POST",
        )
        return r

    # Hold ------------------------------------------------------------------------

    async def hold(self, form: dict[str, str], query: dict[str, str]) -> VoiceResponse:
        """The wait URL: position and expected wait about every 45 s, music between."""
        sid = form["CallSid"]
        state = await get_call(self.ctx, sid)
        fields = {"inq": "1"}
        if form.get("QueueSid"):
            fields["qsid"] = form["QueueSid"]
        r = VoiceResponse()
        task = await self.ctx.engine.task(state.get("task", "")) if state.get("task") else None
        if task is None or task.state is TaskState.ENDED:
            await set_call(self.ctx, sid, **fields)
            r.leave()  # the task was closed: the exit handler offers a callback
            return r
        g = self.s.gather(r, "hold/key", timeout=1)
        announce = False
        if task.state is TaskState.WAITING:
            now = self.ctx.now_ms()
            every_ms = int(self.ctx.settings.announce_every_s * 1000)
            if now - int(state.get("ann", "0")) >= every_ms:
                fields["ann"] = str(now)
                announce = True
        # One write for both: each Redis round trip is a good part of a webhook's CPU.
        await set_call(self.ctx, sid, **fields)
        if announce:
            self.s.say(g, *await self._position_phrases(task))
            self.s.say(g, P.STAR_FOR_CALLBACK)
        elif task.state is not TaskState.WAITING:
            self.s.say(g, P.CONNECTING)
        g.play(self.ctx.settings.hold_music_url)
        return r

    async def _position_phrases(self, task: Task) -> list[str]:
        position = await self.ctx.engine.place(task)
        if position is None:
            return [P.CONNECTING]
        ahead = position - 1
        phrases = [
            P.POSITION_FIRST if ahead == 0
            else P.POSITION_ONE if ahead == 1
            else P.POSITION.format(ahead=ahead)
        ]
        minutes = await self.ctx.expected_wait_minutes(position, "voice")
        if minutes is not None:
            phrases.append(P.WAIT_ESTIMATE.format(minutes=P.minutes_phrase(minutes)))
        return phrases

    async def hold_key(self, form: dict[str, str], query: dict[str, str]) -> VoiceResponse:
        """A key pressed while waiting: star asks for a callback; anything else is ignored."""
        r = VoiceResponse()
        if form.get("Digits") == "*":
            await set_call(self.ctx, form["CallSid"], cbwant="1", cbfrom="queue")
            r.leave()
        return r

    async def queue_exit(self, form: dict[str, str], query: dict[str, str]) -> VoiceResponse:
        """<Enqueue action>: why the caller left the queue, and what they hear next."""
        sid, result = form["CallSid"], form.get("QueueResult", "")
        state = await update_call(self.ctx, sid, inq="0")
        r = VoiceResponse()
        if result in {"hangup", "bridged", "redirected", "bridging-in-process"}:
            return r
        if result == "leave" and state.get("cbwant") == "1":
            self.s.redirect(r, "callback/confirm")
            return r
        task = await self.ctx.engine.task(state.get("task", "")) if state.get("task") else None
        if task is not None and task.state is TaskState.ENDED:
            # Closed by the line (e.g. a coordinator closed it): still no dead end.
            await set_call(self.ctx, sid, cbfrom="later")
            self.s.say(r, P.TASK_CLOSED)
            self.s.redirect(r, "callback/confirm")
            return r
        # queue-full, error, system-shutdown: a technical fault must not cost the place.
        await set_call(self.ctx, sid, cbwant="1", cbfrom="queue")
        self.s.say(r, P.TECHNICAL_FAULT)
        self.s.redirect(r, "callback/confirm")
        return r

    # Callback requests -----------------------------------------------------------------

    async def callback_confirm(self, form: dict[str, str], query: dict[str, str]) -> VoiceResponse:
        """Confirm the caller-ID number, or go on to key in another one."""
        n = _try(query)
        state = await get_call(self.ctx, form["CallSid"])
        number = self.ctx.identity.open(state.get("num", ""))
        r = VoiceResponse()
        if not number:
            self.s.redirect(r, "callback/number")
            return r
        g = self.s.gather(r, "callback/confirm/answer", **{"try": n})
        self.s.say(g, P.CALLBACK_NUMBER_TAIL.format(tail=spoken_tail(number)))
        self.s.redirect(r, "callback/confirm/answer", **{"try": n})
        return r

    async def callback_confirm_answer(
        self, form: dict[str, str], query: dict[str, str]
    ) -> VoiceResponse:
        n, digit, sid = _try(query), form.get("Digits", ""), form["CallSid"]
        state = await get_call(self.ctx, sid)
        if digit == "1" or (digit != "2" and n >= 2):
            return await self._callback_saved(sid, state.get("num", ""))
        r = VoiceResponse()
        if digit == "2":
            self.s.redirect(r, "callback/number")
        else:
            self.s.say(r, P.NOT_UNDERSTOOD)
            self.s.redirect(r, "callback/confirm", **{"try": n + 1})
        return r

    async def callback_number(self, form: dict[str, str], query: dict[str, str]) -> VoiceResponse:
        n = _try(query)
        r = VoiceResponse()
        g = self.s.gather(
            r, "callback/number/answer", digits=12, hash_ends=True, timeout=10, **{"try": n}
        )
        self.s.say(g, P.CALLBACK_ASK_NUMBER)
        self.s.redirect(r, "callback/number/answer", **{"try": n})
        return r

    async def callback_number_answer(
        self, form: dict[str, str], query: dict[str, str]
    ) -> VoiceResponse:
        n, sid = _try(query), form["CallSid"]
        number = normalize_number(form.get("Digits", ""))
        r = VoiceResponse()
        if number is None:
            if n >= 2:
                return await self._no_number(sid)
            self.s.say(r, P.CALLBACK_NUMBER_BAD)
            self.s.redirect(r, "callback/number", **{"try": n + 1})
            return r
        await set_call(self.ctx, sid, cbnum=self.ctx.identity.seal(number))
        g = self.s.gather(r, "callback/number/check", **{"try": n})
        self.s.say(g, P.CALLBACK_READBACK.format(digits=P.spoken_digits(number)))
        self.s.redirect(r, "callback/number/check", **{"try": n})
        return r

    async def callback_number_check(
        self, form: dict[str, str], query: dict[str, str]
    ) -> VoiceResponse:
        n, digit, sid = _try(query), form.get("Digits", ""), form["CallSid"]
        state = await get_call(self.ctx, sid)
        if digit == "1" or (digit != "2" and n >= 2):
            return await self._callback_saved(sid, state.get("cbnum", ""))
        r = VoiceResponse()
        if n >= 2:
            return await self._no_number(sid)
        self.s.redirect(r, "callback/number", **{"try": n + 1})
        return r

    async def _no_number(self, sid: str) -> VoiceResponse:
        state = await get_call(self.ctx, sid)
        r = VoiceResponse()
        task = await self.ctx.engine.task(state.get("task", "")) if state.get("task") else None
        if state.get("cbfrom") == "queue" and task and task.state is not TaskState.ENDED:
            await set_call(self.ctx, sid, cbwant="0")
            self.s.say(r, P.CALLBACK_NO_NUMBER_QUEUE)
            return self._enqueue_twiml(r)
        return self.s.goodbye(r, P.CALLBACK_NO_NUMBER_CLOSED, P.GOODBYE)

    async def _callback_saved(self, sid: str, sealed_number: str) -> VoiceResponse:
        """The number is confirmed: a callback task (keeping the place) or a request."""
        if not sealed_number:
            return await self._no_number(sid)
        state = await get_call(self.ctx, sid)
        r = VoiceResponse()
        if state.get("cbfrom") == "queue":
            converted = await self.convert_to_callback(sid, sealed_number)
            if not converted:  # a volunteer took the call meanwhile: stay on the line
                self.s.say(r, P.CONNECTING)
                r.pause(length=20)
                return r
            return self.s.goodbye(r, P.CALLBACK_SAVED_OPEN, P.GOODBYE)
        request_id = await claim_call_field(self.ctx, sid, "req", new_id("r"))
        await callbacks.save_request(
            self.ctx,
            callbacks.NewCallback(
                source=CallbackSource.VOICE,
                departement=state["dept"],
                skill=state.get("skill", ""),
                caller_key=state.get("ck", ""),
                phone=self.ctx.identity.open(sealed_number),
                request_id=request_id,
            ),
        )
        status = await self.ctx.schedule.status(self.ctx.now_ms())
        return self.s.goodbye(
            r, P.CALLBACK_SAVED_OPEN if status.open else P.CALLBACK_SAVED_LATER, P.GOODBYE
        )

    async def convert_to_callback(self, sid: str, sealed_number: str) -> bool:
        """Replace the waiting call by a callback task at the same place; False if too late."""
        state = await get_call(self.ctx, sid)
        task_id = state.get("task", "")
        callback_id = await claim_call_field(self.ctx, sid, "cb", new_id("b"))
        meta = await get_task(self.ctx, task_id)
        await set_task(
            self.ctx, callback_id, first={"conf": new_id("k")}, num=sealed_number,
            ck=state.get("ck", ""), topic=meta.get("topic", ""),
            national=meta.get("national", "0"), source="voice",
        )
        existing = await self.ctx.engine.task(callback_id)
        if existing is not None:
            return True
        try:
            await self.ctx.engine.to_callback(task_id, callback_id)
        except RoutingError as error:
            log.info("call %s not converted to a callback: %s", sid, error.code)
            return False
        await set_call(self.ctx, sid, cbwant="0")
        return True

    # Status callbacks ------------------------------------------------------------------

    async def status(self, form: dict[str, str], query: dict[str, str]) -> VoiceResponse:
        """The caller's call ended: a waiting caller abandons, a talking one completes."""
        sid, call_status = form["CallSid"], form.get("CallStatus", "")
        if call_status not in FINAL_STATUSES:
            return VoiceResponse()
        await caller_off(self.ctx, sid)  # before the engine hears of it: nobody hangs it up
        state = await get_call(self.ctx, sid)
        task_id = state.get("task", "")
        if not task_id:
            return VoiceResponse()
        if state.get("cbwant") == "1":
            number = state.get("cbnum") or state.get("num", "")
            if number and await self.convert_to_callback(sid, number):
                return VoiceResponse()
        await self._caller_left(sid, task_id, state)
        await set_call(self.ctx, sid, ended=call_status)
        return VoiceResponse()

    async def _caller_left(
        self, sid: str, task_id: str, state: dict[str, str] | None = None
    ) -> None:
        """End the caller's task (abandoned if still waiting); keep their menu answers as
        long as the engine keeps their place, counted from now, not from when they queued."""
        try:
            outcome = await self.ctx.engine.cancel(task_id)
        except RoutingError as error:
            log.info("cancel of %s after hang-up: %s", task_id, error.code)
            return
        if outcome != "abandoned":  # answered: no place kept, nothing to resume
            return
        state = state if state is not None else await get_call(self.ctx, sid)
        if state.get("ck") and state.get("dept"):
            await self._remember_answers(state)

    # Conversation ----------------------------------------------------------------

    async def join(self, form: dict[str, str], query: dict[str, str]) -> VoiceResponse:
        """The caller is taken out of the queue into the task's conference."""
        meta = await get_task(self.ctx, query.get("task", ""))
        r = VoiceResponse()
        if not meta.get("conf"):
            return self.s.goodbye(r, P.TASK_CLOSED, P.GOODBYE)
        self.s.say(r, P.CONNECTING)
        dial = r.dial(action=self.s.url("after"), method="POST")
        dial.conference(
            meta["conf"],
            start_conference_on_enter=True,
            end_conference_on_exit=True,
            beep=False,
            wait_url=self.ctx.settings.hold_music_url,
        )
        return r

    async def back_in_queue(self, form: dict[str, str], query: dict[str, str]) -> VoiceResponse:
        """The caller's volunteer passed them on, or their line was lost: back in the queue,
        at their place (the engine kept it); the bridge brings them to the next volunteer."""
        task = await self.ctx.engine.task(query.get("task", ""))
        r = VoiceResponse()
        if task is None or task.state in {TaskState.WRAPUP, TaskState.ENDED}:
            return self.s.goodbye(r, P.GOODBYE)
        state = await get_call(self.ctx, form["CallSid"])
        if state.get("ck"):  # kept again: leaving now, they resume without the menus
            await self._remember_answers(state)
        self.s.say(r, P.LINE_LOST if query.get("why") == "lost" else P.HANDED_OVER)
        return self._enqueue_twiml(r)

    async def after(self, form: dict[str, str], query: dict[str, str]) -> VoiceResponse:
        return self.s.goodbye(VoiceResponse(), P.GOODBYE)
