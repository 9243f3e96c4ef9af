"""The shift scheduler as a process of its own: ``permanence scheduler``.

Any number may run (and every app process on the wall clock runs one too): a Redis
lease elects the one whose APScheduler runs the jobs (see volunteers/scheduler.py).
"""

from __future__ import annotations

import asyncio
import logging
import signal

from volunteers.runtime import Volunteers
from volunteers.scheduler import ShiftScheduler
from volunteers.web import settings_from
from web.db import create_sync_engine
from web.runtime import open_runtime
from web.settings import Settings
from web.slot_hours import line_opening
from web.volunteers_glue import standalone_texts

log = logging.getLogger(__name__)


async def run_scheduler(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Compete for the lead and run the shift jobs until SIGINT/SIGTERM (or ``stop``)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    async with open_runtime(settings) as runtime, standalone_texts(settings) as texts:
        vol = Volunteers(
            settings=settings_from(settings),
            engine=runtime.engine,
            sessions=runtime.db.session,
            sms=texts,
            opening=line_opening(runtime.redis, settings.line),
        )
        jobstore = create_sync_engine(settings)
        try:
            await ShiftScheduler(vol, jobstore).run(stop)
        finally:
            jobstore.dispose()
