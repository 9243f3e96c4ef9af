"""What Twilio does in production: retried and reordered webhooks, no auth token, long waits."""

from __future__ import annotations

from pathlib import Path

import httpx
from twilio.request_validator import RequestValidator

from routing.models import Presence, TaskState
from tests.callers.helpers import volunteer_on_duty
from tests.callers.test_voice_bridge import volunteer_leg
from tests.callers.test_voice_hold import queued_call, task_of
from tests.conftest import make_settings
from web.app import create_app

CALLER = "+33612345678"


async def test_hang_up_reported_before_the_enqueue_step_leaves_no_ghost_task(ctx, engine, phone):
    # The caller presses 1 to confirm the département and hangs up at once. Twilio posts the
    # Gather's action and the call's status callback; on a line with several app processes
    # the status callback may be handled first. The call is over: no task may wait for it.
    await volunteer_on_duty(engine, "paul", "05", Presence.PAUSED)
    call = phone(CALLER)
    await call.start()
    await call.press("1")
    await call.press("05")
    confirm = call.current.first("Gather").attrib["action"]
    assert (await call.hang_up()).status_code == 200  # status 'completed' handled first
    await call.request(confirm, Digits="1")  # then the in-flight Gather action
    live = [t for t in await engine.live_tasks() if t.state is not TaskState.ENDED]
    assert live == [], "a task waits for a caller who already hung up"


async def test_retried_enqueue_webhook_keeps_the_task_conference(ctx, engine, phone, fake, bridge):
    # The enqueueing webhook is slow; Twilio retries it (same CallSid, same step). Meanwhile
    # Anne accepted and her softphone is already in the task's conference. The retry must
    # change nothing: the caller must be brought to the room where Anne waits.
    await volunteer_on_duty(engine, "anne", "05")
    call = phone(CALLER)
    await call.start()
    await call.press("4")
    await call.press("05")
    confirm = call.current.first("Gather").attrib["action"]
    await call.request(confirm, Digits="1")
    qsid = fake.enter_queue(call.call_sid, ctx.settings.queue_name)
    await call.wait_in_queue(qsid)
    task_id = await task_of(ctx, call)
    await engine.accept("anne", task_id)
    await bridge.drain()
    create = fake.made("/Calls.json")[-1].form
    leg = await volunteer_leg(call, fake, "client:anne")
    anne_room = (await leg.request(create["Url"])).first("Conference").text

    await call.request(confirm, Digits="1")  # Twilio's retry of the enqueueing webhook

    join = fake.made(f"/Members/{call.call_sid}.json")[-1].form["Url"]
    caller_room = (await call.request(join)).first("Conference").text
    assert caller_room == anne_room, "caller and volunteer sent to different conferences"


async def test_server_without_auth_token_refuses_webhooks_signed_with_the_dev_token(
    tmp_path: Path, redis_url: str, line: str, sql_database: dict[str, str], clock
):
    # A production server (no fake Twilio) whose TWILIO_AUTH_TOKEN is not set, e.g. one
    # that runs the chat only for now: its /twilio/voice webhooks are still routed. Anyone
    # who reads the source knows the fallback token; a request signed with it must not
    # queue a call (README: "any request without a valid signature gets 403").
    public = "https://permanence.example.org"
    settings = make_settings(
        tmp_path / "data", redis_url=redis_url, line=line, public_base_url=public, **sql_database
    )
    assert settings.twilio_fake is False and settings.twilio_auth_token == ""
    app = create_app(settings, clock=clock)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=public) as client:
            url = f"{public}/twilio/voice/incoming"
            params = {
                "CallSid": "CA" + "f" * 32,
                "From": "+33611111111",
                "To": "+33800000000",
                "CallStatus": "ringing",
            }
            signature = RequestValidator("dev-auth-token").compute_signature(url, params)
            response = await client.post(
                url, data=params, headers={"X-Twilio-Signature": signature}
            )
    assert response.status_code == 403, (response.status_code, response.text[:200])


async def test_a_caller_who_waited_long_then_hangs_up_resumes_without_the_menus(
    ctx, engine, phone, fake, clock
):
    # The menu answers that let a returning caller skip the menus are kept for
    # resume_window_s + 60 s from the moment the call was queued (flow._remember_answers),
    # and nothing refreshes them while the caller waits. A caller who waited longer than that
    # (the line announces ~8 minutes per person ahead) and hangs up has a place the engine
    # keeps for resume_window_s more, but no answers any more: the menus start again.
    await volunteer_on_duty(engine, "paul", "05", Presence.PAUSED)
    call = await queued_call(ctx, phone, fake)
    ck = ctx.identity.caller_key(CALLER)
    window_s = int((await engine.config()).resume_window_s)
    ttl = await ctx.redis.ttl(ctx.keys.answers(ck))
    assert 0 < ttl <= window_s + 60
    for _ in range(10):  # seven and a half minutes on hold, the wait URL every 45 s
        clock.advance(45)
        await call.wait_in_queue(call.queue_sid)
    # Redis expires keys on the wall clock, not the test's clock: after those 450 s the
    # answers (TTL <= window + 60 = 360 s, never refreshed) are gone.
    assert await ctx.redis.ttl(ctx.keys.answers(ck)) <= ttl  # the hold did not refresh it
    await ctx.redis.delete(ctx.keys.answers(ck))
    await call.hang_up()
    clock.advance(30)
    again = phone(CALLER)
    twiml = await again.start()
    assert twiml.first("Enqueue") is not None and twiml.first("Gather") is None, (
        "menus asked again: " + twiml.text()[:120]
    )
