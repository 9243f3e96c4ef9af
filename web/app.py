"""The FastAPI application: wires routing/, callers/ and volunteers/ into one web app.

Run it with ``permanence serve`` (or ``uvicorn --factory web.app:create_served_app``).
"""

from __future__ import annotations

import asyncio
import gc
import importlib
import importlib.util
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from types import ModuleType

from fastapi import FastAPI

from routing.clock import Clock
from web import health, pages
from web.auth import install_auth
from web.runtime import check_server_settings, open_runtime
from web.settings import Settings, get_settings
from web.slot_forecast import install_slot_forecast
from web.slot_hours import install_slot_hours
from web.timers import run_timers
from web.volunteers_glue import install_volunteer_reach, install_volunteer_sms

log = logging.getLogger(__name__)

# Web modules of the other packages, used when they exist. Each may expose:
#   router: a fastapi.APIRouter, included as is;
#   setup(app, settings): called while the app is built (routers made by factories,
#                    static mounts, exception handlers...);
#   lifespan(app) -> async context manager, entered after the runtime is open
#                    (app.state.runtime) and left before it closes;
#   LINKS: list of (French label, path) shown on the home page.
PACKAGE_WEB_MODULES: tuple[str, ...] = (
    "callers.web",
    "volunteers.web",
    "web.coordination.web",
)


def package_web_modules() -> list[ModuleType]:
    """The package web modules that exist (a missing one is skipped, a broken one raises)."""
    found = []
    for name in PACKAGE_WEB_MODULES:
        package = name.partition(".")[0]
        if importlib.util.find_spec(package) is None or importlib.util.find_spec(name) is None:
            continue
        found.append(importlib.import_module(name))
    return found


def create_served_app() -> FastAPI:
    """The app as a server process runs it (``permanence serve`` and ``demo``)."""
    return create_app(freeze_after_start=True)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    timers: bool = True,
    freeze_after_start: bool = False,
) -> FastAPI:
    """Build the app; ``clock`` lets tests drive time, ``timers=False`` skips the timer loop.

    ``freeze_after_start``: once started, everything allocated so far (the imports, the
    runtime) leaves the garbage collector's care for good. A full collection of a started
    worker took ~80 ms, a pause every socket of that worker waited out (an offer, a ringing
    console); after gc.freeze() it has next to nothing to go through. Only for a process that
    runs one app: a test process starting many would keep their garbage for ever.
    """
    settings = settings or get_settings()
    modules = package_web_modules()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            runtime = await stack.enter_async_context(open_runtime(settings, clock=clock))
            app.state.runtime = runtime
            await check_server_settings(runtime.redis)
            if timers:
                stop = asyncio.Event()
                task = asyncio.create_task(run_timers(runtime, stop), name="routing-timers")

                async def stop_timers() -> None:
                    stop.set()
                    await task

                stack.push_async_callback(stop_timers)
            for module in modules:
                if hasattr(module, "lifespan"):
                    await stack.enter_async_context(module.lifespan(app))
            if freeze_after_start:
                gc.collect()  # what is garbage now would otherwise be kept for good
                gc.freeze()
            yield

    app = FastAPI(title="Permanence", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.settings = settings
    # Sessions and roles for every route and socket (accounts are read from SQL).
    install_auth(
        app,
        secret_key=settings.secret_key,
        sessions=lambda: app.state.runtime.db.session(),
        secure=settings.public_base_url.startswith("https://"),
    )
    install_volunteer_reach(app)
    install_volunteer_sms(app, settings)
    install_slot_forecast(app)
    install_slot_hours(app)
    app.include_router(health.router)
    links: list[tuple[str, str]] = []
    for module in modules:
        if hasattr(module, "router"):
            app.include_router(module.router)
        if hasattr(module, "setup"):
            module.setup(app, settings)
        links.extend(getattr(module, "LINKS", []))
    app.state.links = links
    # Last, so that a package's own "/" (if any) wins.
    app.include_router(pages.router)
    return app
