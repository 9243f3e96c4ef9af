"""Bridging callers and volunteers: the REST requests the fake Twilio recorded."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlparse

import pytest

from callers.callbacks import callback_details_for
from callers.chat.service import ChatService
from callers.reach import ReachMode, VolunteerReach
from callers.texts import TwilioTexts
from callers.voice.state import get_task
from routing.models import Outcome, Presence, TaskState
from tests.callers.helpers import volunteer_on_duty
from tests.callers.test_voice_hold import EXIT_URL, queued_call, task_of
from tests.callers.twilio_sim import PhoneCall

CALLER = "+33612345678"
MARC_PHONE = "+33655555555"


def query(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(url).query).items()}


async def volunteer_leg(call: PhoneCall, fake, to: str) -> PhoneCall:
    """Twilio placed the outbound call the app asked for; this is that call's side."""
    legs = fake.calls_to(to)
    assert len(legs) == 1, [c.to for c in fake.calls.values()]
    leg = legs[0]
    return PhoneCall(call.hooks, call.base_url, leg.sid, leg.from_, leg.to)


async def test_softphone_volunteer_accepts_in_console_and_is_bridged(
    ctx, engine, phone, fake, bridge
):
    await volunteer_on_duty(engine, "anne", "05")
    call = await queued_call(ctx, phone, fake)
    task_id = await task_of(ctx, call)
    await bridge.drain()
    assert fake.made("/Calls.json") == []  # a softphone volunteer accepts in the console
    await engine.accept("anne", task_id)
    await bridge.drain()

    create = fake.made("/Calls.json")
    assert len(create) == 1
    form = create[0].form
    assert form["To"] == "client:anne" and form["From"] == ctx.settings.twilio_number
    assert form["Url"].startswith("https://permanence.example.org/twilio/voice/leg/answer?leg=")
    assert form["StatusCallback"].startswith("https://permanence.example.org/twilio/voice/leg/")
    member = fake.made(f"/Queues/{call.queue_sid}/Members/{call.call_sid}.json")
    assert len(member) == 1
    assert member[0].form["Url"] == f"https://permanence.example.org/twilio/voice/join?task={task_id}"

    # Both sides end up in the same conference, named by an opaque id.
    leg = await volunteer_leg(call, fake, "client:anne")
    volunteer_twiml = await leg.request(form["Url"])
    caller_twiml = await call.request(member[0].form["Url"])
    room = volunteer_twiml.first("Conference").text
    assert room == caller_twiml.first("Conference").text and room.startswith("k")
    assert task_id not in room and CALLER not in room

    # The volunteer ends the call in the console: the conversation is completed, and the
    # softphone's leg and the caller's call are hung up.
    await engine.complete("anne", task_id)
    await bridge.drain()
    assert fake.made(f"/Calls/{call.call_sid}.json")[-1].form == {"Status": "completed"}
    assert fake.made(f"/Calls/{leg.call_sid}.json")[-1].form == {"Status": "completed"}
    await leg.request(form["StatusCallback"], CallStatus="completed")
    await call.hang_up()
    task = await engine.require_task(task_id)
    assert (task.state, task.outcome) == (TaskState.WRAPUP, Outcome.COMPLETED)


async def anne_talking(ctx, engine, phone, fake, bridge):
    """Anne, on her browser softphone, accepted a queued call: she and the caller talk.

    Returns the caller's call, Anne's leg, the app's request that placed it, the task."""
    await volunteer_on_duty(engine, "anne", "05")
    call = await queued_call(ctx, phone, fake)
    task_id = await task_of(ctx, call)
    await engine.accept("anne", task_id)
    await bridge.drain()
    create = fake.made("/Calls.json")[-1].form
    leg = await volunteer_leg(call, fake, "client:anne")
    assert (await leg.request(create["Url"])).first("Conference") is not None
    await call.request(fake.made(f"/Members/{call.call_sid}.json")[-1].form["Url"])
    return call, leg, create, task_id


def redirects(fake, call: PhoneCall, since: int = 0) -> list[str]:
    """Where the app sent the caller's call (URL paths with their query), in order."""
    return [r.form["Url"].split("/twilio/voice/", 1)[-1] for r in fake.requests[since:]
            if r.path.endswith(f"/{call.call_sid}.json") and "Url" in r.form
            and r.status == 200]


async def back_in_queue(ctx, fake, call: PhoneCall, url: str) -> str:
    """The caller follows the app's redirect back to the queue; returns what they heard."""
    twiml = await call.request("https://permanence.example.org/twilio/voice/" + url)
    assert twiml.first("Enqueue") is not None, twiml.verbs()
    await call.wait_in_queue(fake.enter_queue(call.call_sid, ctx.settings.queue_name))
    return twiml.text()


async def test_softphone_lost_mid_call_puts_the_caller_back_in_the_queue_at_their_place(
    ctx, engine, phone, fake, bridge
):
    # Anne's browser loses the line: Twilio ends her softphone's leg. The console, not the
    # softphone, ends a call, so this is no goodbye: the caller must not be hung up on.
    call, leg, create, task_id = await anne_talking(ctx, engine, phone, fake, bridge)
    place = (await engine.require_task(task_id)).place_ms
    dial_action = (await leg.request(create["Url"])).first("Dial").attrib["action"]
    sent = len(fake.requests)
    # Twilio may post her <Dial>'s action too, with her leg already over: no goodbye either.
    await leg.request(dial_action, CallStatus="completed", DialCallStatus="completed")
    await leg.request(create["StatusCallback"], CallStatus="completed")
    task = await engine.require_task(task_id)
    assert (task.state, task.outcome, task.place_ms) == (TaskState.WAITING, None, place)
    assert (await engine.volunteer("anne")).misses == 1  # as a missed offer
    await bridge.drain()
    assert hung_up(fake, sent) == []
    assert redirects(fake, call, sent) == [f"back-in-queue?task={task_id}&why=lost"]
    heard = await back_in_queue(ctx, fake, call, redirects(fake, call, sent)[0])
    assert "La communication avec le bénévole a été coupée" in heard
    assert "Vous êtes la prochaine personne à être aidée." in call.current.said()

    # Paul comes on duty and takes the call: the caller is brought to him.
    await volunteer_on_duty(engine, "paul", "05")
    await engine.accept("paul", task_id)
    await bridge.drain()
    assert fake.calls_to("client:paul")
    assert redirects(fake, call, sent)[1:] == [f"join?task={task_id}"]
    assert fake.made(f"/Queues/{call.queue_sid}/Members/{call.call_sid}.json")


async def test_a_caller_cut_off_who_hangs_up_and_calls_again_gets_their_place_back(
    ctx, engine, phone, fake, bridge, clock
):
    # A long conversation (the menu answers kept at the first call have expired), a lost
    # line, and the caller, worried, hangs up and calls straight back.
    call, leg, create, task_id = await anne_talking(ctx, engine, phone, fake, bridge)
    old = await engine.require_task(task_id)
    ck = (await ctx.redis.hgetall(ctx.keys.call(call.call_sid)))["ck"]
    await ctx.redis.delete(ctx.keys.answers(ck))
    sent = len(fake.requests)
    await leg.request(create["StatusCallback"], CallStatus="completed")
    await bridge.drain()
    await back_in_queue(ctx, fake, call, redirects(fake, call, sent)[0])
    await call.hang_up()
    assert (await engine.require_task(task_id)).outcome is Outcome.ABANDONED
    clock.advance(20)
    other = await queued_call(ctx, phone, fake, "+33699999999")  # someone else meanwhile
    again = phone(CALLER)
    twiml = await again.start()  # no menus: straight back to the queue
    assert "Vous retrouvez votre place dans la file d'attente." in twiml.said()
    assert twiml.first("Enqueue") is not None and twiml.first("Gather") is None
    resumed = await engine.require_task(await task_of(ctx, again))
    assert resumed.resumed and resumed.place_ms == old.place_ms
    assert await engine.position(await task_of(ctx, other)) == 2


async def test_caller_hanging_up_ends_the_conversation_whatever_status_comes_first(
    ctx, engine, phone, fake, bridge
):
    # The caller hangs up: the conference ends around Anne's softphone (Twilio asks her
    # <Dial>'s action with her leg still up), then her leg ends, and the caller's own status
    # may come last. That is a conversation over, not Anne's line lost.
    call, leg, create, task_id = await anne_talking(ctx, engine, phone, fake, bridge)
    twiml = await leg.request(create["Url"])
    goodbye = await leg.request(twiml.first("Dial").attrib["action"], DialCallStatus="completed")
    assert "L'appel est terminé" in goodbye.text()
    await leg.request(create["StatusCallback"], CallStatus="completed")
    await call.hang_up()
    task = await engine.require_task(task_id)
    assert (task.state, task.outcome) == (TaskState.WRAPUP, Outcome.COMPLETED)
    assert (await engine.volunteer("anne")).misses == 0


async def test_a_late_hand_over_does_not_hang_up_the_same_volunteer_taking_the_call_again(
    ctx, engine, phone, fake, bridge, clock
):
    # Anne's softphone drops; she takes the call again before the bridge (another process,
    # or a reclaim after a crash) handles the hand-over: her new leg must stay up.
    call, leg, create, task_id = await anne_talking(ctx, engine, phone, fake, bridge)
    await leg.request(create["StatusCallback"], CallStatus="completed")
    seen = len(await engine_events(ctx))
    clock.advance(10)  # past the no-answer delay
    await engine.tick()
    await engine.accept("anne", task_id)
    [handed_over] = await engine_events(ctx, 0, "task_transferred")
    [assigned] = await engine_events(ctx, seen, "task_assigned")
    sent = len(fake.requests)
    await bridge.handle(assigned)
    new_leg = fake.calls_to("client:anne")[-1]
    assert new_leg.sid != leg.call_sid
    answered = PhoneCall(call.hooks, call.base_url, new_leg.sid, new_leg.from_, new_leg.to)
    await answered.request(fake.made("/Calls.json")[-1].form["Url"])  # she is back on
    await bridge.handle(handed_over)
    assert hung_up(fake, sent) == []
    assert redirects(fake, call, sent) == []  # still in the conference, where Anne comes back


async def test_a_late_end_of_the_lost_leg_does_not_undo_the_next_assignment(
    ctx, engine, phone, fake, bridge, clock
):
    # Anne's console stays lost: the hub gives the call back. Anne returns and takes it
    # again on a new leg; only then does Twilio report the end of her first leg.
    call, leg, create, task_id = await anne_talking(ctx, engine, phone, fake, bridge)
    sent = len(fake.requests)
    await engine.give_back("anne", task_id)
    await bridge.drain()
    assert hung_up(fake, sent) == [leg.call_sid]
    await back_in_queue(ctx, fake, call, redirects(fake, call, sent)[0])
    clock.advance(10)  # past the no-answer delay
    await engine.tick()
    await engine.accept("anne", task_id)
    await bridge.drain()
    assert len(fake.calls_to("client:anne")) == 2  # a new leg, the first one is gone
    await leg.request(create["StatusCallback"], CallStatus="completed")
    task = await engine.require_task(task_id)
    assert (task.state, task.volunteer) == (TaskState.ASSIGNED, "anne")
    assert redirects(fake, call, sent)[1:] == [f"join?task={task_id}"]


async def marc_passes_call_to_anne(ctx, engine, phone, fake, bridge, reach_book):
    """Marc, on his phone, talks with a caller and transfers the call to Anne, on duty.

    Returns the caller's call, Marc's leg, the task id and how many requests came before."""
    call, leg, _, task_id = await marc_talking(ctx, engine, phone, fake, bridge, reach_book)
    await volunteer_on_duty(engine, "anne", "05")
    sent = len(fake.requests)
    await engine.transfer("marc", task_id, to_volunteer="anne")
    return call, leg, task_id, sent


async def test_call_transferred_to_a_colleague_waits_in_the_queue_then_reaches_them(
    ctx, engine, phone, fake, bridge, reach_book
):
    call, leg, task_id, sent = await marc_passes_call_to_anne(
        ctx, engine, phone, fake, bridge, reach_book)
    await bridge.drain()
    # Marc's phone is free for his next call; the caller waits, at their place, told why.
    assert hung_up(fake, sent) == [leg.call_sid]
    assert redirects(fake, call, sent) == [f"back-in-queue?task={task_id}&why=transfer"]
    heard = await back_in_queue(ctx, fake, call, redirects(fake, call, sent)[0])
    assert "Le bénévole vous passe à un collègue" in heard
    await leg.request(fake.made("/Calls.json")[0].form["StatusCallback"], CallStatus="completed")
    assert (await engine.require_task(task_id)).volunteer == "anne"  # Marc's end is not hers

    await engine.accept("anne", task_id)
    await bridge.drain()
    assert redirects(fake, call, sent)[1:] == [f"join?task={task_id}"]
    anne = await volunteer_leg(call, fake, "client:anne")
    room = (await anne.request(fake.made("/Calls.json")[-1].form["Url"])).first("Conference")
    caller_room = (await call.request(
        fake.made(f"/Members/{call.call_sid}.json")[-1].form["Url"])).first("Conference")
    assert room.text == caller_room.text


async def test_transfer_taken_before_the_bridge_hears_of_it_keeps_the_caller_in_place(
    ctx, engine, phone, fake, bridge, reach_book
):
    # The colleague accepts before the bridge has read the transfer: the caller stays in
    # the task's conference, never goes through the queue; Anne joins them there.
    call, leg, task_id, sent = await marc_passes_call_to_anne(
        ctx, engine, phone, fake, bridge, reach_book)
    await engine.accept("anne", task_id)
    await bridge.drain()
    assert redirects(fake, call, sent) == []
    assert hung_up(fake, sent) == [leg.call_sid]
    anne = await volunteer_leg(call, fake, "client:anne")
    room = (await anne.request(fake.made("/Calls.json")[-1].form["Url"])).first("Conference")
    assert room.text == call.current.first("Conference").text


async def engine_events(ctx, after: int = 0, kind: str = "") -> list[dict[str, str]]:
    """The engine's events from the `after`-th on (of one kind, if given)."""
    entries = (await ctx.redis.xrange(ctx.engine.keys.events))[after:]
    return [fields for _id, fields in entries if not kind or fields["type"] == kind]


async def test_a_late_hand_over_leaves_ringing_the_same_volunteers_new_offer(
    ctx, engine, phone, fake, bridge, reach_book, clock
):
    # Anne turns down the call Marc passed her; it rings Marc's phone again before the
    # bridge (a slow process) handles the transfer: that ringing phone is left alone.
    call, _, task_id, sent = await marc_passes_call_to_anne(
        ctx, engine, phone, fake, bridge, reach_book)
    seen = len(await engine_events(ctx))
    clock.advance(3)
    await engine.decline("anne", task_id)
    assert (await engine.require_task(task_id)).volunteer == "marc"
    [offered] = await engine_events(ctx, seen, "task_offered")
    await bridge.handle(offered)
    assert len(fake.calls_to(MARC_PHONE)) == 2
    ringing = fake.calls_to(MARC_PHONE)[-1]
    [handed_over] = await engine_events(ctx, 0, "task_transferred")
    await bridge.handle(handed_over)
    assert ringing.sid not in hung_up(fake, sent)
    assert redirects(fake, call, sent) == [f"back-in-queue?task={task_id}&why=transfer"]


async def test_a_slow_move_to_the_queue_does_not_strand_the_caller(
    ctx, engine, phone, fake, bridge, reach_book, monkeypatch
):
    # Two processes: one moves the caller back to the queue after a transfer, and Twilio
    # is slow to answer; meanwhile the colleague accepts and the other process handles
    # that. The caller must end up with the colleague, not in the queue.
    call, _, _, task_id = await marc_talking(ctx, engine, phone, fake, bridge, reach_book)
    await volunteer_on_duty(engine, "anne", "05")
    seen = len(await engine_events(ctx))
    await engine.transfer("marc", task_id, to_volunteer="anne")
    [transferred] = await engine_events(ctx, seen, "task_transferred")
    slow, release = asyncio.Event(), asyncio.Event()
    update_call = ctx.rest.update_call

    async def slow_update_call(sid, **kwargs):
        if "back-in-queue" in kwargs.get("url", ""):
            slow.set()
            await release.wait()
        return await update_call(sid, **kwargs)

    monkeypatch.setattr(ctx.rest, "update_call", slow_update_call)
    sent = len(fake.requests)
    moving_back = asyncio.create_task(bridge.handle(transferred))
    await slow.wait()
    await engine.accept("anne", task_id)
    [assigned] = await engine_events(ctx, seen, "task_assigned")
    bringing = asyncio.create_task(bridge.handle(assigned))
    await asyncio.sleep(0.2)  # without the lock, the caller would be brought now
    release.set()
    await asyncio.gather(moving_back, bringing)
    assert redirects(fake, call, sent) == [f"back-in-queue?task={task_id}&why=transfer",
                                           f"join?task={task_id}"]


async def marc_rings(ctx, engine, phone, fake, bridge, reach_book):
    """A queued call offered to Marc, in phone mode: his phone rings, he hears the whisper.

    Returns the caller's call, Marc's leg, the app's request that placed it, the task and
    the whisper's TwiML."""
    reach_book["marc"] = VolunteerReach("marc", ReachMode.PHONE, phone=MARC_PHONE)
    await volunteer_on_duty(engine, "marc", "05")
    call = await queued_call(ctx, phone, fake)
    task_id = await task_of(ctx, call)
    await bridge.drain()
    leg = await volunteer_leg(call, fake, MARC_PHONE)
    create = fake.made("/Calls.json")[0].form
    whisper = await leg.request(create["Url"])
    return call, leg, create, task_id, whisper


async def marc_said_yes(ctx, engine, phone, fake, bridge, reach_book):
    """Marc pressed 1 after the whisper: his leg is in the conference."""
    call, leg, create, task_id, _ = await marc_rings(ctx, engine, phone, fake, bridge, reach_book)
    assert (await leg.press("1")).first("Conference") is not None
    return call, leg, create, task_id


async def marc_talking(ctx, engine, phone, fake, bridge, reach_book):
    """Marc pressed 1 and the caller came into the conference: they talk."""
    call, leg, create, task_id = await marc_said_yes(ctx, engine, phone, fake, bridge, reach_book)
    await bridge.drain()
    await call.request(fake.made(f"/Members/{call.call_sid}.json")[-1].form["Url"])
    return call, leg, create, task_id


def hung_up(fake, since: int) -> list[str]:
    """The calls the app hung up since the fake's request number `since`."""
    return [r.path.rsplit("/", 1)[-1].removesuffix(".json") for r in fake.requests[since:]
            if r.form == {"Status": "completed"}]


async def test_caller_gone_on_the_way_to_the_conference_frees_the_volunteers_line(
    ctx, engine, phone, fake, bridge, reach_book
):
    # The caller hangs up between the volunteer's "1" and their own move into the conference:
    # the volunteer would wait there alone until they hung up themselves.
    call, leg, _, task_id = await marc_said_yes(ctx, engine, phone, fake, bridge, reach_book)
    sent = len(fake.requests)
    await call.hang_up()
    await bridge.drain()
    task = await engine.require_task(task_id)
    assert (task.state, task.outcome) == (TaskState.WRAPUP, Outcome.COMPLETED)
    assert hung_up(fake, sent) == [leg.call_sid]  # not the caller's, already over


async def test_volunteer_hanging_up_ends_the_callers_call_once(
    ctx, engine, phone, fake, bridge, reach_book
):
    call, leg, create, task_id = await marc_talking(ctx, engine, phone, fake, bridge, reach_book)
    sent = len(fake.requests)
    await leg.request(create["StatusCallback"], CallStatus="completed")
    assert hung_up(fake, sent) == [call.call_sid]  # at once, not when the event comes round
    await bridge.drain()
    await call.hang_up()  # Twilio's status callback for the call the app ended
    await bridge.drain()
    assert (await engine.require_task(task_id)).state is TaskState.WRAPUP
    assert hung_up(fake, sent) == [call.call_sid]


async def test_call_ended_from_the_console_hangs_up_both_sides(
    ctx, engine, phone, fake, bridge, reach_book
):
    call, leg, _, task_id = await marc_talking(ctx, engine, phone, fake, bridge, reach_book)
    sent = len(fake.requests)
    await engine.complete("marc", task_id)  # what the console's "end" does
    await bridge.drain()
    assert sorted(hung_up(fake, sent)) == sorted([leg.call_sid, call.call_sid])
    await bridge.drain()
    assert len(hung_up(fake, sent)) == 2


async def test_phone_volunteer_gets_a_whisper_and_presses_1(
    ctx, engine, phone, fake, bridge, reach_book
):
    call, leg, create, task_id, whisper = await marc_rings(
        ctx, engine, phone, fake, bridge, reach_book)
    assert [c.form["To"] for c in fake.made("/Calls.json")] == [MARC_PHONE]
    assert create["Timeout"] == "20"  # the engine's ring time
    assert "Appel Permanence" in whisper.text() and "Appuyez sur 1" in whisper.text()
    assert "zéro 5" in whisper.text() or "zéro cinq" in whisper.text()
    joined = await leg.press("1")
    assert joined.first("Conference") is not None
    assert (await engine.require_task(task_id)).state is TaskState.ASSIGNED
    await bridge.drain()
    assert len(fake.made("/Calls.json")) == 1  # not dialled a second time
    assert len(fake.made(f"/Members/{call.call_sid}.json")) == 1


async def test_voicemail_cannot_take_the_call_and_no_answer_follows_the_engine(
    ctx, engine, phone, fake, bridge, reach_book, clock
):
    _, leg, create, task_id, whisper = await marc_rings(
        ctx, engine, phone, fake, bridge, reach_book)
    # A voicemail presses nothing: both prompts time out and the leg hangs up by itself.
    assert whisper.verbs() == ["Gather", "Gather", "Say", "Hangup"]
    assert "Appel non pris" in whisper.said()[-1]
    assert (await engine.require_task(task_id)).state is TaskState.RESERVED
    await leg.request(create["StatusCallback"], CallStatus="completed")
    clock.advance(21)
    await engine.tick()
    marc = await engine.volunteer("marc")
    assert marc.misses == 1  # the engine's no-answer path
    assert (await engine.require_task(task_id)).state is TaskState.WAITING  # keeps its place


async def test_caller_hangs_up_while_volunteer_phone_rings(
    ctx, engine, phone, fake, bridge, reach_book
):
    reach_book["marc"] = VolunteerReach("marc", ReachMode.PHONE, phone=MARC_PHONE)
    await volunteer_on_duty(engine, "marc", "05")
    call = await queued_call(ctx, phone, fake)
    await bridge.drain()
    leg = fake.calls_to(MARC_PHONE)[0]
    await call.hang_up()
    await bridge.drain()
    assert fake.made(f"/Calls/{leg.sid}.json")[-1].form == {"Status": "completed"}
    assert (await engine.volunteer("marc")).reserved == ""


async def callback_taken_by_anne(ctx, engine, phone, fake, bridge):
    """A caller asked for a callback from the queue; Anne, on her softphone, takes it.

    Returns the caller's first call and the callback's task id."""
    await volunteer_on_duty(engine, "anne", "05", Presence.PAUSED)
    call = await queued_call(ctx, phone, fake)
    await call.press_in_queue("*")
    await call.leave_queue("leave", EXIT_URL)
    await call.press("1")
    callback_id = (await ctx.redis.hgetall(ctx.keys.call(call.call_sid)))["cb"]
    await engine.set_presence("anne", Presence.AVAILABLE)
    await engine.accept("anne", callback_id)
    await bridge.drain()
    return call, callback_id


async def test_callback_calls_the_volunteer_first_then_the_caller(
    ctx, engine, phone, fake, bridge
):
    call, callback_id = await callback_taken_by_anne(ctx, engine, phone, fake, bridge)
    create = fake.made("/Calls.json")
    assert [c.form["To"] for c in create] == ["client:anne"]
    assert fake.made("/Participants.json") == []  # not before the volunteer is there

    leg = await volunteer_leg(call, fake, "client:anne")
    twiml = await leg.request(create[0].form["Url"])
    room = twiml.first("Conference").text
    assert any("Nous appelons la personne" in s for s in twiml.said())
    participants = fake.made(f"/Conferences/{room}/Participants.json")
    assert len(participants) == 1
    form = participants[0].form
    assert (form["To"], form["From"], form["Label"]) == (CALLER, ctx.settings.twilio_number,
                                                         "caller")
    assert query(form["StatusCallback"]) == {"task": callback_id,
                                             "leg": query(create[0].form["Url"])["leg"]}

    # The person does not answer: the volunteer is told, the callback ends.
    await leg.request(form["StatusCallback"], CallStatus="no-answer")
    told = fake.made(f"/Calls/{leg.call_sid}.json")[-1].form
    assert "La personne n'a pas répondu" in told["Twiml"]
    assert (await engine.require_task(callback_id)).state is TaskState.WRAPUP


async def test_callback_passed_on_mid_call_is_dialled_again_by_the_next_volunteer(
    ctx, engine, phone, fake, bridge
):
    call, callback_id = await callback_taken_by_anne(ctx, engine, phone, fake, bridge)
    anne = await volunteer_leg(call, fake, "client:anne")
    room = (await anne.request(fake.made("/Calls.json")[0].form["Url"])).first("Conference")
    first = fake.made(f"/Conferences/{room.text}/Participants.json")[0].form
    person = (await get_task(ctx, callback_id))["call"]

    # Anne passes the person on to Paul: the person hears that someone will call back,
    # Anne's line is hung up.
    await volunteer_on_duty(engine, "paul", "05")
    sent = len(fake.requests)
    await engine.transfer("anne", callback_id, to_volunteer="paul")
    await bridge.drain()
    told = fake.made(f"/Calls/{person}.json")[-1].form
    assert "Un autre bénévole va prendre la suite" in told["Twiml"] and "<Hangup" in told["Twiml"]
    assert hung_up(fake, sent) == [anne.call_sid]
    # The end of that first call is no end of the callback: Paul has not called yet.
    await anne.request(first["StatusCallback"], CallStatus="completed")
    assert (await engine.require_task(callback_id)).volunteer == "paul"

    await engine.accept("paul", callback_id)
    await bridge.drain()
    paul = await volunteer_leg(call, fake, "client:paul")
    await paul.request(fake.made("/Calls.json")[-1].form["Url"])
    again = fake.made(f"/Conferences/{room.text}/Participants.json")
    assert len(again) == 2 and again[1].form["To"] == CALLER
    # The hand-over's event handled again late (a reclaim): Paul's call to the person is
    # not the one Anne's leg placed, and is left alone.
    [handed_over] = await engine_events(ctx, 0, "task_transferred")
    sent = len(fake.requests)
    await bridge.handle(handed_over)
    person_again = (await get_task(ctx, callback_id))["call"]
    assert person_again != person
    assert [r for r in fake.requests[sent:] if person_again in r.path] == []
    await paul.request(again[1].form["StatusCallback"], CallStatus="completed")
    task = await engine.require_task(callback_id)
    assert (task.state, task.volunteer) == (TaskState.WRAPUP, "paul")


async def test_failed_leg_after_console_accept_gives_the_task_back(
    ctx, engine, phone, fake, bridge
):
    await volunteer_on_duty(engine, "anne", "05")
    call = await queued_call(ctx, phone, fake)
    task_id = await task_of(ctx, call)
    await engine.accept("anne", task_id)
    await bridge.drain()
    create = fake.made("/Calls.json")[0].form
    leg = await volunteer_leg(call, fake, "client:anne")
    await leg.request(create["StatusCallback"], CallStatus="no-answer")
    task = await engine.require_task(task_id)
    assert task.state is not TaskState.ASSIGNED and task.outcome is None


async def test_email_only_callback_rings_nobody(ctx, engine, fake, bridge):
    await volunteer_on_duty(engine, "anne", "73")
    request_id = await ChatService(ctx).leave_message({
        "topic": "autre", "postal_code": "73000", "email": "jeanne@example.fr",
        "message": "Merci de me répondre par écrit."})
    assert (await engine.require_task(request_id)).state is TaskState.RESERVED
    await engine.accept("anne", request_id)
    await bridge.drain()
    assert fake.requests == []  # the volunteer answers by e-mail from the console


async def test_sms_go_through_the_twilio_client(ctx, fake):
    texts = TwilioTexts(ctx.twilio, ctx.settings.twilio_number)
    await texts.send_sms("06 12 34 56 78", "Rappel : votre créneau commence à 14 h.")
    sent = fake.made("/Messages.json")
    assert [(m.form["To"], m.form["From"], m.form["Body"]) for m in sent] == [
        ("+33612345678", ctx.settings.twilio_number, "Rappel : votre créneau commence à 14 h.")]
    with pytest.raises(ValueError):
        await texts.send_sms("12", "x")
    assert len(fake.made("/Messages.json")) == 1


async def test_callback_details_only_for_its_volunteer(ctx, engine, phone, fake):
    await volunteer_on_duty(engine, "anne", "05", Presence.PAUSED)
    await volunteer_on_duty(engine, "paul", "05", Presence.PAUSED)
    call = await queued_call(ctx, phone, fake)
    await call.press_in_queue("*")
    await call.leave_queue("leave", EXIT_URL)
    await call.press("1")
    callback_id = (await ctx.redis.hgetall(ctx.keys.call(call.call_sid)))["cb"]
    assert await callback_details_for(ctx, callback_id, "anne") is None  # still waiting
    await engine.set_presence("anne", Presence.AVAILABLE)
    assert await callback_details_for(ctx, callback_id, "paul") is None
    details = await callback_details_for(ctx, callback_id, "anne")
    assert details is not None and details.phone == CALLER


async def test_caller_no_longer_in_twilio_queue_is_redirected_by_call_update(
    ctx, engine, phone, fake, bridge
):
    await volunteer_on_duty(engine, "anne", "05")
    call = await queued_call(ctx, phone, fake)
    task_id = await task_of(ctx, call)
    fake.calls[call.call_sid].queue_sid = ""  # Twilio no longer has it in the queue
    await engine.accept("anne", task_id)
    await bridge.drain()
    assert [r.status for r in fake.made(f"/Members/{call.call_sid}.json")] == [404]
    update = fake.made(f"/Calls/{call.call_sid}.json")
    assert [r.form["Url"] for r in update] == [
        f"https://permanence.example.org/twilio/voice/join?task={task_id}"]


async def test_events_left_by_a_dead_process_are_reclaimed(ctx, engine, phone, fake, bridge):
    await volunteer_on_duty(engine, "anne", "05")
    call = await queued_call(ctx, phone, fake)
    await engine.accept("anne", await task_of(ctx, call))
    # Another process read the events, then died before handling them.
    taken = await ctx.redis.xreadgroup(ctx.keys.bridge_group, "dead-process",
                                       {engine.keys.events: ">"}, count=1000)
    assert taken and await bridge.drain("alive") == 0
    assert fake.made("/Calls.json") == []
    assert await bridge.reclaim("alive", idle_ms=0) == len(taken[0][1])
    assert [r.form["To"] for r in fake.made("/Calls.json")] == ["client:anne"]
    pending = await ctx.redis.xpending(engine.keys.events, ctx.keys.bridge_group)
    assert pending["pending"] == 0
