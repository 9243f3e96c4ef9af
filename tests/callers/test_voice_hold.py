"""Hold, callback-in-queue, hang-ups and signature checks of the voice line."""

from __future__ import annotations

from callers import callbacks
from routing.models import Channel, Outcome, Presence, TaskState
from tests.callers.helpers import volunteer_on_duty
from tests.callers.twilio_sim import PhoneCall

CALLER = "+33612345678"
EXIT_URL = "https://permanence.example.org/twilio/voice/queue-exit"


async def queued_call(ctx, phone, fake, number: str = CALLER, dept: str = "05") -> PhoneCall:
    """A caller who went through the menus and waits in the queue."""
    call = phone(number)
    await call.start()
    await call.press("4")
    await call.press(dept)
    twiml = await call.press("1")
    assert twiml.first("Enqueue") is not None
    qsid = fake.enter_queue(call.call_sid, ctx.settings.queue_name)
    await call.wait_in_queue(qsid)
    return call


async def task_of(ctx, call: PhoneCall) -> str:
    return (await ctx.redis.hgetall(ctx.keys.call(call.call_sid)))["task"]


async def test_hold_announces_position_and_wait_every_45_seconds(ctx, engine, clock, phone, fake):
    # Anne is busy with a first caller; two more wait behind.
    await volunteer_on_duty(engine, "anne", "05")
    first = await queued_call(ctx, phone, fake, "+33611111111")
    await engine.accept("anne", await task_of(ctx, first))
    second = await queued_call(ctx, phone, fake, "+33622222222")
    assert "Vous êtes la prochaine personne à être aidée." in second.current.said()
    assert any("environ 8 minutes" in s for s in second.current.said())  # default handling time
    assert any("touche étoile" in s for s in second.current.said())
    assert second.current.first("Play").text == ctx.settings.hold_music_url

    clock.advance(5)
    third = await queued_call(ctx, phone, fake, "+33633333333")
    assert "Il y a une personne avant vous." in third.current.said()
    assert any("environ 16 minutes" in s for s in third.current.said())

    clock.advance(20)
    twiml = await second.wait_in_queue(second.queue_sid)  # the music ended: no new announcement
    assert twiml.said() == [] and twiml.first("Play") is not None
    clock.advance(30)
    twiml = await second.wait_in_queue(second.queue_sid)
    assert "Vous êtes la prochaine personne à être aidée." in twiml.said()


async def test_star_converts_to_a_callback_that_keeps_the_place(ctx, engine, phone, fake, clock):
    await volunteer_on_duty(engine, "paul", "05", Presence.PAUSED)
    call = await queued_call(ctx, phone, fake)
    voice_id = await task_of(ctx, call)
    place = (await engine.require_task(voice_id)).place_ms
    clock.advance(60)
    twiml = await call.press_in_queue("*")
    assert twiml.verbs() == ["Leave"]
    twiml = await call.leave_queue("leave", EXIT_URL)
    assert "se termine par 56 78" in twiml.text()
    twiml = await call.press("1")
    assert "sans que vous perdiez votre place" in twiml.text() and "Hangup" in twiml.verbs()
    voice = await engine.require_task(voice_id)
    assert (voice.state, voice.outcome) == (TaskState.ENDED, Outcome.CALLBACK)
    callback_id = (await ctx.redis.hgetall(ctx.keys.call(call.call_sid)))["cb"]
    callback = await engine.require_task(callback_id)
    assert callback.channel is Channel.CALLBACK and callback.place_ms == place
    assert (await callbacks.callback_details(ctx, callback_id)).phone == CALLER
    response = await call.hang_up()  # the caller hangs up after the goodbye
    assert response.status_code == 200
    assert (await engine.require_task(callback_id)).state is TaskState.WAITING


async def test_star_then_hang_up_before_confirming_still_calls_back(ctx, engine, phone, fake):
    await volunteer_on_duty(engine, "paul", "05", Presence.PAUSED)
    call = await queued_call(ctx, phone, fake)
    await call.press_in_queue("*")
    await call.hang_up()
    callback_id = (await ctx.redis.hgetall(ctx.keys.call(call.call_sid)))["cb"]
    assert (await engine.require_task(callback_id)).state is TaskState.WAITING


async def test_other_keys_while_waiting_change_nothing(ctx, engine, phone, fake):
    await volunteer_on_duty(engine, "paul", "05", Presence.PAUSED)
    call = await queued_call(ctx, phone, fake)
    twiml = await call.press_in_queue("5")
    assert twiml.verbs() == []  # back to the wait music
    assert (await engine.require_task(await task_of(ctx, call))).state is TaskState.WAITING


async def test_queue_error_offers_a_callback_without_losing_the_place(ctx, engine, phone, fake):
    await volunteer_on_duty(engine, "paul", "05", Presence.PAUSED)
    call = await queued_call(ctx, phone, fake)
    twiml = await call.leave_queue("system-shutdown", EXIT_URL)
    assert any("problème technique" in h for h in call.heard)
    assert "se termine par 56 78" in twiml.text()


async def test_hang_up_while_waiting_is_an_abandon_and_retries_are_harmless(
    ctx, engine, phone, fake
):
    await volunteer_on_duty(engine, "paul", "05", Presence.PAUSED)
    call = await queued_call(ctx, phone, fake)
    task_id = await task_of(ctx, call)
    assert (await call.hang_up()).status_code == 200
    assert (await call.hang_up()).status_code == 200  # Twilio retried the status callback
    task = await engine.require_task(task_id)
    assert (task.state, task.outcome) == (TaskState.ENDED, Outcome.ABANDONED)


async def test_calling_back_soon_resumes_the_place(ctx, engine, phone, fake, clock):
    await volunteer_on_duty(engine, "paul", "05", Presence.PAUSED)
    call = await queued_call(ctx, phone, fake)
    old = await engine.require_task(await task_of(ctx, call))
    clock.advance(90)
    await call.hang_up()
    clock.advance(60)  # still within the engine's 300 s abandon-resume window
    other = await queued_call(ctx, phone, fake, "+33699999999")  # someone else meanwhile
    again = phone(CALLER)
    twiml = await again.start()  # no menus this time: straight back to the queue
    assert "Vous retrouvez votre place dans la file d'attente." in twiml.said()
    assert twiml.first("Enqueue") is not None and twiml.first("Gather") is None
    resumed = await engine.require_task(await task_of(ctx, again))
    assert resumed.resumed and resumed.place_ms == old.place_ms
    assert await engine.position(resumed.id) == 1
    assert await engine.position(await task_of(ctx, other)) == 2
    assert resumed.departement == "05" and resumed.skill == ""


async def test_forged_signature_is_refused_and_changes_nothing(ctx, engine, phone, hooks, fake):
    await volunteer_on_duty(engine, "paul", "05", Presence.PAUSED)
    call = phone(CALLER)
    url = "https://permanence.example.org/twilio/voice/incoming"
    params = call.params()
    forged = await hooks.post(url, params, signature="bm90IGEgc2lnbmF0dXJl")
    missing = await hooks.client.post(url, data=params)
    wrong_host = await hooks.post(url, params, signature=hooks.sign(
        "http://localhost:8000/twilio/voice/incoming", params))
    tampered = hooks.sign(url, params)
    params_changed = dict(params, From="+33700000000")
    changed = await hooks.post(url, params_changed, signature=tampered)
    other_token = call.hooks.__class__(hooks.client, "another-token", hooks.account_sid)
    wrong_key = await other_token.post(url, params)
    assert [r.status_code for r in (forged, missing, wrong_host, changed, wrong_key)] == [403] * 5
    assert await ctx.redis.exists(ctx.keys.call(call.call_sid)) == 0

    # Also deep in the flow: a forged key press does not queue anybody.
    await call.start()
    await call.press("1")
    gather = call.current.first("Gather").attrib["action"]
    response = await hooks.post(gather, call.params(Digits="05"), signature="x" * 28)
    assert response.status_code == 403
    assert await engine.live_tasks() == []
    hang_up = await hooks.post("https://permanence.example.org/twilio/voice/status",
                               call.params(CallStatus="completed"), signature="forged")
    assert hang_up.status_code == 403
