"""Demo data: a coordinator and volunteers across several départements (idempotent).

Called by web/demo.py's seed list with the process runtime (``runtime.db``,
``runtime.engine``); returns what the person starting the demo should know.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from volunteers import accounts
from volunteers.bookings import Bookings
from volunteers.credentials import Sealer
from volunteers.errors import VolunteerError
from volunteers.models import AccountStatus, Role
from volunteers.profile import ProfileInput, clean_profile
from volunteers.settings import VolunteersSettings
from volunteers.slots import SlotPlan, paris

PASSWORD = "demo-permanence"
PEOPLE: list[dict[str, Any]] = [
    # name, e-mail, postal code, skills, role, phone (own phone mode if set), status
    {"name": "Claire Coordination", "email": "coordination@permanence.demo", "cp": "75011",
     "skills": ("famille", "emploi"), "role": Role.COORDINATOR},
    {"name": "Anne Gap", "email": "anne@permanence.demo", "cp": "05000",
     "skills": ("famille", "sante", "numerique")},
    {"name": "Bruno Briançon", "email": "bruno@permanence.demo", "cp": "05100",
     "skills": ("emploi", "impots"), "phone": "06 12 34 56 78"},
    {"name": "Chloé Grenoble", "email": "chloe@permanence.demo", "cp": "38000",
     "skills": ("retraite", "papiers", "logement"), "languages": ("en",)},
    {"name": "Djamel Marseille", "email": "djamel@permanence.demo", "cp": "13001",
     "skills": ("famille", "impots"), "languages": ("ar",)},
    {"name": "Élise Saint-Denis", "email": "elise@permanence.demo", "cp": "97400",
     "skills": ("sante", "famille")},
    {"name": "Fabien Attente", "email": "fabien@permanence.demo", "cp": "73000",
     "skills": ("numerique",), "status": AccountStatus.PENDING},
]  # fmt: skip


@dataclass
class Report:
    """Same shape as web.demo.DemoReport (merged by duck typing: nothing imports web/)."""

    links: list[tuple[str, str]] = field(default_factory=list)
    logins: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


async def seed(runtime: Any) -> Report:
    settings = VolunteersSettings(secret_key=runtime.settings.secret_key)
    sealer = Sealer(settings.secret_key)
    report = Report(
        links=[("Espace bénévoles", "/benevole"), ("Console bénévole", "/benevole/console")]
    )
    created = 0
    now = datetime.now(UTC)
    async with runtime.db.session() as session:
        await accounts.set_registration(session, True, None)
        for person in PEOPLE:
            role = person.get("role", Role.VOLUNTEER)
            status = person.get("status", AccountStatus.APPROVED)
            account = await accounts.by_email(session, person["email"])
            if account is None:
                account = await accounts.create_account(
                    session,
                    email=person["email"],
                    password=PASSWORD,
                    name=person["name"],
                    role=role,
                    status=status,
                    postal_code=person["cp"],
                )
                profile = clean_profile(
                    ProfileInput(
                        name=person["name"],
                        postal_code=person["cp"],
                        skills=person["skills"],
                        languages=("fr", *person.get("languages", ())),
                        structure="france_services",
                        phone_mode="phone" if person.get("phone") else "browser",
                        phone=person.get("phone", ""),
                        chat_capacity="2",
                    )
                )
                await accounts.save_profile(session, account, profile, sealer)
                created += 1
                if status == AccountStatus.APPROVED:
                    await _book_this_week(session, settings, account, now)
            label = {"coordinator": "coordinateur", "admin": "admin"}.get(role, "bénévole")
            if status == AccountStatus.PENDING:
                label += " (à valider)"
            report.logins.append((label, person["email"], PASSWORD))
    if created:
        report.notes.append(f"volunteers: {created} demo account(s) created, registration open")
    return report


async def _book_this_week(
    session: Any, settings: VolunteersSettings, account: Any, now: datetime
) -> None:
    """A couple of upcoming slots so the week view and reminders have something to show."""
    day = paris(now).date()
    slots = await SlotPlan(settings).slots_between(day, day + timedelta(days=7))
    for slot in [s for s in slots if s.start > now][(account.id or 0) % 3 :: 4][:3]:
        try:
            await Bookings(session, settings).book(account, slot.start, now)
        except VolunteerError:
            continue
