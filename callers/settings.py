"""What the callers package needs from the application's settings.

web/ builds one of these from its own settings (environment variables); callers/
never reads the environment itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Twilio's public hold-music bucket; override with HOLD_MUSIC_URL in production.
DEFAULT_HOLD_MUSIC = "http://com.twilio.sounds.music.s3.amazonaws.com/MARKOVICHAMP-Borghestral.mp3"

DEFAULT_TOPICS: dict[str, tuple[str, str]] = {
    # keypad digit -> (what the caller hears, routing skill; "" = no skill required)
    "1": ("vos démarches pour la famille et pour vous", "famille"),
    "2": ("le travail ou une entreprise", "emploi"),
    "3": ("la santé", "sante"),
    "4": ("autre chose", ""),
}


@dataclass(frozen=True)
class CallersSettings:
    """Voice and chat parameters; every URL Twilio calls starts with public_base_url."""

    secret_key: str
    public_base_url: str = "http://localhost:8000"
    twilio_account_sid: str = "AC00000000000000000000000000000000"
    twilio_auth_token: str = "dev-auth-token"
    twilio_number: str = "+33800000000"  # the toll-free line: From of every outbound call
    twilio_api_base: str = ""  # "" = the real api.twilio.com; else a fake Twilio's base URL
    voice: str = "Polly.Lea"
    language: str = "fr-FR"
    hold_music_url: str = DEFAULT_HOLD_MUSIC
    announce_every_s: float = 45.0
    queue_name: str = "permanence"
    topics: dict[str, tuple[str, str]] = field(default_factory=lambda: dict(DEFAULT_TOPICS))
    chat_max_chars: int = 2000
    chat_messages_per_10s: int = 5  # per connection
    chat_messages_per_minute_ip: int = 40  # per IP, all connections together
    chat_starts_per_hour_ip: int = 20

    def url(self, path: str) -> str:
        """The public URL Twilio must call for a path of this app."""
        return self.public_base_url.rstrip("/") + path
