"""Glue between volunteers/ and callers/ that only web/ may know: how to ring a volunteer,
and how to send them an SMS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from callers.reach import ReachMode, VolunteerReach
from volunteers.models import PhoneMode
from volunteers.reach import reach_of
from volunteers.runtime import TextSender


def install_volunteer_reach(app: FastAPI) -> None:
    """Give callers/ its ``volunteer_reach`` resolver, backed by the volunteers' profiles."""

    async def resolve(volunteer_id: str) -> VolunteerReach | None:
        vol = getattr(app.state, "volunteers", None)
        if vol is None:
            return None
        reach = await reach_of(vol, volunteer_id)
        if reach is None:
            return None
        mode = ReachMode.PHONE if reach.phone_mode is PhoneMode.PHONE else ReachMode.SOFTPHONE
        return VolunteerReach(
            volunteer_id, mode, identity=reach.identity, phone=reach.phone, name=reach.name
        )

    app.state.volunteer_reach = resolve


def twilio_configured(settings: Any) -> bool:
    """Whether SMS can go out: a real account and number, or the built-in fake."""
    if getattr(settings, "twilio_fake", False):
        return True
    return all(
        getattr(settings, name, "")
        for name in ("twilio_account_sid", "twilio_auth_token", "twilio_number")
    )


class AppTexts:
    """volunteers' TextSender over the Twilio client callers/ opens in the app's lifespan.

    Resolved at each send because callers/' lifespan builds that client (and its
    in-process fake) after the app is assembled.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def send_sms(self, to: str, body: str) -> None:
        sender: TextSender | None = getattr(self.app.state, "text_sender", None)
        if sender is None:
            raise RuntimeError("the telephony client is not started")
        await sender.send_sms(to, body)


def install_volunteer_sms(app: FastAPI, settings: Any) -> None:
    """Hand volunteers/ an SMS sender (``app.state.volunteers_sms``) when Twilio is set up;
    without one, reminders go by e-mail or wait in the outbox."""
    app.state.volunteers_sms = AppTexts(app) if twilio_configured(settings) else None


@asynccontextmanager
async def standalone_texts(settings: Any) -> AsyncIterator[TextSender | None]:
    """An SMS sender for a process without the app (``permanence scheduler``).

    Only with a real Twilio account: the fake lives inside the app process, and a
    scheduler of its own would record messages nobody can see.
    """
    if getattr(settings, "twilio_fake", False) or not twilio_configured(settings):
        yield None
        return
    from callers.texts import TwilioTexts
    from callers.twilio_rest import build_twilio_client, close_twilio_client
    from callers.web import callers_settings

    cs = callers_settings(settings)
    client = build_twilio_client(cs)
    try:
        yield TwilioTexts(client, cs.twilio_number)
    finally:
        await close_twilio_client(client)
