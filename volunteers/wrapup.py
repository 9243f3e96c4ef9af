"""The wrap-up form: what was asked, how it ended, the caller's consent, notes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from routing.skills import SKILLS
from volunteers.errors import VolunteerError
from volunteers.models import WrapUp

TOPICS: dict[str, str] = {**SKILLS, "autre": "Autre démarche"}
OUTCOMES: dict[str, str] = {
    "resolved": "Résolu",
    "referred": "Orienté vers un organisme",
    "callback": "À rappeler",
    # The line dropped, or the person left before anything could be done: often on a weak
    # mobile line in the mountains; without it such a call would be counted as resolved.
    "interrupted": "Interrompu (appel coupé, personne partie)",
}
REFERRALS: dict[str, str] = {
    "caf": "CAF",
    "cpam": "CPAM (Ameli)",
    "france_travail": "France Travail",
    "impots": "Impôts (centre des finances publiques)",
    "prefecture": "Préfecture (ANTS)",
    "carsat": "Caisse de retraite (Carsat, MSA…)",
    "france_services": "France Services la plus proche",
    "aidants_connect": "Aidants Connect",
    "mairie": "Mairie ou CCAS",
    "autre": "Autre organisme",
}
MAX_NOTES = 4000


@dataclass(frozen=True)
class WrapUpInput:
    task_id: str
    topic: str
    outcome: str
    referral: str = ""
    notes: str = ""
    consent: bool = False
    consent_demarche: str = ""

    @classmethod
    def from_message(cls, msg: dict[str, Any]) -> WrapUpInput:
        return cls(
            task_id=str(msg.get("task", "")),
            topic=str(msg.get("topic", "")),
            outcome=str(msg.get("outcome", "")),
            referral=str(msg.get("referral", "") or ""),
            notes=str(msg.get("notes", "") or ""),
            consent=bool(msg.get("consent", False)),
            consent_demarche=str(msg.get("consent_demarche", "") or ""),
        )


def check(form: WrapUpInput) -> WrapUpInput:
    """Check the form; a clear French error names the first problem."""
    if form.topic not in TOPICS:
        raise VolunteerError("bad_topic", "Choisissez le sujet de la demande.")
    if form.outcome not in OUTCOMES:
        raise VolunteerError("bad_outcome", "Choisissez comment la demande s'est terminée.")
    if form.outcome == "referred" and form.referral not in REFERRALS:
        raise VolunteerError(
            "bad_referral", "Choisissez l'organisme vers lequel vous avez orienté."
        )
    if len(form.notes) > MAX_NOTES:
        raise VolunteerError(
            "long_notes", f"Les notes sont trop longues ({MAX_NOTES} caractères au plus)."
        )
    demarche = " ".join(form.consent_demarche.split())
    if form.consent and not 3 <= len(demarche) <= 200:
        raise VolunteerError(
            "consent_demarche",
            "Précisez pour quelle démarche la personne vous autorise à agir pour elle.",
        )
    return WrapUpInput(
        task_id=form.task_id,
        topic=form.topic,
        outcome=form.outcome,
        referral=form.referral if form.outcome == "referred" else "",
        notes=form.notes.strip(),
        consent=form.consent,
        consent_demarche=demarche if form.consent else "",
    )


async def store(
    session: AsyncSession,
    form: WrapUpInput,
    *,
    account_id: int,
    volunteer_id: str,
    caller_key: str,
    channel: str,
    departement: str,
    now: datetime | None = None,
) -> WrapUp:
    """Save a checked wrap-up; a task has at most one (a second submission is refused)."""
    when = now or datetime.now(UTC)
    row = WrapUp(
        task_id=form.task_id,
        account_id=account_id,
        volunteer_id=volunteer_id,
        caller_key=caller_key,
        channel=channel,
        departement=departement,
        topic=form.topic,
        outcome=form.outcome,
        referral=form.referral,
        notes=form.notes,
        consent=form.consent,
        consent_demarche=form.consent_demarche,
        consent_at=when if form.consent else None,
        created_at=when,
    )
    session.add(row)
    try:
        await session.commit()
    except IntegrityError:
        await session.rollback()
        raise VolunteerError(
            "wrapup_exists", "La fiche de cette demande a déjà été enregistrée."
        ) from None
    return row


async def previous_notes(
    session: AsyncSession, caller_key: str, limit: int = 3
) -> list[dict[str, Any]]:
    """The last wrap-ups of a returning caller, newest first (for the console's offer)."""
    if not caller_key:
        return []
    rows = await session.exec(
        select(WrapUp)
        .where(WrapUp.caller_key == caller_key)
        .order_by(WrapUp.created_at.desc())
        .limit(limit)
    )
    return [
        {
            "at": row.created_at.isoformat(),
            "topic": TOPICS.get(row.topic, row.topic),
            "outcome": OUTCOMES.get(row.outcome, row.outcome),
            "referral": REFERRALS.get(row.referral, ""),
            "notes": row.notes,
        }
        for row in rows
    ]
