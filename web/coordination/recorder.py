"""The recorder: a consumer group on a line's event stream writing history to SQL.

Each batch is one SQL transaction: events are inserted keyed by stream id
(a replayed event inserts nothing), then the contact rows they touch are
rebuilt from all of their task's recorded events. Entries are acknowledged
only after the commit, so a crash loses nothing: this consumer re-reads its
own pending entries on restart, and any recorder claims entries a dead one
left pending for too long (XAUTOCLAIM). Any number of processes may run one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import ResponseError
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from routing.events import Event, read_range
from routing.keys import Keys
from web.coordination.history import contact_fields, from_row, to_row
from web.coordination.models import Contact, RoutingEvent

log = logging.getLogger(__name__)

GROUP = "recorder"


def _insert(engine: AsyncEngine, table):  # noqa: ANN001, ANN202 - dialect-specific insert
    """INSERT ... ON CONFLICT DO NOTHING for the database in use."""
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


class Recorder:
    """Writes one line's events to SQL through the consumer group ``recorder``."""

    def __init__(
        self,
        redis: Redis,
        db: AsyncEngine,
        *,
        line: str = "main",
        consumer: str | None = None,
        batch: int = 200,
        claim_idle_ms: int = 30_000,
    ) -> None:
        self.redis = redis
        self.db = db
        self.keys = Keys(line)
        self.line = line
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.batch = batch
        self.claim_idle_ms = claim_idle_ms
        self._own_pending = True  # re-read our own unacknowledged entries first
        self._last_claim = 0.0

    # Storing ---------------------------------------------------------------------------

    async def record(self, events: Sequence[Event]) -> int:
        """Store events in one transaction; returns how many were new (replays count 0)."""
        if not events:
            return 0
        new = 0
        touched: set[str] = set()
        ev_table = RoutingEvent.__table__  # type: ignore[attr-defined]
        ct_table = Contact.__table__  # type: ignore[attr-defined]
        async with AsyncSession(self.db) as session, session.begin():
            for event in events:
                stmt = (
                    _insert(self.db, ev_table)
                    .values(**to_row(self.line, event))
                    .on_conflict_do_nothing(index_elements=["line", "stream_id"])
                    .returning(ev_table.c.id)
                )
                inserted = (await session.execute(stmt)).first()
                if inserted is not None:
                    new += 1
                    if event.task:
                        touched.add(event.task)
            # Sorted, so that two recorders lock contact rows in the same order.
            for task_id in sorted(touched):
                await session.execute(
                    _insert(self.db, ct_table)
                    .values(line=self.line, task_id=task_id)
                    .on_conflict_do_nothing(index_elements=["line", "task_id"])
                )
                contact = (
                    await session.execute(
                        select(Contact)
                        .where(Contact.line == self.line, Contact.task_id == task_id)
                        .with_for_update()
                    )
                ).scalar_one()
                rows = (
                    await session.execute(
                        select(RoutingEvent).where(
                            RoutingEvent.line == self.line, RoutingEvent.task_id == task_id
                        )
                    )
                ).scalars()
                for name, value in contact_fields(from_row(r) for r in rows).items():
                    setattr(contact, name, value)
        return new

    async def replay(self, start: str = "-", end: str = "+") -> int:
        """Record every stored stream entry in a range again (idempotent); returns new ones."""
        events = await read_range(self.redis, self.keys, start, end)
        new = 0
        for i in range(0, len(events), self.batch):
            new += await self.record(events[i : i + self.batch])
        return new

    # Consuming -------------------------------------------------------------------------

    async def ensure_group(self) -> None:
        """Create the consumer group from the start of the stream if it does not exist."""
        try:
            await self.redis.xgroup_create(self.keys.events, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _handle(self, entries: list) -> int:  # noqa: ANN001 - redis-py reply shape
        events = [Event.parse(eid, fields) for eid, fields in entries if fields]
        await self.record(events)
        ids = [eid for eid, _ in entries]
        if ids:
            await self.redis.xack(self.keys.events, GROUP, *ids)
        return len(ids)

    async def claim_stale(self) -> int:
        """Take over entries another recorder left unacknowledged too long, and record them."""
        handled, start = 0, "0-0"
        while True:
            reply = await self.redis.xautoclaim(
                self.keys.events, GROUP, self.consumer, self.claim_idle_ms, start, self.batch
            )
            start, entries = reply[0], reply[1]
            handled += await self._handle(entries)
            if start in ("0-0", b"0-0") or not entries:
                return handled

    async def step(self, block_ms: int | None = 1000) -> int:
        """One round: stale entries now and then, our own pending ones, then new ones."""
        if time.monotonic() - self._last_claim > self.claim_idle_ms / 2000:
            self._last_claim = time.monotonic()
            await self.claim_stale()
        if self._own_pending:
            entries = await self._read("0", None)
            if entries:
                return await self._handle(entries)
            self._own_pending = False
        return await self._handle(await self._read(">", block_ms))

    async def _read(self, position: str, block_ms: int | None) -> list:
        reply = await self.redis.xreadgroup(
            GROUP, self.consumer, {self.keys.events: position}, count=self.batch, block=block_ms
        )
        return [entry for _stream, stream_entries in reply or [] for entry in stream_entries]

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Record until stopped; on a failure, wait and retry from our pending entries."""
        delay, grouped = 1.0, False
        while stop is None or not stop.is_set():
            try:
                if not grouped:  # Redis may be down at start: keep trying
                    await self.ensure_group()
                    grouped = True
                await self.step()
                delay = 1.0
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recorder of line %s failed; retrying in %.0f s", self.line, delay)
                self._own_pending = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
