"""The coordinators' actions on the line, each one written to the audit log.

Every function validates its input first (a clear French error, nothing changed),
then changes the line, then records who did what in the same SQL transaction as
any SQL change, and finally tells every process's dashboard hub.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from callers.schedule import Closure, Schedule, ScheduleStore
from routing.clock import PARIS
from routing.config import RoutingConfig
from routing.engine import Engine
from routing.errors import RoutingError
from routing.models import Presence
from volunteers import accounts
from volunteers.bookings import Bookings
from volunteers.errors import VolunteerError
from volunteers.slots import parse_slot_key
from web import audit
from web.coordination.hub import notify

BROADCAST_MAXLEN = 200
MAX_BROADCAST_CHARS = 500
MAX_REASON_CHARS = 80
ROUTING_FIELDS = ("widen_group_s", "widen_region_s", "widen_national_s", "ring_s")
# Optional in the form: older clients (the live simulator) post only the fields above.
ROUTING_OPTIONAL_FIELDS = ("local_first_max_wait_s",)


class ControlError(ValueError):
    """A coordinator's request that cannot be done; ``message`` is French."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def broadcast_key(line: str) -> str:
    """Stream of coordinators' messages to every volunteer console (newest last)."""
    return f"perm:coord:{{{line}}}:broadcast"


def _actor(user: Any) -> str:
    return str(getattr(user, "account_id", "") or getattr(user, "public_id", "") or "inconnu")


def _who(user: Any) -> dict[str, str]:
    return {"by": getattr(user, "name", "")}


async def _routing_call(coro: Any) -> None:
    try:
        await coro
    except RoutingError as exc:
        raise ControlError(exc.message) from exc
    except ValueError as exc:
        raise ControlError(str(exc)) from exc


# Volunteers and contacts ---------------------------------------------------------------


async def set_volunteer_presence(
    engine: Engine, session: AsyncSession, user: Any, volunteer_id: str, action: str,
    reason: str = "",
) -> str:
    """Pause or log out a volunteer; returns what to tell the coordinator."""
    volunteer = await engine.volunteer(volunteer_id)
    if volunteer is None:
        raise ControlError("Ce bénévole n'est pas connu sur la ligne.")
    reason = reason.strip()[:MAX_REASON_CHARS]
    if action == "pause":
        presence, reason = Presence.PAUSED, reason or "mis en pause par la coordination"
        done = f"{volunteer.name or volunteer_id} est en pause."
    elif action == "deconnexion":
        presence = Presence.LOGGED_OUT
        reason = reason or "déconnecté par la coordination"
        done = f"{volunteer.name or volunteer_id} est déconnecté."
    else:
        raise ControlError("Action inconnue.")
    await _routing_call(engine.set_presence(volunteer_id, presence, reason))
    audit.record(session, _actor(user), f"volunteer.{presence.value}", volunteer_id,
                 {**_who(user), "reason": reason})
    await session.commit()
    return done


async def set_contact_priority(
    engine: Engine, session: AsyncSession, user: Any, task_id: str, priority: str | int
) -> str:
    try:
        value = int(priority)
    except (TypeError, ValueError):
        raise ControlError("La priorité doit être un nombre de 0 à 9.") from None
    if not 0 <= value <= 9:
        raise ControlError("La priorité doit être un nombre de 0 à 9.")
    task = await engine.task(task_id)
    if task is None:
        raise ControlError("Ce contact n'est plus dans la file.")
    await _routing_call(engine.set_priority(task_id, value))
    audit.record(session, _actor(user), "contact.priority", task_id,
                 {**_who(user), "from": task.priority, "to": value})
    await session.commit()
    return f"Priorité du contact passée à {value}."


# Messages to consoles -------------------------------------------------------------------


async def broadcast(
    redis: Redis, session: AsyncSession, user: Any, line: str, text: str, now_ms: int
) -> str:
    """A message every volunteer console shows (stream ``broadcast_key``)."""
    text = " ".join(text.split())
    if not text:
        raise ControlError("Écrivez un message avant de l'envoyer.")
    if len(text) > MAX_BROADCAST_CHARS:
        raise ControlError(f"Le message est trop long ({MAX_BROADCAST_CHARS} caractères au plus).")
    entry = await redis.xadd(
        broadcast_key(line),
        {"text": text, "author": getattr(user, "name", ""), "at": str(now_ms)},
        maxlen=BROADCAST_MAXLEN,
        approximate=True,
    )
    audit.record(session, _actor(user), "broadcast.send", entry, {**_who(user), "text": text})
    await session.commit()
    await notify(redis, line, "broadcast", id=entry)
    return "Message envoyé à tous les bénévoles connectés."


async def recent_broadcasts(redis: Redis, line: str, count: int = 5) -> list[dict[str, str]]:
    """The latest messages sent to consoles, newest first."""
    entries = await redis.xrevrange(broadcast_key(line), "+", "-", count=count)
    return [{"id": i, **fields} for i, fields in entries]


# Registration -------------------------------------------------------------------------------


async def set_registration(
    redis: Redis, session: AsyncSession, user: Any, line: str, open_: bool
) -> str:
    waiting = await accounts.set_registration(session, open_, getattr(user, "account_id", None))
    audit.record(session, _actor(user), "registration.open" if open_ else "registration.close",
                 "", {**_who(user), "notices": len(waiting)})
    await session.commit()
    await notify(redis, line, "registration")
    if open_:
        extra = f" {len(waiting)} personne(s) avaient demandé à être prévenues." if waiting else ""
        return "Les inscriptions de bénévoles sont ouvertes." + extra
    return "Les inscriptions de bénévoles sont fermées."


# Slot targets -------------------------------------------------------------------------------


async def set_slot_target(
    redis: Redis, session: AsyncSession, user: Any, line: str, book: Bookings,
    slot_key: str, value: str,
) -> str:
    """Override how many volunteers a slot needs, or (empty value) hand it back to the
    forecast; volunteers.targets makes the override win everywhere."""
    try:
        start = parse_slot_key(slot_key)
    except ValueError:
        raise ControlError("Ce créneau n'existe pas.") from None
    slot = await book.plan.slot_at(start)
    if slot is None:
        raise ControlError("Ce créneau n'existe pas.")
    value = value.strip()
    if value:
        try:
            target = int(value)
        except ValueError:
            raise ControlError("L'objectif doit être un nombre entier de bénévoles.") from None
        audit.record(session, _actor(user), "slot.target", slot.key,
                     {**_who(user), "slot": slot.label, "target": target})
        try:
            await book.set_target(slot.start, target)  # commits the audit entry with it
        except VolunteerError as exc:
            await session.rollback()
            raise ControlError(exc.message) from None
        done = f"Objectif du créneau {slot.label} fixé à {target} bénévole(s)."
    else:
        audit.record(session, _actor(user), "slot.target_cleared", slot.key,
                     {**_who(user), "slot": slot.label})
        if not await book.clear_target(slot.start):
            await session.rollback()
            raise ControlError("Ce créneau suit déjà la prévision.")
        done = f"Le créneau {slot.label} suit de nouveau la prévision."
    await notify(redis, line, "slots")
    return done


# The line: close now, reopen, hours and closures ------------------------------------------


def _paris(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(PARIS)


def parse_local(text: str) -> datetime:
    """A 'YYYY-MM-DDTHH:MM' from a datetime-local field, as Europe/Paris."""
    try:
        return datetime.strptime(text.strip(), "%Y-%m-%dT%H:%M").replace(tzinfo=PARIS)
    except ValueError:
        raise ControlError("Date ou heure invalide (format attendu : JJ/MM/AAAA HH:MM).") from None


async def close_line_now(
    redis: Redis, session: AsyncSession, user: Any, line: str, message: str, until: str,
    now_ms: int,
) -> str:
    """Close the line from now on with a message callers hear and read."""
    message = " ".join(message.split())
    if not message:
        raise ControlError("Écrivez le message que les appelants entendront.")
    if len(message) > 300:
        raise ControlError("Le message est trop long (300 caractères au plus).")
    start = _paris(now_ms)
    if until.strip():
        end = parse_local(until)
        if end <= start:
            raise ControlError("La réouverture doit être dans le futur.")
    else:  # until the end of the day unless reopened earlier
        end = datetime.combine(start.date() + timedelta(days=1), datetime.min.time(), PARIS)
    store = ScheduleStore(redis, line)
    schedule = await store.get()
    schedule.closures.append(Closure(start=start, end=end, message=message))
    await store.save(schedule)
    audit.record(session, _actor(user), "line.close", line,
                 {**_who(user), "message": message, "until": end.isoformat()})
    await session.commit()
    await notify(redis, line, "line")
    return f"La ligne est fermée jusqu'au {end:%d/%m/%Y à %H:%M}."


async def reopen_line(
    redis: Redis, session: AsyncSession, user: Any, line: str, now_ms: int
) -> str:
    """End every closure in force now (the weekly hours apply again)."""
    now = _paris(now_ms)
    store = ScheduleStore(redis, line)
    schedule = await store.get()
    active = [c for c in schedule.closures if c.start <= now < c.end]
    if not active:
        raise ControlError("Aucune fermeture n'est en cours.")
    kept = [c for c in schedule.closures if not c.start <= now < c.end]
    # A closure that started in the past is kept as history, ended now.
    kept += [Closure(start=c.start, end=now, message=c.message) for c in active if c.start < now]
    schedule.closures = sorted(kept, key=lambda c: c.start)
    await store.save(schedule)
    audit.record(session, _actor(user), "line.reopen", line, {**_who(user)})
    await session.commit()
    await notify(redis, line, "line")
    return "La ligne est rouverte (selon les horaires habituels)."


async def save_hours(
    redis: Redis, session: AsyncSession, user: Any, line: str, form: dict[str, str]
) -> str:
    """Weekly hours from the form (``jour_N`` = 'HH:MM-HH:MM, HH:MM-HH:MM'), holidays, message."""
    store = ScheduleStore(redis, line)
    schedule = await store.get()
    weekly: dict[int, list[tuple[str, str]]] = {}
    for day in range(7):
        text = form.get(f"jour_{day}", "").strip()
        ranges = []
        for part in filter(None, (p.strip() for p in text.replace(";", ",").split(","))):
            start, sep, end = part.replace("–", "-").partition("-")
            if not sep:
                raise ControlError(f"Horaire illisible : « {part} » (exemple : 09:00-12:30).")
            ranges.append((_hm(start), _hm(end)))
        if ranges:
            weekly[day] = ranges
    try:
        new = Schedule(
            weekly=weekly,
            public_holidays_closed=form.get("feries_fermes") == "1",
            closures=schedule.closures,
            emergency_message=" ".join(form.get("message_accueil", "").split()),
        )
    except ValueError as exc:
        raise ControlError(_first_error(exc)) from None
    await store.save(new)
    audit.record(session, _actor(user), "line.hours", line,
                 {**_who(user), "weekly": {str(k): v for k, v in weekly.items()},
                  "holidays_closed": new.public_holidays_closed})
    await session.commit()
    await notify(redis, line, "line")
    return "Horaires enregistrés."


def _hm(text: str) -> str:
    text = text.strip().replace("h", ":").replace("H", ":")
    hour, _, minute = text.partition(":")
    try:
        h, m = int(hour), int(minute or 0)
    except ValueError:
        raise ControlError(f"Heure illisible : « {text} ».") from None
    if h == 24 and m == 0:
        # A day's hours are times of that day (callers.schedule compares clock times):
        # midnight at the end of the day is not one.
        raise ControlError(f"Heure invalide : « {text} ». Pour ouvrir jusqu'à minuit, "
                           "écrivez 23:59.")
    if not (0 <= h <= 23 and 0 <= m < 60):
        raise ControlError(f"Heure invalide : « {text} ».")
    return f"{h:02d}:{m:02d}"


def _first_error(exc: Exception) -> str:
    """The model's (French) reason, as a sentence."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        text = str(first.get("ctx", {}).get("error", first.get("msg", exc)))
    else:
        text = str(exc)
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


async def add_closure(
    redis: Redis, session: AsyncSession, user: Any, line: str, start: str, end: str,
    message: str,
) -> str:
    store = ScheduleStore(redis, line)
    schedule = await store.get()
    first, last = parse_local(start), parse_local(end)
    try:
        closure = Closure(start=first, end=last, message=" ".join(message.split()))
    except ValueError as exc:
        raise ControlError(_first_error(exc)) from None
    schedule.closures = sorted([*schedule.closures, closure], key=lambda c: c.start)
    await store.save(schedule)
    audit.record(session, _actor(user), "line.closure_add", line,
                 {**_who(user), "start": closure.start.isoformat(),
                  "end": closure.end.isoformat(), "message": closure.message})
    await session.commit()
    await notify(redis, line, "line")
    return "Fermeture ajoutée."


CLOSURE_CHANGED = "Cette fermeture a changé ou n'existe plus. Rechargez la page."


async def remove_closure(
    redis: Redis, session: AsyncSession, user: Any, line: str, index: int, start: str, end: str
) -> str:
    """Remove the closure at ``index`` of the list the page showed.

    Adding a closure re-sorts the list and removing one shifts it, so a page loaded before
    a colleague's change names another closure by that index: the page also sends the
    closure's start and end (ISO), and a closure that no longer matches them is refused."""
    store = ScheduleStore(redis, line)
    schedule = await store.get()
    if not 0 <= index < len(schedule.closures):
        raise ControlError(CLOSURE_CHANGED)
    if not _is_closure(schedule.closures[index], start, end):
        raise ControlError(CLOSURE_CHANGED)
    removed = schedule.closures.pop(index)
    await store.save(schedule)
    audit.record(session, _actor(user), "line.closure_remove", line,
                 {**_who(user), "start": removed.start.isoformat(),
                  "end": removed.end.isoformat()})
    await session.commit()
    await notify(redis, line, "line")
    return "Fermeture supprimée."


def _is_closure(closure: Closure, start: str, end: str) -> bool:
    """Whether a closure starts and ends at these ISO moments (a naive one matches none)."""
    try:
        return (closure.start, closure.end) == (
            datetime.fromisoformat(start), datetime.fromisoformat(end))
    except ValueError:
        return False


# Routing parameters ------------------------------------------------------------------------


async def save_routing(
    engine: Engine, session: AsyncSession, user: Any, form: dict[str, str]
) -> str:
    """Widening thresholds, local-first cap and ring time (seconds), checked together;
    and whether a task is left to a closer volunteer on duty."""
    current = await engine.config()
    values: dict[str, float | bool] = {}
    present = [name for name in ROUTING_OPTIONAL_FIELDS if form.get(name, "").strip()]
    for name in (*ROUTING_FIELDS, *present):
        text = form.get(name, "").strip().replace(",", ".")
        try:
            values[name] = float(text)
        except ValueError:
            raise ControlError("Chaque durée doit être un nombre de secondes.") from None
        if not 0 <= values[name] <= 3600:
            raise ControlError("Chaque durée doit être comprise entre 0 et 3600 secondes.")
    leave = form.get("leave_to_closer", "").strip()
    if leave:
        if leave not in ("0", "1"):
            raise ControlError("Choisissez oui ou non pour le bénévole le plus proche.")
        values["leave_to_closer"] = leave == "1"
    if values["ring_s"] < 5:
        raise ControlError("La sonnerie doit durer au moins 5 secondes.")
    if not values["widen_group_s"] <= values["widen_region_s"] <= values["widen_national_s"]:
        raise ControlError(
            "L'élargissement doit aller dans l'ordre : groupe, puis région, puis national."
        )
    new = RoutingConfig(**{**current.model_dump(), **values})
    await engine.configure(new, overwrite=True)
    before = {k: getattr(current, k) for k in values}
    audit.record(session, _actor(user), "routing.configure", engine.keys.line,
                 {**_who(user), "before": before, "after": values})
    await session.commit()
    await notify(engine.redis, engine.keys.line, "routing")
    return "Paramètres de routage enregistrés."
