"""How web/ mounts the callers package (found by web.app's PACKAGE_WEB_MODULES).

- ``setup(app, settings)``: the Twilio webhooks (/twilio/voice/...), the chat page and
  socket (/aide...), and, when TWILIO_FAKE is on, the fake Twilio REST API under
  /fake-twilio (the demo's telephone network).
- ``lifespan(app)``: builds the services on the runtime web/ opened
  (``app.state.runtime``: redis, db, engine) and runs the bridge (engine events ->
  Twilio REST) and the release of callback requests when the line opens.

Hooks web/ may set on ``app.state`` before the lifespan starts:
- ``volunteer_reach``: ``async (volunteer_id) -> callers.reach.VolunteerReach | None``
  (how to ring a volunteer: softphone identity or phone number); default: softphone
  with the volunteer id as client identity.
Set by the lifespan for web/ and volunteers/: ``app.state.callers`` (the services),
``chat_bridge`` (the chat rooms, volunteers' ChatBridge shape), ``text_sender`` (SMS,
volunteers' TextSender shape), ``callback_details`` (``async (task_id, volunteer_id) ->
dict | None``: a callback's phone, e-mail, message, preferred time, first name, only for
the volunteer it is offered or assigned to).

This module never imports web/: it reads the settings and runtime by attribute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI

from callers import callbacks
from callers.chat.router import chat_router, static_files
from callers.chat.service import ChatService
from callers.context import Callers
from callers.fake_twilio import FakeTwilio, fake_twilio_app, fake_twilio_router
from callers.phone_sim import PhoneSimulator, phone_router
from callers.reach import softphone_by_id
from callers.settings import DEFAULT_HOLD_MUSIC, CallersSettings
from callers.texts import TwilioTexts
from callers.twilio_rest import build_twilio_client, close_twilio_client
from callers.voice.bridge import Bridge
from callers.voice.flow import VoiceFlow
from callers.voice.router import voice_router

log = logging.getLogger("callers.web")

LINKS = [("Discuter par écrit avec un bénévole", "/aide")]
FAKE_PREFIX = "/fake-twilio"
RELEASE_EVERY_S = 30.0


@dataclass
class CallersApp:
    """The callers services of one app process (set on app.state.callers)."""

    settings: CallersSettings
    fake: FakeTwilio | None = None
    ctx: Callers | None = None
    flow: VoiceFlow | None = None
    bridge: Bridge | None = None
    chat: ChatService | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def need(self, name: str) -> Any:
        value = getattr(self, name)
        if value is None:
            raise RuntimeError("the callers services are not started (app lifespan not run)")
        return value


CHAT_IP_LIMITS = ("chat_starts_per_hour_ip", "chat_messages_per_minute_ip")


def callers_settings(settings: Any) -> CallersSettings:
    """The callers' view of web's Settings (attributes only: callers/ never imports web/)."""
    fake = bool(getattr(settings, "twilio_fake", False))
    return CallersSettings(
        secret_key=settings.secret_key,
        public_base_url=settings.public_base_url,
        twilio_account_sid=getattr(settings, "twilio_account_sid", "")
        or "AC00000000000000000000000000000000",
        # Only the built-in fake may fall back to a token written in the source: a real
        # server without TWILIO_AUTH_TOKEN refuses every webhook (callers/voice/router.py).
        twilio_auth_token=getattr(settings, "twilio_auth_token", "")
        or ("dev-auth-token" if fake else ""),
        twilio_number=getattr(settings, "twilio_number", "") or "+33800000000",
        # The fake is answered in-process (see lifespan): any host name will do.
        twilio_api_base="http://fake-twilio.local" if fake
        else getattr(settings, "twilio_api_base", ""),
        hold_music_url=getattr(settings, "hold_music_url", "") or DEFAULT_HOLD_MUSIC,
        **{name: value for name in CHAT_IP_LIMITS if (value := getattr(settings, name, None))},
    )


def setup(app: FastAPI, settings: Any) -> None:
    """Declare the routes; the services behind them start with the lifespan."""
    cs = callers_settings(settings)
    state = CallersApp(cs)
    if getattr(settings, "twilio_fake", False):
        state.fake = FakeTwilio(cs.twilio_account_sid, cs.twilio_auth_token)
        app.include_router(fake_twilio_router(state.fake), prefix=FAKE_PREFIX,
                           include_in_schema=False)
        app.include_router(phone_router(PhoneSimulator(cs, state.fake)), prefix=FAKE_PREFIX)
    app.state.callers = state
    app.include_router(voice_router(cs, lambda: state.need("flow"), lambda: state.need("bridge")))
    app.include_router(chat_router(cs, lambda: state.need("chat")))
    app.mount("/aide/static", static_files(), name="aide-static")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Build the services on the open runtime and run the background loops."""
    state: CallersApp = app.state.callers
    runtime = app.state.runtime
    transport = None
    if state.fake is not None:
        # The demo's fake Twilio is answered in-process: no network, same request path.
        transport = httpx.ASGITransport(app=fake_twilio_app(state.fake))
    twilio = build_twilio_client(state.settings, transport=transport)
    ctx = Callers(
        settings=state.settings, engine=runtime.engine, twilio=twilio,
        sessions=runtime.db.session,
        reach=getattr(app.state, "volunteer_reach", None) or softphone_by_id,
    )
    state.ctx, state.flow = ctx, VoiceFlow(ctx)
    state.bridge, state.chat = Bridge(ctx), ChatService(ctx)
    state.bridge.hooks.append(state.chat.on_event)
    # For volunteers/ (web/ hands them over): the chat rooms (volunteers.runtime.ChatBridge)
    # and SMS from the line's number (volunteers.runtime.TextSender).
    app.state.chat_bridge = state.chat.room
    app.state.text_sender = TwilioTexts(twilio, state.settings.twilio_number)

    async def details(task_id: str, volunteer_id: str) -> dict[str, str] | None:
        found = await callbacks.callback_details_for(ctx, task_id, volunteer_id)
        return None if found is None else asdict(found)

    # For the console: a callback's contact details, only for its own volunteer.
    app.state.callback_details = details
    stop = asyncio.Event()
    state.tasks = [
        asyncio.create_task(_run_bridge(state.bridge, stop), name="callers-bridge"),
        asyncio.create_task(_release_loop(ctx, stop), name="callers-callbacks"),
    ]
    try:
        yield
    finally:
        stop.set()
        for task in state.tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await close_twilio_client(twilio)


async def _run_bridge(bridge: Bridge, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await bridge.run(stop, consumer=f"bridge-{socket.gethostname()}-{os.getpid()}")
        except Exception:  # Redis down at start: retry, /healthz shows the outage
            log.exception("bridge stopped; restarting")
            await asyncio.sleep(1)


async def _release_loop(ctx: Callers, stop: asyncio.Event) -> None:
    """Requests left while closed become callback tasks once the line opens."""
    while not stop.is_set():
        try:
            released = await callbacks.release_pending(ctx)
            if released:
                log.info("%d callback requests queued", released)
        except Exception:
            log.exception("releasing callback requests failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), RELEASE_EVERY_S)
