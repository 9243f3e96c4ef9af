"""Volunteers' pages, the console socket, the softphone token and the iCal feed.

Mounted by web/app.py (``router``, ``setup``, ``lifespan``, ``LINKS``). Every route
checks who is asking with the dependencies of ``volunteers.access``; every form
carries a CSRF token; the console socket checks the Origin and the role.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Request, WebSocket
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine, create_engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from routing.clock import Clock
from routing.models import Channel
from routing.skills import LANGUAGES, SKILLS
from routing.territory import load_territories
from volunteers import accounts, ical, voice
from volunteers.access import (
    SessionUser,
    begin_session,
    csrf_token,
    current_user,
    end_session,
    require_coordinator,
    require_csrf,
    require_same_origin,
    require_user,
    require_volunteer,
    session_data,
)
from volunteers.bookings import ACTIVE, Bookings, SlotNeed, recurring_label
from volunteers.console import PAUSE_REASONS, ConsoleHub, ConsoleSession
from volunteers.errors import VolunteerError
from volunteers.login_throttle import LoginThrottle
from volunteers.models import Account, OutboxMessage, RegistrationNotice
from volunteers.profile import STRUCTURES, ProfileInput, clean_profile
from volunteers.runtime import Volunteers
from volunteers.scheduler import ShiftScheduler
from volunteers.settings import VolunteersSettings
from volunteers.slots import DAY_NAMES, day_label, hour_label, monday_of, paris, parse_slot_key
from volunteers.wrapup import OUTCOMES, REFERRALS, TOPICS

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
router = APIRouter(include_in_schema=False)
LINKS = [("Espace bénévoles", "/benevole"), ("Devenir bénévole", "/inscription")]
CONSOLE_WS = "/benevole/console/ws"
FLASH_KEY = "flash"


# Wiring -----------------------------------------------------------------------------------


def settings_from(app_settings: Any) -> VolunteersSettings:
    """The package's settings from web's Settings (fields it lacks keep their defaults)."""
    names = VolunteersSettings.__dataclass_fields__
    values = {
        name: getattr(app_settings, name)
        for name in names
        if hasattr(app_settings, name) and getattr(app_settings, name) is not None
    }
    nested = getattr(app_settings, "volunteers", None)
    if nested is not None:
        values.update({k: v for k, v in dict(nested).items() if k in names})
    return VolunteersSettings(**values)


def setup(app: FastAPI, settings: Any) -> None:
    """Static files of the volunteers' pages."""
    app.mount("/static/benevoles", StaticFiles(directory=str(HERE / "static")), name="benevoles")
    app.state.public_base_url = getattr(settings, "public_base_url", "")


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Build the package's services on the app's runtime and run the console hub."""
    runtime = app.state.runtime
    vol = Volunteers(
        settings=settings_from(app.state.settings),
        engine=runtime.engine,
        sessions=runtime.db.session,
        sms=getattr(app.state, "volunteers_sms", None),
        chat=getattr(app.state, "chat_bridge", None),  # set by callers/' lifespan
        slot_forecast=getattr(app.state, "slot_forecast", None),  # web/slot_forecast.py
        opening=getattr(app.state, "slot_opening", None),  # web/slot_hours.py
    )
    app.state.volunteers = vol
    hub = ConsoleHub(vol)
    app.state.console_hub = hub
    hub.start()
    shifts: ShiftScheduler | None = None
    stop = asyncio.Event()
    runner: asyncio.Task[None] | None = None
    # APScheduler fires on the wall clock: a process whose engine runs on a test clock
    # leaves the shift jobs to the tests (or to a `permanence scheduler` process).
    if type(runtime.engine.clock) is Clock:
        shifts = ShiftScheduler(vol, _jobstore_engine(runtime.db.engine, app.state.settings))
        runner = asyncio.create_task(shifts.run(stop), name="shift-scheduler")
    try:
        yield
    finally:
        stop.set()
        if runner is not None:
            await runner
        if shifts is not None:
            shifts.jobstore_engine.dispose()
        await hub.stop()


def _jobstore_engine(async_engine: AsyncEngine, app_settings: Any) -> Engine:
    """A blocking engine on the app's database for APScheduler's SQLAlchemyJobStore."""
    url = async_engine.url
    driver = {"sqlite+aiosqlite": "sqlite"}.get(url.drivername, url.drivername)
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        connect_args = {"timeout": 30}
    elif schema := getattr(app_settings, "database_schema", ""):
        connect_args = {"options": f"-csearch_path={schema}"}
    return create_engine(url.set(drivername=driver), connect_args=connect_args)


def get_volunteers(request: Request) -> Volunteers:
    return request.app.state.volunteers


Vol = Annotated[Volunteers, Depends(get_volunteers)]
AnyUser = Annotated[SessionUser, Depends(require_user)]
VolunteerUser = Annotated[SessionUser, Depends(require_volunteer)]
CoordinatorUser = Annotated[SessionUser, Depends(require_coordinator)]


def render(request: Request, template: str, title: str, **context: Any) -> HTMLResponse:
    data = session_data(request)
    flash = data.pop(FLASH_KEY, None)
    if flash is not None:
        request.scope["permanence.session_dirty"] = True
    return templates.TemplateResponse(
        request,
        template,
        {
            "title": title,
            "user": current_user(request),
            "csrf": csrf_token(request),
            "flash": flash,
            **context,
        },
    )


def flash(request: Request, text: str, kind: str = "info") -> None:
    """A message shown on the next page (kept in the session)."""
    session_data(request)[FLASH_KEY] = {"text": text, "kind": kind}
    request.scope["permanence.session_dirty"] = True


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _safe_next(target: str) -> str:
    """Only local paths: never redirect a login to another site."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/benevole"
    return target


async def load_account(vol: Volunteers, user: SessionUser) -> Account:
    async with vol.sessions() as session:
        account = await session.get(Account, user.account_id)
    if account is None:
        raise HTTPException(404, "Compte introuvable.")
    return account


# Login, logout, sign-up -----------------------------------------------------------------------


@router.get("/connexion", response_class=HTMLResponse)
async def login_page(request: Request, suite: str = "/benevole") -> HTMLResponse:
    return render(request, "login.html", "Connexion", next=_safe_next(suite), email="", error="")


@router.post("/connexion", dependencies=[Depends(require_csrf)])
async def login(
    request: Request,
    vol: Vol,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    suite: Annotated[str, Form()] = "/benevole",
) -> Response:
    throttle = LoginThrottle(vol)
    ip = request.client.host if request.client else ""
    verdict = await throttle.check(email, ip)
    account = None
    if verdict.allowed:
        async with vol.sessions() as session:
            account = await accounts.authenticate(session, email, password)
        if account is None:
            verdict = await throttle.failed(email, ip)
    if account is None:
        wrong = "Adresse e-mail ou mot de passe incorrect."
        response = render(
            request,
            "login.html",
            "Connexion",
            next=_safe_next(suite),
            email=email[:254],
            error=wrong if verdict.allowed else verdict.message,
        )
        response.status_code = 400
        if not verdict.allowed:
            response.status_code = 429
            response.headers["Retry-After"] = str(verdict.retry_after_s)
        return response
    await throttle.succeeded(email)
    begin_session(request, account.id or 0, account.session_version)
    return redirect(_safe_next(suite))


@router.post("/deconnexion", dependencies=[Depends(require_csrf)])
async def logout(request: Request, vol: Vol) -> Response:
    user = current_user(request)
    if user is not None:
        # Replacing the cookie alone would leave the session valid on the server: a console
        # open in another tab would go on taking callers, and a copy of the old cookie would
        # open a new one. Sessions carry no id the server keeps, so this ends every session
        # of the account (its version). Acceptable: « Se déconnecter » on a shared France
        # Services computer then also logs the volunteer out on their other devices, and a
        # volunteer answers from one console at a time.
        async with vol.sessions() as session:
            await accounts.end_sessions(session, user.account_id)
        # Off the line now: their open consoles notice only within a heartbeat, and one closed
        # with this page only when the reaper does (~30 s, then restored at the next login).
        hub: ConsoleHub = request.app.state.console_hub
        await hub.session_ended(user.public_id)
    end_session(request)
    flash(request, "Vous êtes déconnecté.")
    return redirect("/connexion")


@router.get("/inscription", response_class=HTMLResponse)
async def signup_page(request: Request, vol: Vol) -> HTMLResponse:
    async with vol.sessions() as session:
        open_ = await accounts.registration_is_open(session)
    form = {"name": "", "email": "", "postal_code": ""}
    return render(request, "signup.html", "Devenir bénévole", open=open_, form=form, error="")


@router.post("/inscription", dependencies=[Depends(require_csrf)])
async def signup(
    request: Request,
    vol: Vol,
    name: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    postal_code: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
) -> Response:
    async with vol.sessions() as session:
        try:
            account = await accounts.sign_up(
                session, email=email, password=password, name=name, postal_code=postal_code
            )
        except VolunteerError as exc:
            open_ = await accounts.registration_is_open(session)
            form = {"name": name[:80], "email": email[:254], "postal_code": postal_code[:10]}
            response = render(
                request, "signup.html", "Devenir bénévole", open=open_, form=form, error=exc.message
            )
            response.status_code = 400
            return response
    begin_session(request, account.id or 0, account.session_version)
    flash(request, "Compte créé. Un coordinateur va le valider ; complétez votre profil.")
    return redirect("/benevole/profil")


@router.post("/inscription/prevenir", dependencies=[Depends(require_csrf)])
async def notify_me(request: Request, vol: Vol, email: Annotated[str, Form()] = "") -> Response:
    async with vol.sessions() as session:
        try:
            await accounts.ask_for_notice(session, email)
        except VolunteerError as exc:
            flash(request, exc.message, "error")
            return redirect("/inscription")
    flash(request, "C'est noté : nous vous écrirons dès la réouverture des inscriptions.")
    return redirect("/inscription")


# Volunteer's pages ------------------------------------------------------------------------------


@router.get("/benevole", response_class=HTMLResponse)
async def home(
    request: Request,
    user: AnyUser,
    vol: Vol,
) -> HTMLResponse:
    account = await load_account(vol, user)
    now = datetime.fromtimestamp(vol.now_ms() / 1000, UTC)
    async with vol.sessions() as session:
        book = vol.bookings(session)
        mine = (await book.mine(account.id or 0, now))[:5]
        closed = await book.closed_reasons(mine)
    upcoming = [_booking_item(b, closed) for b in mine]
    return render(
        request,
        "home.html",
        "Accueil",
        nav="accueil",
        account=account,
        complete=accounts.profile_complete(account),
        upcoming=upcoming,
    )


def _booking_item(booking: Any, closed: dict[datetime, str]) -> dict[str, Any]:
    start, end = booking.slot_start, booking.slot_end
    reason = closed.get(start.astimezone(UTC), "")
    return {
        "label": f"{day_label(start)}, {hour_label(start)} – {hour_label(end)}",
        "key": start.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ"),
        "standby": booking.status == "standby",
        "closed": f"Créneau fermé ({reason})" if reason else "",
    }


def _profile_form(account: Account, vol: Volunteers) -> dict[str, Any]:
    return {
        "name": account.name,
        "postal_code": account.postal_code,
        "skills": account.skill_set,
        "languages": account.language_set,
        "structure": account.structure,
        "phone_mode": account.phone_mode,
        "phone": vol.sealer.open(account.phone_sealed),
        "chat_capacity": account.chat_capacity,
    }


def _profile_page(
    request: Request, account: Account, vol: Volunteers, form: dict[str, Any], error: str
) -> HTMLResponse:
    dep = load_territories().departements.get(account.departement)
    base = vol.settings.public_base_url.rstrip("/")
    return render(
        request,
        "profile.html",
        "Mon profil",
        nav="profil",
        form=form,
        error=error,
        departement=f"{dep.name} ({dep.code})" if dep else "",
        skills=list(SKILLS.items()),
        languages=list(LANGUAGES.items()),
        structures=list(STRUCTURES.items()),
        ical_url=f"{base}/benevole/agenda/{account.ical_token}.ics",
    )


@router.get("/benevole/profil", response_class=HTMLResponse)
async def profile_page(
    request: Request,
    user: AnyUser,
    vol: Vol,
) -> HTMLResponse:
    account = await load_account(vol, user)
    return _profile_page(request, account, vol, _profile_form(account, vol), "")


@router.post("/benevole/profil", dependencies=[Depends(require_csrf)])
async def profile_save(
    request: Request,
    user: AnyUser,
    vol: Vol,
) -> Response:
    form = await request.form()
    typed = ProfileInput(
        name=str(form.get("name", "")),
        postal_code=str(form.get("postal_code", "")),
        skills=tuple(str(s) for s in form.getlist("skills")),
        languages=tuple(str(s) for s in form.getlist("languages")) or ("fr",),
        structure=str(form.get("structure", "")),
        phone_mode=str(form.get("phone_mode", "browser")),
        phone=str(form.get("phone", "")),
        chat_capacity=str(form.get("chat_capacity", "2")),
    )
    async with vol.sessions() as session:
        account = await session.get(Account, user.account_id)
        if account is None:
            raise HTTPException(404, "Compte introuvable.")
        try:
            clean = clean_profile(typed)
            await _check_chats_held(vol, account, clean.chat_capacity)
        except VolunteerError as exc:
            shown = {
                **_profile_form(account, vol),
                "name": typed.name,
                "postal_code": typed.postal_code,
                "skills": set(typed.skills),
                "languages": set(typed.languages),
                "structure": typed.structure,
                "phone_mode": typed.phone_mode,
                "phone": typed.phone,
                "chat_capacity": typed.chat_capacity,
            }
            response = _profile_page(request, account, vol, shown, exc.message)
            response.status_code = 400
            return response
        await accounts.save_profile(session, account, clean, vol.sealer)
    flash(request, "Profil enregistré.")
    return redirect("/benevole/profil")


async def _check_chats_held(vol: Volunteers, account: Account, capacity: int) -> None:
    """Refuse a chat capacity below the chats the volunteer holds now (one ringing included).

    The engine would refuse that profile when the console opens (over_capacity) and keep the
    old one. A chat accepted just after this check still gets there: the console then opens
    with a message (ConsoleSession._welcome).
    """
    volunteer = await vol.engine.volunteer(account.public_id)
    if volunteer is None:
        return
    held = volunteer.load_chat
    if volunteer.reserved:
        ringing = await vol.engine.task(volunteer.reserved)
        if ringing is not None and ringing.channel is Channel.CHAT:
            held += 1
    if capacity < held:
        raise VolunteerError(
            "over_capacity",
            f"Vous avez {held} discussions en cours : choisissez au moins {held} discussions "
            "en même temps, ou terminez-en d'abord.",
        )


# Slots --------------------------------------------------------------------------------------------


def _now(vol: Volunteers) -> datetime:
    return datetime.fromtimestamp(vol.now_ms() / 1000, UTC)


@router.get("/benevole/creneaux", response_class=HTMLResponse)
async def slots_page(
    request: Request,
    user: AnyUser,
    vol: Vol,
    semaine: str = "",
) -> HTMLResponse:
    now = _now(vol)
    try:
        monday = monday_of(date.fromisoformat(semaine)) if semaine else monday_of(paris(now).date())
    except ValueError:
        monday = monday_of(paris(now).date())
    async with vol.sessions() as session:
        book = vol.bookings(session, vol.slot_forecast)
        needs = await book.week(monday, user.account_id)
        mine = await book.mine(user.account_id, now)
        closed = await book.closed_reasons(mine)
        rules = await book.recurring_of(user.account_id)
        openings = await book.plan.days(monday, monday + timedelta(days=6))
        weekly = await book.plan.weekly_starts(paris(now).date())
    days: dict[date, dict[str, Any]] = {}
    for opening in openings:
        day, reason = opening.day, opening.closed
        if day.weekday() >= 5 and reason == "fermé":
            continue
        days[day] = {"label": day_label(day).capitalize(), "closed": "", "needs": []}
        if reason:
            days[day]["closed"] = "Ligne fermée" + (f" : {reason}" if reason != "fermé" else ".")
    for need in needs:
        day = paris(need.slot.start).date()
        days.setdefault(day, {"label": day_label(day).capitalize(), "closed": "", "needs": []})
        days[day]["needs"].append(
            {
                "key": need.slot.key,
                "label": need.slot.label,
                "hours": f"{hour_label(need.slot.start)} – {hour_label(need.slot.end)}",
                "booked": need.booked,
                "target": need.target,
                "missing": need.missing,
                "standby": need.standby,
                "level": need.level,
                "level_label": NEED_LABELS[need.level],
                "mine": need.mine,
                "full": need.booked >= vol.settings.slot_max,
                "bookable": need.slot.start > now and user.approved,
            }
        )
    most_needed = [
        {
            "key": n.slot.key,
            "label": n.slot.label,
            "missing": n.missing,
            "level": n.level,
            "booked": n.booked,
            "target": n.target,
        }
        for n in most_needed_slots(needs, now)
    ]
    starts = sorted({s for day_starts in weekly.values() for s in day_starts})
    weekdays = [(n, DAY_NAMES[n]) for n in weekly]
    return render(
        request,
        "slots.html",
        "Créneaux",
        nav="creneaux",
        mine=[_booking_item(b, closed) for b in mine],
        recurring=[{"id": r.id, "label": recurring_label(r, book.plan)} for r in rules],
        days=list(days.values()),
        most_needed=most_needed,
        monday=monday.isoformat(),
        week_label=day_label(monday),
        prev=(monday - timedelta(days=7)).isoformat(),
        next=(monday + timedelta(days=7)).isoformat(),
        starts=starts,
        weekdays=weekdays,
    )


NEED_LABELS = {"urgent": "Besoin urgent", "besoin": "Besoin", "complet": "Complet"}
MOST_NEEDED_SHOWN = 3


def most_needed_slots(needs: list[SlotNeed], now: datetime) -> list[SlotNeed]:
    """The upcoming slots of the week still short of volunteers, most short first."""
    open_ = [n for n in needs if n.slot.start > now and n.missing > 0 and not n.mine]
    return sorted(open_, key=lambda n: (-n.missing, n.slot.start))[:MOST_NEEDED_SHOWN]


def _week_redirect(semaine: str) -> RedirectResponse:
    try:
        date.fromisoformat(semaine)
    except ValueError:
        return redirect("/benevole/creneaux")
    return redirect(f"/benevole/creneaux?semaine={semaine}#semaine")


@router.post("/benevole/creneaux/reserver", dependencies=[Depends(require_csrf)])
async def slot_book(
    request: Request,
    user: VolunteerUser,
    vol: Vol,
    creneau: Annotated[str, Form()] = "",
    semaine: Annotated[str, Form()] = "",
) -> Response:
    async def book(session: Any, account: Account, start: datetime) -> str:
        return (await vol.bookings(session).book(account, start, _now(vol))).message

    return await _on_slot(request, user, vol, creneau, semaine, book)


@router.post("/benevole/creneaux/annuler", dependencies=[Depends(require_csrf)])
async def slot_cancel(
    request: Request,
    user: VolunteerUser,
    vol: Vol,
    creneau: Annotated[str, Form()] = "",
    semaine: Annotated[str, Form()] = "",
) -> Response:
    async def cancel(session: Any, account: Account, start: datetime) -> str:
        book = vol.bookings(session)
        await book.cancel(account, start, _now(vol))
        await _tell_promoted(vol, session, book)
        return "Créneau annulé."

    return await _on_slot(request, user, vol, creneau, semaine, cancel)


async def _on_slot(
    request: Request,
    user: VolunteerUser,
    vol: Volunteers,
    creneau: str,
    semaine: str,
    act: Callable[[Any, Account, datetime], Awaitable[str]],
) -> Response:
    """Book or cancel the slot a form names, say how it went, back to the same week."""
    try:
        start = parse_slot_key(creneau)
    except ValueError:
        flash(request, "Ce créneau n'existe pas.", "error")
        return _week_redirect(semaine)
    async with vol.sessions() as session:
        account = await session.get(Account, user.account_id)
        try:
            message = await act(session, account, start)
        except VolunteerError as exc:
            flash(request, exc.message, "error")
        else:
            flash(request, message)
    return _week_redirect(semaine)


async def _tell_promoted(vol: Volunteers, session: Any, book: Bookings) -> None:
    """Tell those the standby list moved into a freed place."""
    from volunteers.notify import Notifier

    notifier = Notifier(vol)
    for booking in book.promoted:
        await notifier.standby_promoted(session, booking)


@router.post("/benevole/creneaux/regulier", dependencies=[Depends(require_csrf)])
async def slot_recurring(
    request: Request,
    user: VolunteerUser,
    vol: Vol,
    jour: Annotated[str, Form()] = "",
    debut: Annotated[str, Form()] = "",
) -> Response:
    async with vol.sessions() as session:
        account = await session.get(Account, user.account_id)
        try:
            weekday = int(jour)
            _rule, booked, skipped = await vol.bookings(session).add_recurring(
                account, weekday, debut, _now(vol)
            )
        except ValueError:
            flash(request, "Choisissez un jour de la semaine.", "error")
        except VolunteerError as exc:
            flash(request, exc.message, "error")
        else:
            text = f"Réservation régulière enregistrée : {len(booked)} créneau(x) réservé(s)."
            if skipped:
                text += " Non réservés : " + " ; ".join(skipped)
            flash(request, text)
    return redirect("/benevole/creneaux")


@router.post("/benevole/creneaux/regulier/{rule_id}/arreter", dependencies=[Depends(require_csrf)])
async def slot_recurring_stop(
    request: Request,
    rule_id: int,
    user: VolunteerUser,
    vol: Vol,
) -> Response:
    async with vol.sessions() as session:
        account = await session.get(Account, user.account_id)
        book = vol.bookings(session)
        try:
            n = await book.stop_recurring(account, rule_id, _now(vol))
        except VolunteerError as exc:
            flash(request, exc.message, "error")
        else:
            flash(request, f"Réservation régulière arrêtée ({n} créneau(x) annulé(s)).")
            await _tell_promoted(vol, session, book)
    return redirect("/benevole/creneaux")


@router.get("/benevole/agenda/{token}.ics")
async def ical_feed(token: str, request: Request, vol: Vol) -> Response:
    """The secret-URL calendar feed (no session: calendar apps cannot log in)."""
    if not 20 <= len(token) <= 64:
        raise HTTPException(404, "Agenda introuvable.")
    async with vol.sessions() as session:
        account = (await session.exec(select(Account).where(Account.ical_token == token))).first()
        if account is None or account.status == "disabled":
            raise HTTPException(404, "Agenda introuvable.")
        now = _now(vol)
        book = vol.bookings(session)
        rows = await book.for_feed(account.id or 0, now - timedelta(days=30))
        closed = await book.closed_reasons([r for r in rows if r.status in ACTIVE])
    host = urlsplit(vol.settings.public_base_url).hostname or "permanence"
    body = ical.feed(account, rows, host=host, now=now, closed=closed)
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={"Cache-Control": "private, max-age=300", "Content-Disposition": "inline"},
    )


# Console ----------------------------------------------------------------------------------------


@router.get("/benevole/console", response_class=HTMLResponse)
async def console_page(
    request: Request,
    user: VolunteerUser,
    vol: Vol,
) -> HTMLResponse:
    account = await load_account(vol, user)
    return render(
        request,
        "console.html",
        "Console",
        nav="console",
        ws_path=CONSOLE_WS,
        softphone=account.phone_mode == "browser" and voice.configured(vol.settings),
        pause_reasons=PAUSE_REASONS,
        topics=list(TOPICS.items()),
        outcomes=list(OUTCOMES.items()),
        referrals=list(REFERRALS.items()),
    )


@router.websocket(CONSOLE_WS)
async def console_socket(
    websocket: WebSocket,
    _origin: Annotated[None, Depends(require_same_origin)],
    user: VolunteerUser,
) -> None:
    hub: ConsoleHub = websocket.app.state.console_hub
    await ConsoleSession(hub, websocket, user).serve()


@router.get("/benevole/voix/jeton")
async def voice_token(user: VolunteerUser, vol: Vol) -> JSONResponse:
    """A Voice JS SDK token for the logged-in volunteer only (identity = their id)."""
    if not user.approved:
        # A token lets its holder use the line's Twilio account: not before approval.
        return JSONResponse(
            {"detail": "Votre compte doit être validé par un coordinateur."}, status_code=403
        )
    if not voice.configured(vol.settings):
        return JSONResponse(
            {"detail": "Le téléphone dans le navigateur n'est pas configuré sur ce serveur."},
            status_code=503,
        )
    token = voice.access_token(vol.settings, user.public_id)
    return JSONResponse(
        {"token": token, "identity": user.public_id, "ttl": vol.settings.token_ttl_s},
        headers={"Cache-Control": "no-store"},
    )


# Coordinators -------------------------------------------------------------------------------------


@router.get("/coordination/benevoles", response_class=HTMLResponse)
async def coordination_page(
    request: Request,
    user: CoordinatorUser,
    vol: Vol,
) -> HTMLResponse:
    async with vol.sessions() as session:
        open_ = await accounts.registration_is_open(session)
        pending = await accounts.pending_accounts(session)
        waiting = len(
            list(
                await session.exec(
                    select(RegistrationNotice).where(RegistrationNotice.notified_at.is_(None))
                )
            )
        )
        messages = list(
            await session.exec(
                select(OutboxMessage).order_by(OutboxMessage.created_at.desc()).limit(50)
            )
        )
        names = {
            a.id: a.name
            for a in await session.exec(
                select(Account).where(Account.id.in_({m.account_id for m in messages}))
            )
        }
    outbox = [
        {
            "when": f"{day_label(m.created_at)} {paris(m.created_at):%H:%M}",
            "to": names.get(m.account_id, "Coordinateurs"),
            "kind": m.kind,
            "body": m.body,
            "status": {"pending": "À envoyer", "sent": "Envoyé", "failed": "Échec"}.get(
                m.status, m.status
            ),
            "channel": {"sms": "SMS", "email": "e-mail"}.get(m.channel, ""),
            "problem": m.error,
        }
        for m in messages
    ]
    return render(
        request,
        "coordination.html",
        "Bénévoles",
        nav="coordination",
        open=open_,
        pending=pending,
        waiting=waiting,
        outbox=outbox,
    )


@router.post("/coordination/benevoles/inscriptions", dependencies=[Depends(require_csrf)])
async def coordination_registration(
    request: Request,
    user: CoordinatorUser,
    vol: Vol,
    ouvrir: Annotated[str, Form()] = "",
) -> Response:
    async with vol.sessions() as session:
        told = await accounts.set_registration(session, ouvrir == "1", user.account_id)
    if ouvrir == "1":
        from volunteers.notify import Notifier

        async with vol.sessions() as session:
            await Notifier(vol).registration_open(session, told)
        flash(request, f"Inscriptions ouvertes ({len(told)} personne(s) prévenue(s)).")
    else:
        flash(request, "Inscriptions fermées.")
    return redirect("/coordination/benevoles")


@router.post("/coordination/benevoles/{account_id}/valider", dependencies=[Depends(require_csrf)])
async def coordination_approve(
    request: Request,
    account_id: int,
    user: CoordinatorUser,
    vol: Vol,
) -> Response:
    async with vol.sessions() as session:
        try:
            account = await accounts.approve(session, account_id, user.account_id)
        except VolunteerError as exc:
            flash(request, exc.message, "error")
        else:
            flash(request, f"Compte de {account.name} validé.")
    return redirect("/coordination/benevoles")
