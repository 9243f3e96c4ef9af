"""Exactly one APScheduler 3 running the shift jobs, however many processes start one.

Every process may run a ``ShiftScheduler`` (the app does when it runs on the wall
clock; ``permanence scheduler`` is a dedicated process). They elect a leader through
a Redis lease (``SET NX PX``, renewed by its owner only, with a Lua compare); only the
leader's APScheduler is started. Jobs live in a SQLAlchemyJobStore on the app's
database, with explicit ids and ``replace_existing``, so a new leader picks up exactly
the jobs the old one left. Misfired jobs within the grace still run; missed ones are
logged (and recorded in the shift log).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine
from sqlmodel import select

from volunteers import jobs
from volunteers.models import Account, RecurringBooking
from volunteers.runtime import Volunteers
from volunteers.slots import PARIS, paris

log = logging.getLogger(__name__)

JOBS_TABLE = "apscheduler_jobs"
PLAN_AHEAD = timedelta(hours=48)
RUNNING: AsyncIOScheduler | None = None  # the leader's scheduler in this process, if any

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


class Lease:
    """A leadership lease in Redis: one owner at a time, lost if not renewed in time."""

    def __init__(self, vol: Volunteers, owner: str, ttl_ms: int) -> None:
        self.redis = vol.redis
        self.key = vol.key("scheduler", "leader")
        self.owner = owner
        self.ttl_ms = ttl_ms
        self._renew = self.redis.register_script(_RENEW)
        self._release = self.redis.register_script(_RELEASE)

    async def acquire_or_renew(self) -> bool:
        """Whether this owner holds the lease now."""
        if await self._renew(keys=[self.key], args=[self.owner, self.ttl_ms]):
            return True
        return bool(await self.redis.set(self.key, self.owner, nx=True, px=self.ttl_ms))

    async def release(self) -> None:
        await self._release(keys=[self.key], args=[self.owner])

    async def holder(self) -> str | None:
        return await self.redis.get(self.key)


class ShiftScheduler:
    """Runs the shift jobs while this process holds the lease."""

    def __init__(
        self,
        vol: Volunteers,
        jobstore_engine: Engine,
        *,
        owner: str = "",
        lease_ms: int = 15_000,
        standing_jobs: bool = True,
    ) -> None:
        self.vol = vol
        self.jobstore_engine = jobstore_engine
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease = Lease(vol, self.owner, lease_ms)
        self.standing_jobs = standing_jobs
        self.scheduler: AsyncIOScheduler | None = None
        self.missed: list[str] = []

    @property
    def leading(self) -> bool:
        return self.scheduler is not None

    def _new_scheduler(self) -> AsyncIOScheduler:
        grace = int(self.vol.settings.misfire_grace_min * 60)
        scheduler = AsyncIOScheduler(
            jobstores={
                "default": SQLAlchemyJobStore(engine=self.jobstore_engine, tablename=JOBS_TABLE)
            },
            job_defaults={"misfire_grace_time": grace, "coalesce": True, "max_instances": 1},
            timezone=UTC,
        )
        scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED | EVENT_JOB_ERROR)
        return scheduler

    def _on_missed(self, event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            log.warning("shift job %s missed its time (%s)", event.job_id, event.scheduled_run_time)
            self.missed.append(event.job_id)
        else:
            log.error("shift job %s failed: %r", event.job_id, event.exception)

    async def step(self) -> bool:
        """Take or keep the lead (start APScheduler), or step down; returns leading."""
        try:
            held = await self.lease.acquire_or_renew()
        except Exception:
            log.exception("scheduler lease: Redis unreachable")
            held = False
        if held and self.scheduler is None:
            jobs.CONTEXT = self.vol
            self.scheduler = self._new_scheduler()
            self.scheduler.start()
            global RUNNING
            RUNNING = self.scheduler
            log.info("shift scheduler %s is the leader", self.owner)
            if self.standing_jobs:
                self.add_standing_jobs()
        elif not held and self.scheduler is not None:
            log.warning("shift scheduler %s lost the lead", self.owner)
            self._shutdown()
        elif self.scheduler is not None:
            self.scheduler.wakeup()  # jobs added by other processes since the last look
        return self.scheduler is not None

    async def run(self, stop: asyncio.Event) -> None:
        """Compete for the lead until ``stop`` is set; then step down cleanly."""
        period = self.lease.ttl_ms / 3000
        try:
            while not stop.is_set():
                await self.step()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), period)
        finally:
            await self.stop()

    def _shutdown(self) -> None:
        global RUNNING
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            if RUNNING is self.scheduler:
                RUNNING = None
            self.scheduler = None

    async def stop(self) -> None:
        """Stop running jobs and hand the lease over at once."""
        self._shutdown()
        with contextlib.suppress(Exception):
            await self.lease.release()

    def add_standing_jobs(self) -> None:
        """The planner and recurring expansion (ids fixed, replaced)."""
        assert self.scheduler is not None
        self.scheduler.add_job(
            "volunteers.scheduler:plan_slots",
            IntervalTrigger(minutes=15),
            id="plan-slots",
            replace_existing=True,
            next_run_time=datetime.now(UTC),
        )
        self.scheduler.add_job(
            "volunteers.scheduler:expand_recurring",
            CronTrigger(hour=3, minute=0, timezone=PARIS),
            id="expand-recurring",
            replace_existing=True,
        )
        # The line's open/close jobs follow the coordinators' hours: ``plan_into`` lays them
        # out as dated jobs. Weekly cron jobs of former versions stay in the job store
        # unless removed, and would close the line at hours it no longer keeps.
        for job in self.scheduler.get_jobs():
            if job.id.startswith(("line-open-", "line-close-")):
                self.scheduler.remove_job(job.id)


async def plan_into(scheduler: Any, vol: Volunteers, now: datetime) -> list[str]:
    """Add (or replace) the jobs of every slot starting within 48 h, and the line's openings
    and closings then, from the line's hours as they are now; returns the job ids.

    Run every 15 minutes, so a change of hours reaches the jobs within that time; jobs
    planned before a change check the hours again when they run.
    """
    plan = vol.plan
    first, last = paris(now).date(), paris(now + PLAN_AHEAD).date()
    ids = []
    for opening in await plan.days(first, last):
        planned: list[tuple[str, str, datetime, list[Any]]] = []
        for slot in plan.cut(opening):
            if slot.start <= now + PLAN_AHEAD:
                planned += jobs.slot_jobs(vol, slot)
        if not opening.closed:
            for start, end in opening.open:
                for kind, at in (("open", start), ("close", end)):
                    if at > now + PLAN_AHEAD:
                        continue
                    job_id = f"line:{paris(at):%Y-%m-%dT%H%M}:{kind}"
                    planned.append((job_id, f"volunteers.jobs:line_{kind}", at, []))
        for job_id, func, run_date, args in planned:
            if run_date <= now:
                continue  # its time has passed: the misfire grace belongs to jobs planned before
            scheduler.add_job(
                func, "date", run_date=run_date, args=args, id=job_id, replace_existing=True
            )
            ids.append(job_id)
    return ids


async def plan_slots() -> int:
    """Job: plan the next 48 hours of slot jobs."""
    vol = jobs.context()
    scheduler = _running_scheduler()
    return len(await plan_into(scheduler, vol, jobs.now_of(vol)))


async def expand_recurring() -> int:
    """Job: book recurring slots that entered the booking horizon."""
    vol = jobs.context()
    now = jobs.now_of(vol)
    made = 0
    async with vol.sessions() as session:
        rules = list(await session.exec(select(RecurringBooking).where(RecurringBooking.active)))
        for rule in rules:
            account = await session.get(Account, rule.account_id)
            if account is None:
                continue
            book = vol.bookings(session)
            booked, _ = await book.expand(account, rule, now)
            made += len(booked)
    return made


def _running_scheduler() -> AsyncIOScheduler:
    if RUNNING is None:
        raise RuntimeError("no running shift scheduler in this process")
    return RUNNING
