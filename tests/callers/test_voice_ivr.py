"""The voice line's menus end to end: signed webhooks, real Redis, real database."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import select

from callers import callbacks
from callers.models import CallbackRequest, fetch_all
from callers.schedule import PARIS, Closure, Schedule
from routing.models import Channel, Presence, TaskState
from tests.callers.helpers import volunteer_on_duty

CALLER = "+33612345678"


async def paused_volunteer(engine) -> None:
    """Someone is on duty but not taking calls: tasks wait in the queue."""
    await volunteer_on_duty(engine, "paul", "05", Presence.PAUSED)


async def test_welcome_leads_to_the_topic_menu(ctx, engine, phone):
    await paused_volunteer(engine)
    call = phone(CALLER)
    twiml = await call.start()
    assert "bienvenue à Permanence" in call.heard[0]
    gather = twiml.first("Gather")
    assert gather is not None and gather.attrib["action"].endswith("/topic/answer?try=1")
    menu = twiml.text()
    for item in ("famille", "travail ou une entreprise", "la santé", "autre chose"):
        assert item in menu
    state = await ctx.redis.hgetall(ctx.keys.call(call.call_sid))
    assert state["ck"] == ctx.identity.caller_key(CALLER)
    assert CALLER not in str(state)  # the number is only stored sealed
    assert ctx.identity.open(state["num"]) == CALLER


async def test_topic_and_departement_put_the_call_in_the_queue(ctx, engine, phone):
    await paused_volunteer(engine)
    call = phone(CALLER)
    await call.start()
    twiml = await call.press("1")
    assert "département" in twiml.text()
    twiml = await call.press("05")
    assert "zéro 5, Hautes-Alpes" in twiml.text() or "zéro cinq" in twiml.text()
    twiml = await call.press("1")
    enqueue = twiml.first("Enqueue")
    assert enqueue is not None and enqueue.text == ctx.settings.queue_name
    assert enqueue.attrib["waitUrl"].endswith("/twilio/voice/hold")
    assert "Restez en ligne" in twiml.text()
    task_id = (await ctx.redis.hgetall(ctx.keys.call(call.call_sid)))["task"]
    task = await engine.require_task(task_id)
    assert (task.channel, task.departement, task.skill) == (Channel.VOICE, "05", "famille")
    assert task.caller_key == ctx.identity.caller_key(CALLER)
    assert task.state is TaskState.WAITING


async def test_corsica_asks_which_departement(ctx, engine, phone):
    await paused_volunteer(engine)
    call = phone(CALLER)
    await call.start()
    await call.press("3")
    twiml = await call.press("20")
    assert "Corse-du-Sud" in twiml.text() and "Haute-Corse" in twiml.text()
    twiml = await call.press("2")
    assert "deux B, Haute-Corse" in twiml.text()
    await call.press("1")
    task_id = (await ctx.redis.hgetall(ctx.keys.call(call.call_sid)))["task"]
    assert (await engine.require_task(task_id)).departement == "2B"


async def test_corse_du_sud(ctx, engine, phone):
    await paused_volunteer(engine)
    call = phone(CALLER)
    await call.start()
    await call.press("4")
    await call.press("20")
    twiml = await call.press("1")
    assert "deux A, Corse-du-Sud" in twiml.text()
    await call.press("1")
    task_id = (await ctx.redis.hgetall(ctx.keys.call(call.call_sid)))["task"]
    task = await engine.require_task(task_id)
    assert (task.departement, task.skill) == ("2A", "")


async def test_overseas_departement_with_three_digits(ctx, engine, phone):
    await paused_volunteer(engine)
    call = phone("+262692123456")
    await call.start()
    await call.press("2")
    twiml = await call.press("974")
    assert "974, La Réunion" in twiml.text()
    await call.press("1")
    task_id = (await ctx.redis.hgetall(ctx.keys.call(call.call_sid)))["task"]
    assert (await engine.require_task(task_id)).departement == "974"


async def test_wrong_departement_can_be_corrected(ctx, engine, phone):
    await paused_volunteer(engine)
    call = phone(CALLER)
    await call.start()
    await call.press("1")
    await call.press("38")
    twiml = await call.press("2")  # "no, that's not it"
    assert "département" in twiml.text()
    await call.press("73")
    await call.press("1")
    task_id = (await ctx.redis.hgetall(ctx.keys.call(call.call_sid)))["task"]
    assert (await engine.require_task(task_id)).departement == "73"


async def test_bad_digits_reprompt_then_national_fallback_never_hangs_up(ctx, engine, phone):
    await paused_volunteer(engine)
    call = phone(CALLER)
    await call.start()
    twiml = await call.press("9")
    assert any("Je n'ai pas compris" in h for h in call.heard)
    assert twiml.first("Gather") is not None
    twiml = await call.silence()  # nothing pressed: the second failure
    assert "un bénévole vous aidera pour tout sujet" in twiml.text() or any(
        "pour tout sujet" in h for h in call.heard)
    twiml = await call.press("99")
    assert any("n'existe pas" in h for h in call.heard)
    twiml = await call.press("#")
    assert any("partout en France" in h for h in call.heard)
    assert twiml.first("Enqueue") is not None
    assert "Hangup" not in twiml.verbs()
    state = await ctx.redis.hgetall(ctx.keys.call(call.call_sid))
    assert state["national"] == "1"
    task = await engine.require_task(state["task"])
    # Nobody is available: the fallback is the most populous département, rings widen from it.
    biggest = max(engine.territories.departements.values(), key=lambda d: d.population)
    assert task.skill == "" and task.departement == biggest.code


async def test_national_fallback_goes_to_the_volunteer_free_longest(ctx, engine, clock, phone):
    await volunteer_on_duty(engine, "anne", "38")
    clock.advance(30)
    await volunteer_on_duty(engine, "bruno", "13")
    await volunteer_on_duty(engine, "carla", "05", Presence.PAUSED)
    call = phone(CALLER)
    await call.start()
    await call.press("9")
    await call.silence()
    await call.press("99")
    await call.press("#")  # no département: anyone in France
    state = await ctx.redis.hgetall(ctx.keys.call(call.call_sid))
    task = await engine.require_task(state["task"])
    assert (state["national"], task.departement, task.volunteer) == ("1", "38", "anne")


async def test_recognised_caller_confirms_last_departement(ctx, engine, phone):
    await volunteer_on_duty(engine, "anne", "38")
    first = phone(CALLER)
    await first.start()
    await first.press("4")
    await first.press("38")
    await first.press("1")
    first_task = (await ctx.redis.hgetall(ctx.keys.call(first.call_sid)))["task"]
    await engine.accept("anne", first_task)  # helped: the engine remembers the caller
    await first.hang_up()
    await engine.set_presence("anne", Presence.PAUSED)

    again = phone(CALLER)
    await again.start()
    twiml = await again.press("2")
    assert "récemment depuis le 38, Isère" in twiml.text()
    twiml = await again.press("1")
    assert twiml.first("Enqueue") is not None
    assert not any("Tapez le numéro de votre département" in h for h in again.heard)
    task_id = (await ctx.redis.hgetall(ctx.keys.call(again.call_sid)))["task"]
    assert (await engine.require_task(task_id)).departement == "38"


async def test_closed_outside_hours_takes_a_callback_request(ctx, engine, clock, phone):
    clock.set(datetime(2026, 11, 21, 10, 0, tzinfo=PARIS))  # a Saturday
    call = phone(CALLER)
    twiml = await call.start()
    text = " ".join(call.heard)
    assert "fermée" in text and "lundi à 9 heures" in text
    assert "ouverts du lundi au vendredi, de 9 heures à 18 heures" in text
    assert "tapez 1" in twiml.text()
    await call.press("1")
    await call.press("1")
    await call.press("05")
    twiml = await call.press("1")
    assert "se termine par 56 78" in twiml.text()
    twiml = await call.press("1")
    assert "quand la ligne sera ouverte" in twiml.text() and "Hangup" in twiml.verbs()
    assert await engine.live_tasks() == []
    async with ctx.sessions() as session:
        rows = await fetch_all(session, select(CallbackRequest))
    assert len(rows) == 1 and rows[0].state == "pending"
    assert CALLER not in rows[0].phone_sealed and ctx.identity.open(rows[0].phone_sealed) == CALLER
    asked_at_ms = clock.now_ms()

    clock.set(datetime(2026, 11, 23, 9, 0, 30, tzinfo=PARIS))  # Monday, the line opens
    assert await callbacks.release_pending(ctx) == 1
    assert await callbacks.release_pending(ctx) == 0  # once only
    task = await engine.require_task(rows[0].id)
    assert task.channel is Channel.CALLBACK and task.departement == "05"
    assert task.place_ms // 1000 == asked_at_ms // 1000  # keeps the time it was asked
    details = await callbacks.callback_details(ctx, task.id)
    assert details is not None and details.phone == CALLER


async def test_holiday_is_closed(ctx, engine, clock, phone):
    await volunteer_on_duty(engine, "anne", "05")
    clock.set(datetime(2026, 12, 25, 10, 0, tzinfo=PARIS))  # Christmas, a Friday
    call = phone(CALLER)
    twiml = await call.start()
    assert any("Noël" in h and "férié" in h for h in call.heard)
    assert any("lundi à 9 heures" in h for h in call.heard)
    assert twiml.first("Gather").attrib["action"].endswith("/offer-callback?try=1")
    twiml = await call.silence()  # nothing pressed: offered once more
    assert "tapez 1" in twiml.text() and twiml.first("Gather") is not None
    twiml = await call.silence()
    assert twiml.verbs()[-1] == "Hangup" and "Au revoir" in twiml.text()


async def test_closure_and_emergency_message(ctx, engine, clock, phone):
    await volunteer_on_duty(engine, "anne", "05")
    now = datetime.fromtimestamp(clock.now_ms() / 1000, PARIS)
    await ctx.schedule.save(Schedule(
        closures=[Closure(start=now.replace(hour=8), end=now.replace(hour=14),
                          message="Formation des bénévoles.")],
        emergency_message="Le site des impôts est en panne ce matin.",
    ))
    call = phone(CALLER)
    await call.start()
    text = " ".join(call.heard)
    assert "exceptionnellement fermée" in text and "Formation des bénévoles." in text
    assert "impôts est en panne" in text and "aujourd'hui à 14 heures" in text


async def test_nobody_on_duty_offers_a_callback_queued_at_once(ctx, engine, phone):
    call = phone(CALLER)
    twiml = await call.start()
    assert any("Aucun bénévole" in h for h in call.heard)
    await call.press("1")
    await call.press("3")
    await call.press("13")
    twiml = await call.press("1")
    twiml = await call.press("2")  # another number
    assert "dix chiffres" in twiml.text()
    twiml = await call.press("0611223344")
    assert "06 11 22 33 44" in twiml.text()
    twiml = await call.press("1")
    assert "dès que possible" in twiml.text()
    tasks = await engine.live_tasks()
    assert [(t.channel, t.departement, t.skill) for t in tasks] == [
        (Channel.CALLBACK, "13", "sante")]
    details = await callbacks.callback_details(ctx, tasks[0].id)
    assert details.phone == "+33611223344"


async def test_retried_webhook_changes_nothing_twice(ctx, engine, phone):
    await paused_volunteer(engine)
    call = phone(CALLER)
    await call.start()
    await call.press("1")
    await call.press("05")
    confirm = call.current.first("Gather").attrib["action"]
    first = await call.request(confirm, Digits="1")
    again = await call.request(confirm, Digits="1")  # Twilio retried
    assert first.first("Enqueue") is not None and again.first("Enqueue") is not None
    assert len(await engine.live_tasks()) == 1


async def test_closed_message_follows_the_coordinators_hours(ctx, engine, clock, phone):
    await ctx.schedule.save(Schedule(weekly={0: [("14:00", "17:30")], 2: [("14:00", "17:30")]}))
    call = phone(CALLER)  # Monday 9:00: before the afternoon opening
    await call.start()
    text = " ".join(call.heard)
    assert "ouverts le lundi, de 14 heures à 17 heures 30 ; le mercredi, de 14 heures" in text
    assert "aujourd'hui à 14 heures" in text
