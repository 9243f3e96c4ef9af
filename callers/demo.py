"""Demo seed of the callers package (run by web.demo at every demo start; idempotent)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from callers.schedule import ScheduleStore


@dataclass
class CallersDemoReport:
    """Same fields as web.demo.DemoReport (callers/ does not import web/)."""

    links: list[tuple[str, str]] = field(default_factory=list)
    logins: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


async def seed(runtime: Any) -> CallersDemoReport:
    """Make the line's schedule explicit and say how the telephone side is simulated."""
    store = ScheduleStore(runtime.redis, runtime.settings.line)
    if not await runtime.redis.exists(store.key):
        await store.save(await store.get())  # the default: Mon-Fri 9h-18h, holidays closed
    report = CallersDemoReport(links=[("Chat for callers", "/aide")])
    if getattr(runtime.settings, "twilio_fake", False):
        report.links.append(("Demo telephone (calls the line)", "/fake-twilio/telephone"))
        report.links.append(("Fake Twilio: requests sent", "/fake-twilio/_fake/requests"))
        report.logins.append(("fake Twilio", runtime.settings.twilio_account_sid
                              or "AC00000000000000000000000000000000",
                              runtime.settings.twilio_auth_token or "dev-auth-token"))
        report.notes.append(
            "Telephony uses the built-in fake Twilio (TWILIO_FAKE): REST calls are recorded, "
            "not placed. Set TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN/TWILIO_NUMBER for a real line."
        )
    return report
