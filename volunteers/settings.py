"""What the volunteers package needs from the application's settings.

web/ builds one of these from its own settings (environment variables); volunteers/
never reads the environment itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field


def _default_weekly() -> dict[int, list[tuple[str, str]]]:
    return {day: [("09:00", "18:00")] for day in range(5)}


@dataclass(frozen=True)
class VolunteersSettings:
    """Slots, shift jobs, console and reminders parameters. Times are Europe/Paris."""

    secret_key: str
    public_base_url: str = "http://localhost:8000"
    # Opening hours: weekday (0 = Monday) -> [start, end) pairs; French holidays closed.
    weekly_hours: dict[int, list[tuple[str, str]]] = field(default_factory=_default_weekly)
    holidays_closed: bool = True
    slot_minutes: int = 120
    slot_target: int = 3  # volunteers wanted per slot (coordinators override per slot)
    slot_max: int = 6  # bookings beyond this go to the standby list
    cancel_cutoff_hours: float = 24.0  # no cancelling later than this before the slot
    booking_horizon_days: int = 56  # how far ahead slots are offered, recurring expanded
    reminders_before_min: tuple[int, ...] = (24 * 60, 60)
    no_show_after_min: int = 10
    end_grace_min: int = 10  # at slot end + this, a volunteer still logged in is logged out
    misfire_grace_min: int = 5
    heartbeat_s: float = 10.0  # the console pings this often
    heartbeat_timeout_s: float = 30.0  # no message for this long → logged out in the engine
    restore_window_s: float = 600.0  # reconnecting within this restores the lost presence
    # Still away this long after being logged out as lost: their chats go to someone else.
    lost_chat_grace_s: float = 60.0
    # Twilio Voice JS SDK tokens (API key + TwiML app); empty → softphone unavailable.
    twilio_account_sid: str = ""
    twilio_api_key: str = ""
    twilio_api_secret: str = ""
    twilio_twiml_app_sid: str = ""
    token_ttl_s: int = 3600
    # Failed logins (counted in Redis across processes): beyond these within the window,
    # logins for that e-mail, or from that IP, are refused until the window ends.
    login_max_failures_email: int = 5
    login_max_failures_ip: int = 30
    login_window_s: float = 900.0
    # Reminders by e-mail when an SMTP host is set.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_from: str = "permanence@localhost"
    smtp_starttls: bool = True
