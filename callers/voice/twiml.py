"""Small helpers to write TwiML in the line's voice."""

from __future__ import annotations

from urllib.parse import urlencode

from twilio.twiml.voice_response import Gather, VoiceResponse

from callers.settings import CallersSettings

VOICE_PREFIX = "/twilio/voice"


class Speaker:
    """Builds responses that all speak French with the configured voice."""

    def __init__(self, settings: CallersSettings) -> None:
        self.settings = settings

    def url(self, step: str, **query: object) -> str:
        """The absolute URL of a voice step, as Twilio must request (and sign) it."""
        path = f"{VOICE_PREFIX}/{step}"
        if query:
            path += "?" + urlencode({k: str(v) for k, v in query.items()})
        return self.settings.url(path)

    def say(self, target: VoiceResponse | Gather, *texts: str) -> None:
        for text in texts:
            if text:
                target.say(text, voice=self.settings.voice, language=self.settings.language)

    def gather(
        self, response: VoiceResponse, step: str, *, digits: int = 1, hash_ends: bool = False,
        timeout: int = 6, **query: object,
    ) -> Gather:
        """A keypad prompt posting to a step; a timeout falls through to the next verb."""
        return response.gather(
            input="dtmf",
            num_digits=digits,
            action=self.url(step, **query),
            method="POST",
            timeout=timeout,
            finish_on_key="#" if hash_ends else "",
            language=self.settings.language,
        )

    def redirect(self, response: VoiceResponse, step: str, **query: object) -> None:
        response.redirect(self.url(step, **query), method="POST")

    def goodbye(self, response: VoiceResponse, *texts: str) -> VoiceResponse:
        self.say(response, *texts)
        response.hangup()
        return response
