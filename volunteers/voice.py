"""Tokens for the console's softphone (Twilio Voice JS SDK): AccessToken + VoiceGrant."""

from __future__ import annotations

from volunteers.settings import VolunteersSettings


def configured(settings: VolunteersSettings) -> bool:
    """Whether the server has what a softphone token needs (API key and TwiML app)."""
    return all(
        (
            settings.twilio_account_sid,
            settings.twilio_api_key,
            settings.twilio_api_secret,
            settings.twilio_twiml_app_sid,
        )
    )


def access_token(settings: VolunteersSettings, identity: str) -> str:
    """A signed token letting this identity (the volunteer's id) receive calls in the browser.

    Calls reach the softphone as ``<Dial><Client>identity</Client></Dial>``; outgoing calls
    go to the TwiML app (the console never dials out on its own).
    """
    # Imported here: twilio.jwt brings PyJWT and cryptography's primitives (~9 MB resident),
    # only needed once a server has a softphone configured and a console asks for a token.
    from twilio.jwt.access_token import AccessToken
    from twilio.jwt.access_token.grants import VoiceGrant

    token = AccessToken(
        settings.twilio_account_sid,
        settings.twilio_api_key,
        settings.twilio_api_secret,
        identity=identity,
        ttl=settings.token_ttl_s,
    )
    token.add_grant(
        VoiceGrant(outgoing_application_sid=settings.twilio_twiml_app_sid, incoming_allow=True)
    )
    return token.to_jwt()
