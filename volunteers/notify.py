"""Writing to volunteers and coordinators: SMS, e-mail, or the outbox coordinators read.

Every message is first recorded in ``volunteer_outbox`` under a dedup key (one
reminder per booking and kind, one alert per slot...), so a job that runs twice
never writes twice. Then it is sent: by SMS through the telephony client when one
is configured (web/ injects it as ``Volunteers.sms``) and the person gave a phone
number, else by e-mail when SMTP is configured, else it stays in the outbox (status
"pending") for coordinators. A send that fails falls back down the same chain: a
refused SMS is tried by e-mail, and what nobody could send waits in the outbox with
the reason, where coordinators see it.

Phone numbers are sealed at rest: one is opened only to hand it to the SMS sender,
and neither it nor a provider's error text (which may quote it) is logged or stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import smtplib
from datetime import UTC, datetime
from email.message import EmailMessage

from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from volunteers.models import (
    Account,
    AccountStatus,
    Booking,
    OutboxMessage,
    OutboxStatus,
    Role,
)
from volunteers.runtime import Volunteers
from volunteers.slots import Slot
from volunteers.sql import first

log = logging.getLogger(__name__)


class Notifier:
    """Composes and sends the package's messages (all in French)."""

    def __init__(self, vol: Volunteers) -> None:
        self.vol = vol

    async def send(
        self,
        session: AsyncSession,
        *,
        dedup_key: str,
        kind: str,
        subject: str,
        body: str,
        account: Account | None = None,
        email: str = "",
        now: datetime | None = None,
    ) -> OutboxMessage | None:
        """Record then send one message; None if this dedup key was already written."""
        existing = await first(
            session, select(OutboxMessage).where(OutboxMessage.dedup_key == dedup_key)
        )
        if existing is not None:
            return None
        address = account.email if account else email
        wants_sms = self.vol.sms is not None and account is not None and bool(account.phone_sealed)
        can_mail = bool(self.vol.settings.smtp_host and address)
        channel = "sms" if wants_sms else "email" if can_mail else "outbox"
        row = OutboxMessage(
            dedup_key=dedup_key,
            account_id=account.id if account else None,
            kind=kind,
            channel=channel,
            subject=subject,
            body=body,
            created_at=now or datetime.now(UTC),
        )
        session.add(row)
        try:
            await session.commit()
        except IntegrityError:  # another process wrote it first
            await session.rollback()
            return None
        if channel == "outbox":
            return row
        problems: list[str] = []
        if channel == "sms":
            assert account is not None
            problem = await self._try_sms(account, body)
            if problem is None:
                return await self._sent(session, row, "sms")
            log.warning("sms %s not sent: %s", dedup_key, problem)
            problems.append(problem)
        if can_mail:
            try:
                await asyncio.to_thread(self._send_mail, address, subject, body)
            except Exception as exc:
                log.warning("e-mail %s not sent: %s", dedup_key, type(exc).__name__)
                problems.append(f"e-mail non envoyé ({type(exc).__name__})")
            else:
                return await self._sent(session, row, "email")
        # Nobody could send it: it waits in the outbox, with why, for coordinators.
        row.channel, row.status = "outbox", OutboxStatus.PENDING.value
        row.error = " ; ".join(problems)[:300]
        await session.commit()
        return row

    async def _try_sms(self, account: Account, body: str) -> str | None:
        """Send by SMS; None when it went, else why not (in French, without the number)."""
        assert self.vol.sms is not None
        phone = self.vol.sealer.open(account.phone_sealed)
        if not phone:
            return "numéro illisible (clé changée) : SMS non envoyé"
        try:
            await self.vol.sms.send_sms(phone, body)
        except ValueError:
            return "SMS non envoyé (numéro ou texte refusé)"
        except Exception as exc:
            # A provider's message may quote the number: keep only its error code.
            code = getattr(exc, "code", None)
            if isinstance(code, int):
                return f"SMS non envoyé (erreur Twilio {code})"
            return f"SMS non envoyé ({type(exc).__name__})"
        return None

    async def _sent(self, session: AsyncSession, row: OutboxMessage, channel: str) -> OutboxMessage:
        row.channel, row.status, row.sent_at = channel, OutboxStatus.SENT.value, datetime.now(UTC)
        await session.commit()
        return row

    def _send_mail(self, to: str, subject: str, body: str) -> None:
        s = self.vol.settings
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = s.smtp_from, to, subject
        message.set_content(body)
        with smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=20) as smtp:
            if s.smtp_starttls:
                smtp.starttls()
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password)
            smtp.send_message(message)

    async def coordinators(self, session: AsyncSession) -> list[Account]:
        rows = await session.exec(
            select(Account).where(
                Account.role.in_([Role.COORDINATOR.value, Role.ADMIN.value]),
                Account.status == AccountStatus.APPROVED.value,
            )
        )
        return list(rows)

    # Messages --------------------------------------------------------------------------

    async def reminder(
        self, session: AsyncSession, booking: Booking, account: Account, minutes: int, now: datetime
    ) -> OutboxMessage | None:
        slot = Slot(booking.slot_start, booking.slot_end)
        when = "demain" if minutes >= 12 * 60 else f"dans {_duration(minutes)}"
        body = (
            f"Permanence : rappel, votre créneau de bénévolat commence {when} "
            f"({slot.label}). Ouvrez la console quelques minutes avant : "
            f"{self.vol.settings.public_base_url}/benevole/console"
        )
        return await self.send(
            session,
            dedup_key=f"reminder:{minutes}:{booking.id}:{slot.key}",
            kind=f"rappel_{_duration(minutes).replace(' ', '')}",
            subject="Rappel de votre créneau Permanence",
            body=body,
            account=account,
            now=now,
        )

    async def nudge(
        self, session: AsyncSession, booking: Booking, account: Account, now: datetime
    ) -> OutboxMessage | None:
        slot = Slot(booking.slot_start, booking.slot_end)
        body = (
            f"Permanence : votre créneau ({slot.label}) a commencé et vous n'êtes pas "
            f"connecté. Ouvrez la console : {self.vol.settings.public_base_url}/benevole/console "
            "— ou prévenez un coordinateur si vous avez un empêchement."
        )
        return await self.send(
            session,
            dedup_key=f"noshow:{booking.id}:{slot.key}",
            kind="relance_absence",
            subject="Votre créneau Permanence a commencé",
            body=body,
            account=account,
            now=now,
        )

    async def alert_coordinators(
        self, session: AsyncSession, slot: Slot, missing: list[str], now: datetime
    ) -> int:
        body = (
            f"Permanence : créneau {slot.label} — bénévole(s) inscrit(s) mais non connecté(s) "
            f"après 10 minutes : {', '.join(missing)}."
        )
        sent = 0
        recipients = await self.coordinators(session)
        for coordinator in recipients:
            row = await self.send(
                session,
                dedup_key=f"noshow-alert:{slot.key}:{coordinator.id}",
                kind="alerte_absence",
                subject="Bénévoles absents sur un créneau",
                body=body,
                account=coordinator,
                now=now,
            )
            sent += row is not None
        if not recipients:  # still visible on the outbox page
            row = await self.send(
                session,
                dedup_key=f"noshow-alert:{slot.key}:all",
                kind="alerte_absence",
                subject="Bénévoles absents sur un créneau",
                body=body,
                now=now,
            )
            sent += row is not None
        return sent

    async def ask_standby(
        self, session: AsyncSession, booking: Booking, account: Account, now: datetime
    ) -> OutboxMessage | None:
        slot = Slot(booking.slot_start, booking.slot_end)
        body = (
            f"Permanence : il manque un bénévole sur le créneau en cours ({slot.label}), pour "
            "lequel vous êtes en liste d'attente. Si vous êtes disponible, ouvrez la console : "
            f"{self.vol.settings.public_base_url}/benevole/console"
        )
        return await self.send(
            session,
            dedup_key=f"standby-call:{booking.id}:{slot.key}",
            kind="appel_liste_attente",
            subject="Un créneau Permanence a besoin de vous",
            body=body,
            account=account,
            now=now,
        )

    async def standby_promoted(self, session: AsyncSession, booking: Booking) -> None:
        account = await session.get(Account, booking.account_id)
        if account is None:
            return
        slot = Slot(booking.slot_start, booking.slot_end)
        await self.send(
            session,
            dedup_key=f"promoted:{booking.id}:{slot.key}:{booking.changed_at.isoformat()}",
            kind="place_liberee",
            subject="Une place s'est libérée",
            body=(
                "Permanence : une place s'est libérée, vous êtes inscrit sur le créneau "
                f"{slot.label}."
            ),
            account=account,
        )

    async def slot_closed(
        self,
        session: AsyncSession,
        booking: Booking,
        account: Account,
        reason: str,
        now: datetime,
    ) -> OutboxMessage | None:
        """Tell a volunteer their booked slot closed; once per booking and closure reason."""
        slot = Slot(booking.slot_start, booking.slot_end)
        why = "la ligne n'ouvre pas ce jour-là" if reason == "fermé" else reason
        # The reason names the closure: a new closure on the same slot is news, the same
        # hours saved again are not.
        digest = hashlib.sha256(reason.encode()).hexdigest()[:12]
        return await self.send(
            session,
            dedup_key=f"slot-closed:{booking.id}:{slot.key}:{digest}",
            kind="creneau_ferme",
            subject="Votre créneau Permanence est fermé",
            body=(
                f"Permanence : votre créneau du {slot.label}, est fermé ({why}). "
                "Vous n'avez rien à faire."
            ),
            account=account,
            now=now,
        )

    async def registration_open(self, session: AsyncSession, emails: list[str]) -> None:
        for email in emails:
            await self.send(
                session,
                dedup_key=f"registration-open:{email}:{datetime.now(UTC):%Y%m%d}",
                kind="inscriptions_ouvertes",
                subject="Les inscriptions de bénévoles sont ouvertes",
                body=(
                    "Permanence : les inscriptions de bénévoles sont ouvertes. Inscrivez-vous : "
                    f"{self.vol.settings.public_base_url}/inscription"
                ),
                email=email,
            )


def _duration(minutes: int) -> str:
    if minutes % 60 == 0:
        hours = minutes // 60
        return f"{hours} heure" + ("s" if hours > 1 else "")
    return f"{minutes} minutes"
