"""The coordinators' pages, socket and actions (coordinator role only), plugged into web/app.

``router``, ``setup``, ``lifespan`` and ``LINKS`` follow web/app.py's contract for
package web modules. The lifespan runs this process's recorder (history to SQL) and
dashboard hub (streams to websockets).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlmodel import col, select

from callers.schedule import DAY_NAMES, ScheduleStore
from routing.clock import PARIS, buckets
from routing.skills import SKILLS
from volunteers import accounts
from volunteers.access import (
    SessionUser,
    csrf_token,
    require_coordinator,
    require_csrf,
    session_data,
)
from volunteers.access import require_same_origin as same_origin_dependency
from volunteers.console import CLOSE_NOT_ALLOWED
from volunteers.models import Account
from volunteers.slots import Slot, SlotPlan, day_label, hour_label, monday_of, paris
from volunteers.targets import SOURCE_LABELS, ForecastProvider, current_forecast
from volunteers.web import settings_from as volunteers_settings
from web.closed_slot_notices import closed_slot_notices
from web.coordination import controls
from web.coordination.controls import ControlError
from web.coordination.history import Thresholds
from web.coordination.hub import DashboardHub
from web.coordination.live import CHANNEL_NAMES, Slots
from web.coordination.people import load_slots, volunteer_info
from web.coordination.recorder import Recorder
from web.coordination.relay import BroadcastRelay
from web.coordination.reports import Period, ReportFilter, build_report, report_csv
from web.coordination.session_watch import DashboardSessions
from web.models import AuditLog
from web.runtime import Runtime
from web.settings import Settings
from web.slot_hours import opening_days

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
MAP_SVG = HERE / "static" / "vendor" / "france-departements" / "france.departments.svg"


Coordinator = Annotated[SessionUser, Depends(require_coordinator)]
SameOrigin = Annotated[None, Depends(same_origin_dependency)]

router = APIRouter(prefix="/coordination", dependencies=[Depends(require_coordinator)])
templates = Jinja2Templates(directory=HERE / "templates")
LINKS = [("Coordination : tableau de bord et rapports", "/coordination")]


# Life cycle -------------------------------------------------------------------------------


@dataclass
class Coordination:
    hub: DashboardHub
    recorder: Recorder
    sessions: DashboardSessions


def setup(app: FastAPI, settings: Settings) -> None:
    """Serve the dashboard's scripts, styles and vendored libraries."""
    app.mount(
        "/coordination/static",
        StaticFiles(directory=HERE / "static"),
        name="coordination-static",
    )


def _make_hub(runtime: Runtime, forecast: ForecastProvider | None = None) -> DashboardHub:
    engine = runtime.engine
    store = ScheduleStore(runtime.redis, engine.keys.line)
    registration: dict[str, bool | None] = {"open": None}
    vsettings = volunteers_settings(runtime.settings)
    plan = SlotPlan(vsettings, opening_days(store))

    async def slots_loader(now_ms: int) -> Slots | None:
        async with runtime.db.session() as session:
            return await load_slots(
                session, now_ms, buckets(now_ms)[0], plan, vsettings.slot_target, forecast
            )

    async def extras(reload: bool) -> dict[str, Any]:
        if reload or registration["open"] is None:
            async with runtime.db.session() as session:
                registration["open"] = await accounts.registration_is_open(session)
        return {
            "line": line_status_json(await store.status(engine.clock.now_ms())),
            "registration_open": registration["open"],
        }

    return DashboardHub(engine, slots_loader=slots_loader, extras=extras)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run this process's recorder and dashboard hub while the app runs."""
    runtime: Runtime = app.state.runtime
    hub = _make_hub(runtime, getattr(app.state, "slot_forecast", None))
    recorder = Recorder(runtime.redis, runtime.db.engine, line=runtime.settings.line)
    sessions = DashboardSessions(runtime.db.session)
    app.state.coordination = Coordination(hub, recorder, sessions)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(recorder.run(stop), name="coordination-recorder"),
        asyncio.create_task(hub.run(stop), name="coordination-hub"),
    ]
    consoles = getattr(app.state, "console_hub", None)  # the volunteers' console hub
    if consoles is not None:
        # Redis may be down at start: the relay finds its position when it first reads.
        relay = BroadcastRelay(runtime.redis, runtime.settings.line, consoles.broadcast)
        tasks.append(asyncio.create_task(relay.run(stop), name="coordination-broadcasts"))
    try:
        yield
    finally:
        stop.set()
        await sessions.close()
        await closed_slot_notices(app).wait()  # before the database closes
        for task in tasks:  # both may sit in a blocking read: cancel rather than wait
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # a background loop's failure must not break shutdown
                log.exception("%s ended with an error", task.get_name())


def line_status_json(status: Any) -> dict[str, Any]:
    reasons = {"hours": "en dehors des horaires", "holiday": "jour férié",
               "closure": "fermeture exceptionnelle"}
    next_open = status.next_open.astimezone(PARIS) if status.next_open else None
    return {
        "open": status.open,
        "reason": reasons.get(getattr(status.reason, "value", ""), ""),
        "message": status.message,
        "holiday": status.holiday,
        "next_open": f"{next_open:%d/%m à %H:%M}" if next_open else "",
    }


# Helpers ------------------------------------------------------------------------------------


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _hub(conn: Request | WebSocket) -> DashboardHub:
    return conn.app.state.coordination.hub


def _page(request: Request, name: str, user: SessionUser, **context: Any) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        name,
        {"user": user, "csrf": csrf_token(request), "nav": name, **context},
    )


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def _done(request: Request, message: str, back: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"ok": True, "message": message})
    sep = "&" if "?" in back else "?"
    return RedirectResponse(f"{back}{sep}fait={quote(message)}", status_code=303)


def _refused(request: Request, error: ControlError, back: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"ok": False, "message": error.message}, status_code=400)
    sep = "&" if "?" in back else "?"
    return RedirectResponse(f"{back}{sep}erreur={quote(error.message)}", status_code=303)


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


# Dashboard ----------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
async def dashboard(request: Request, user: Coordinator):
    """The live dashboard; data arrives on the websocket."""
    svg = MAP_SVG.read_text(encoding="utf-8")
    return _page(request, "dashboard.html", user, map_svg=_french_map(svg),
                 skills=SKILLS, channels=CHANNEL_NAMES)


def _french_map(svg: str) -> str:
    """The vendored map as a decorative picture (the table next to it carries the data)."""
    return svg.replace(
        'aria-label="Map of France departments"',
        'id="carte-svg" aria-hidden="true" focusable="false"',
        1,
    )


@router.get("/etat")
async def state(request: Request) -> JSONResponse:
    """The dashboard's current data (what the websocket pushes), published as a version.

    What lives in SQL (slots, registration) is read again: a change made just before
    shows here even if the hub has not yet read its notice."""
    return JSONResponse(await _hub(request).refresh(reload=True))


@router.websocket("/ws")
async def dashboard_socket(
    websocket: WebSocket,
    user: Coordinator,
    _origin: SameOrigin,
) -> None:
    """Pushes the dashboard: the whole state first, then what changes (``delta.py``).

    Who may watch is checked at connect time, then with every open dashboard of this
    process every few seconds (``session_watch.py``); every socket sends the text the hub
    encoded once per version.
    """
    hub = _hub(websocket)
    watch = websocket.app.state.coordination.sessions
    session_ended = watch.watch(user.account_id, int(session_data(websocket).get("ver", 0)))
    await websocket.accept()
    sub = await hub.subscribe()

    async def drain_client() -> None:  # notice a closed socket while waiting for changes
        while True:
            await websocket.receive_text()

    reader = asyncio.create_task(drain_client())
    ended = asyncio.create_task(session_ended.wait())
    try:
        while True:
            waiter = asyncio.create_task(sub.next_text())
            done, _ = await asyncio.wait(
                {waiter, reader, ended}, return_when=asyncio.FIRST_COMPLETED
            )
            if reader in done or ended in done:
                waiter.cancel()
                if ended in done:
                    await websocket.close(code=CLOSE_NOT_ALLOWED)  # the page stops reconnecting
                break
            await websocket.send_text(waiter.result())
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        reader.cancel()
        ended.cancel()
        watch.forget(session_ended)
        hub.unsubscribe(sub)


# Controls (CSRF on every one) ---------------------------------------------------------------

csrf = [Depends(require_csrf)]


@router.post("/presence/{volunteer_id}/{action}", dependencies=csrf)
async def volunteer_action(
    request: Request, volunteer_id: str, action: str,
    user: Coordinator,
) -> Response:
    form = await _form(request)
    runtime = _runtime(request)
    async with runtime.db.session() as session:
        try:
            message = await controls.set_volunteer_presence(
                runtime.engine, session, user, volunteer_id, action, form.get("motif", "")
            )
        except ControlError as exc:
            return _refused(request, exc, "/coordination")
    return _done(request, message, "/coordination")


@router.post("/contacts/{task_id}/priorite", dependencies=csrf)
async def contact_priority(
    request: Request, task_id: str, user: Coordinator
) -> Response:
    form = await _form(request)
    runtime = _runtime(request)
    async with runtime.db.session() as session:
        try:
            message = await controls.set_contact_priority(
                runtime.engine, session, user, task_id, form.get("priorite", "")
            )
        except ControlError as exc:
            return _refused(request, exc, "/coordination")
    return _done(request, message, "/coordination")


@router.post("/message", dependencies=csrf)
async def broadcast(request: Request, user: Coordinator):
    form = await _form(request)
    runtime = _runtime(request)
    async with runtime.db.session() as session:
        try:
            message = await controls.broadcast(
                runtime.redis, session, user, runtime.settings.line, form.get("texte", ""),
                runtime.engine.clock.now_ms(),
            )
        except ControlError as exc:
            return _refused(request, exc, "/coordination")
    return _done(request, message, "/coordination")


@router.post("/inscriptions", dependencies=csrf)
async def registration(request: Request, user: Coordinator):
    form = await _form(request)
    if form.get("ouvertes") not in ("0", "1"):
        return _refused(request, ControlError("Choix invalide."), "/coordination")
    runtime = _runtime(request)
    async with runtime.db.session() as session:
        message = await controls.set_registration(
            runtime.redis, session, user, runtime.settings.line, form["ouvertes"] == "1"
        )
    return _done(request, message, "/coordination")


@router.post("/ligne/fermer", dependencies=csrf)
async def close_line(request: Request, user: Coordinator):
    form = await _form(request)
    runtime = _runtime(request)
    async with runtime.db.session() as session:
        try:
            message = await controls.close_line_now(
                runtime.redis, session, user, runtime.settings.line, form.get("message", ""),
                form.get("jusqu_a", ""), runtime.engine.clock.now_ms(),
            )
        except ControlError as exc:
            return _refused(request, exc, "/coordination")
    closed_slot_notices(request.app).request()  # volunteers booked today hear of it
    return _done(request, message, "/coordination")


@router.post("/ligne/rouvrir", dependencies=csrf)
async def reopen_line(request: Request, user: Coordinator):
    runtime = _runtime(request)
    async with runtime.db.session() as session:
        try:
            message = await controls.reopen_line(
                runtime.redis, session, user, runtime.settings.line,
                runtime.engine.clock.now_ms(),
            )
        except ControlError as exc:
            return _refused(request, exc, "/coordination")
    return _done(request, message, "/coordination")


# Slots: coverage against the target, and the coordinators' overrides ---------------------

FORECAST_BASIS = {
    "history": "d'après les contacts reçus ces dernières semaines",
    "trace": "d'après le profil d'une trace de référence ramené à {per_day} contacts par jour "
    "de semaine (pas encore deux semaines d'historique)",
}


@router.get("/creneaux", response_class=HTMLResponse)
async def slots_page(request: Request, user: Coordinator, semaine: str = ""):
    """The week's slots: booked vs target, where each target comes from, overrides."""
    runtime = _runtime(request)
    vol = request.app.state.volunteers
    now = datetime.fromtimestamp(runtime.engine.clock.now_ms() / 1000, UTC)
    monday = _week_asked(semaine, paris(now).date())
    async with runtime.db.session() as session:
        book = vol.bookings(session, vol.slot_forecast)
        week = await book.week(monday)
        closed = await book.closed_between(
            datetime.combine(monday, datetime.min.time(), PARIS),
            datetime.combine(monday + timedelta(days=7), datetime.min.time(), PARIS),
        )
        names = await _account_names(session, {b.account_id for b, _ in closed})
    closed_rows = [
        {
            "label": Slot(b.slot_start, b.slot_end).label.capitalize(),
            "name": names.get(b.account_id, "?"),
            "standby": b.status == "standby",
            "reason": reason,
        }
        for b, reason in closed
    ]
    demand = await current_forecast(vol.slot_forecast)
    per_day = f"{getattr(demand, 'contacts_per_day', None) or 0:.0f}"
    basis = FORECAST_BASIS.get(getattr(demand, "source", ""), "").format(per_day=per_day)
    days: dict[date, list[dict[str, Any]]] = {}
    for need in week:
        days.setdefault(paris(need.slot.start).date(), []).append({
            "key": need.slot.key,
            "label": need.slot.label,
            "hours": f"{hour_label(need.slot.start)} – {hour_label(need.slot.end)}",
            "booked": need.booked,
            "standby": need.standby,
            "target": need.target,
            "source": need.source.value,
            "source_label": SOURCE_LABELS[need.source],
            "forecast": need.forecast,
            "short": need.booked < need.target,
            "past": need.slot.end <= now,
        })
    q = request.query_params
    return _page(
        request, "slots.html", user,
        days=[(day_label(d).capitalize(), rows) for d, rows in sorted(days.items())],
        week_label=day_label(monday), monday=monday.isoformat(),
        prev=(monday - timedelta(days=7)).isoformat(),
        next=(monday + timedelta(days=7)).isoformat(),
        basis=basis, fallback=vol.settings.slot_target, slot_max=vol.settings.slot_max,
        closed=closed_rows,
        done=q.get("fait", ""), error=q.get("erreur", ""),
    )


@router.post("/creneaux/objectif", dependencies=csrf)
async def slot_target(request: Request, user: Coordinator):
    form = await _form(request)
    runtime = _runtime(request)
    back = "/coordination/creneaux"
    if (week := form.get("semaine", "")) and _is_day(week):
        back += f"?semaine={week}"
    vol = request.app.state.volunteers
    async with runtime.db.session() as session:
        try:
            message = await controls.set_slot_target(
                runtime.redis, session, user, runtime.settings.line,
                vol.bookings(session), form.get("creneau", ""), form.get("objectif", ""),
            )
        except ControlError as exc:
            return _refused(request, exc, back)
    return _done(request, message, back)


async def _account_names(session: Any, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await session.exec(select(Account.id, Account.name).where(col(Account.id).in_(ids)))
    return {account_id: name for account_id, name in rows}


def _week_asked(text: str, today: date) -> date:
    """The Monday of the week a 'YYYY-MM-DD' names, or of this week if the text is no date
    or one too near the calendar's ends: the page reads up to the next Monday and links the
    weeks either side, days that do not exist before year 1 or after 9999."""
    try:
        monday = monday_of(date.fromisoformat(text)) if text else monday_of(today)
    except ValueError:
        return monday_of(today)
    edge = timedelta(days=7)
    return monday if date.min + edge <= monday <= date.max - edge else monday_of(today)


def _is_day(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


# Hours and closures -------------------------------------------------------------------------


@router.get("/horaires", response_class=HTMLResponse)
async def hours_page(request: Request, user: Coordinator):
    runtime = _runtime(request)
    store = ScheduleStore(runtime.redis, runtime.settings.line)
    schedule = await store.get()
    status = await store.status(runtime.engine.clock.now_ms())
    days = [
        (i, DAY_NAMES[i].capitalize(), ", ".join(f"{a}-{b}" for a, b in schedule.weekly.get(i, [])))
        for i in range(7)
    ]
    closures = [
        (i, c.start.astimezone(PARIS), c.end.astimezone(PARIS), c.message)
        for i, c in enumerate(schedule.closures)
    ]
    return _page(request, "hours.html", user, days=days, schedule=schedule, closures=closures,
                 status=line_status_json(status), done=request.query_params.get("fait", ""),
                 error=request.query_params.get("erreur", ""))


@router.post("/horaires", dependencies=csrf)
async def hours_save(request: Request, user: Coordinator):
    form = await _form(request)
    runtime = _runtime(request)
    async with runtime.db.session() as session:
        try:
            message = await controls.save_hours(
                runtime.redis, session, user, runtime.settings.line, form
            )
        except ControlError as exc:
            return _refused(request, exc, "/coordination/horaires")
    closed_slot_notices(request.app).request()  # booked slots that closed: tell them
    return _done(request, message, "/coordination/horaires")


@router.post("/fermetures", dependencies=csrf)
async def closure_add(request: Request, user: Coordinator):
    form = await _form(request)
    runtime = _runtime(request)
    async with runtime.db.session() as session:
        try:
            message = await controls.add_closure(
                runtime.redis, session, user, runtime.settings.line, form.get("debut", ""),
                form.get("fin", ""), form.get("message", ""),
            )
        except ControlError as exc:
            return _refused(request, exc, "/coordination/horaires")
    closed_slot_notices(request.app).request()  # booked slots that closed: tell them
    return _done(request, message, "/coordination/horaires")


@router.post("/fermetures/{index}/supprimer", dependencies=csrf)
async def closure_remove(
    request: Request, index: int, user: Coordinator
) -> Response:
    form = await _form(request)
    runtime = _runtime(request)
    async with runtime.db.session() as session:
        try:
            message = await controls.remove_closure(
                runtime.redis, session, user, runtime.settings.line, index,
                form.get("debut", ""), form.get("fin", ""),
            )
        except ControlError as exc:
            return _refused(request, exc, "/coordination/horaires")
    return _done(request, message, "/coordination/horaires")


# Routing parameters ------------------------------------------------------------------------


@router.get("/routage", response_class=HTMLResponse)
async def routing_page(request: Request, user: Coordinator):
    cfg = await _runtime(request).engine.config()
    q = request.query_params
    return _page(request, "routing.html", user, cfg=cfg, done=q.get("fait", ""),
                 error=q.get("erreur", ""))


@router.post("/routage", dependencies=csrf)
async def routing_save(request: Request, user: Coordinator):
    form = await _form(request)
    runtime = _runtime(request)
    async with runtime.db.session() as session:
        try:
            message = await controls.save_routing(runtime.engine, session, user, form)
        except ControlError as exc:
            return _refused(request, exc, "/coordination/routage")
    return _done(request, message, "/coordination/routage")


# Reports ------------------------------------------------------------------------------------


async def _report(request: Request) -> Any:
    q = request.query_params
    runtime = _runtime(request)
    today = datetime.fromtimestamp(runtime.engine.clock.now_ms() / 1000, PARIS).date()
    try:
        day = date.fromisoformat(q.get("date", "") or today.isoformat())
        period = Period.of(q.get("periode", "day") or "day", day)
    except ValueError:
        raise ControlError("Période invalide.") from None
    flt = ReportFilter(
        channel=q.get("canal", ""), topic=q.get("theme", ""), region=q.get("region", ""),
        departement=q.get("departement", ""),
    )
    territories = runtime.engine.territories
    if flt.channel and flt.channel not in CHANNEL_NAMES:
        raise ControlError("Canal inconnu.")
    if flt.topic and flt.topic not in SKILLS:
        raise ControlError("Thème inconnu.")
    if flt.region and flt.region not in territories.regions:
        raise ControlError("Région inconnue.")
    if flt.departement and flt.departement not in territories.departements:
        raise ControlError("Département inconnu.")
    cfg = await runtime.engine.config()
    th = Thresholds(int(cfg.service_level_s * 1000), int(cfg.short_abandon_s * 1000))
    async with runtime.db.session() as session:
        info = await volunteer_info(session, period, territories, runtime.engine.clock.now_ms())
        return await build_report(session, runtime.settings.line, period, flt, th,
                                  volunteer_info=info, now_ms=runtime.engine.clock.now_ms())


@router.get("/rapports", response_class=HTMLResponse)
async def reports_page(request: Request, user: Coordinator):
    try:
        report = await _report(request)
    except ControlError as exc:
        return HTMLResponse(f"<p>{exc.message}</p>", status_code=400)
    territories = _runtime(request).engine.territories
    chart = {
        "labels": [r.label for r in report.rows],
        "offered": [r.metrics.offered for r in report.rows],
        "answered": [r.metrics.answered for r in report.rows],
        "abandoned": [r.metrics.abandoned for r in report.rows],
        "service_level": [r.metrics.service_level for r in report.rows],
    }
    return _page(
        request, "reports.html", user, report=report, query=dict(request.query_params),
        chart=chart,
        csv_query=str(request.query_params), skills=SKILLS, channels=CHANNEL_NAMES,
        regions=sorted(territories.regions.values(), key=lambda r: r.name),
        departements=sorted(territories.departements.values(), key=lambda d: d.code),
    )


@router.get("/rapports.csv")
async def reports_csv(request: Request, tableau: str = "volumes") -> Response:
    try:
        report = await _report(request)
        text = report_csv(report, tableau)
    except ControlError as exc:
        return Response(exc.message, status_code=400, media_type="text/plain; charset=utf-8")
    except ValueError:
        return Response("Tableau inconnu.", status_code=400, media_type="text/plain; charset=utf-8")
    name = f"permanence-{report.period.kind}-{report.period.first.isoformat()}-{tableau}.csv"
    return Response(
        "\ufeff" + text,  # the BOM makes spreadsheets read UTF-8 accents correctly
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# Audit log ----------------------------------------------------------------------------------


@router.get("/journal", response_class=HTMLResponse)
async def journal(request: Request, user: Coordinator):
    async with _runtime(request).db.session() as session:
        rows = list(
            await session.exec(
                select(AuditLog).order_by(col(AuditLog.at).desc(), col(AuditLog.id).desc())
                .limit(200)
            )
        )
    entries = [((r.at if r.at.tzinfo else r.at.replace(tzinfo=UTC)).astimezone(PARIS), r)
               for r in rows]
    return _page(request, "journal.html", user, entries=entries)
