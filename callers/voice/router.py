"""The Twilio webhooks of the voice line, every one behind signature validation."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import VoiceResponse

from callers.settings import CallersSettings
from callers.voice.bridge import Bridge
from callers.voice.flow import VoiceFlow
from callers.voice.signature import verified_form
from callers.voice.twiml import VOICE_PREFIX

log = logging.getLogger("callers.voice")

Step = Callable[[dict[str, str], dict[str, str]], Awaitable[VoiceResponse]]


def voice_router(
    settings: CallersSettings, flow: Callable[[], VoiceFlow], bridge: Callable[[], Bridge]
) -> APIRouter:
    """POST endpoints under /twilio/voice; 403 and no effect without a valid signature.

    ``flow`` and ``bridge`` give the services at request time (they are built when the
    app starts, after the routes are declared).
    """
    # No token, no voice line: a validator with an empty key would accept anybody's
    # signature computed with that empty key.
    validator = RequestValidator(settings.twilio_auth_token) if settings.twilio_auth_token else None
    if validator is None:
        log.warning("TWILIO_AUTH_TOKEN is not set: every Twilio webhook is refused (403)")
    router = APIRouter(prefix=VOICE_PREFIX, tags=["twilio"])
    steps: dict[str, tuple[str, str]] = {
        "incoming": ("flow", "incoming"),
        "offer-callback": ("flow", "offer_callback"),
        "topic": ("flow", "topic"),
        "topic/answer": ("flow", "topic_answer"),
        "known": ("flow", "known"),
        "known/answer": ("flow", "known_answer"),
        "dept": ("flow", "dept"),
        "dept/answer": ("flow", "dept_answer"),
        "dept/corse": ("flow", "dept_corse"),
        "dept/corse/answer": ("flow", "dept_corse_answer"),
        "dept/confirm": ("flow", "dept_confirm"),
        "dept/confirm/answer": ("flow", "dept_confirm_answer"),
        "hold": ("flow", "hold"),
        "hold/key": ("flow", "hold_key"),
        "queue-exit": ("flow", "queue_exit"),
        "callback/confirm": ("flow", "callback_confirm"),
        "callback/confirm/answer": ("flow", "callback_confirm_answer"),
        "callback/number": ("flow", "callback_number"),
        "callback/number/answer": ("flow", "callback_number_answer"),
        "callback/number/check": ("flow", "callback_number_check"),
        "status": ("flow", "status"),
        "join": ("flow", "join"),
        "back-in-queue": ("flow", "back_in_queue"),
        "after": ("flow", "after"),
        "leg/answer": ("bridge", "leg_answer"),
        "leg/key": ("bridge", "leg_key"),
        "leg/status": ("bridge", "leg_status"),
        "leg/after": ("bridge", "leg_after"),
        "callback-leg/status": ("bridge", "callback_leg_status"),
    }

    def endpoint(owner: str, method: str) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            form = await verified_form(request, validator, settings.public_base_url)
            if not form.get("CallSid"):
                return Response("missing CallSid", status_code=400)
            target = flow() if owner == "flow" else bridge()
            step: Step = getattr(target, method)
            twiml = await step(form, dict(request.query_params))
            return Response(str(twiml), media_type="application/xml")

        return handle

    for path, (owner, method) in steps.items():
        router.add_api_route(
            f"/{path}",
            endpoint(owner, method),
            methods=["POST"],
            name=f"twilio-{path}",
            include_in_schema=False,
        )
    return router
