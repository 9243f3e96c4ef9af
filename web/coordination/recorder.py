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
from sqlalchemy import bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from routing.events import Event, read_range
from routing.keys import Keys
from web.coordination.history import contact_fields, from_row, to_row
from web.coordination.models import Contact, RoutingEvent

log = logging.getLogger(__name__)

GROUP = "recorder"
# After a batch that was not full, wait this long before reading again: the events of a
# contact's life (offered, assigned, completed...) then share transactions instead of
# costing one each, and nothing reads history that fresh (the dashboard is fed from Redis).
# A full batch is followed at once, so a backlog is never slowed down.
BATCH_GAP_S = 0.2
# Every column of a contact row but its keys: what contact_fields computes.
CONTACT_FIELDS = tuple(contact_fields([]))


def _insert(engine: AsyncEngine, table):  # noqa: ANN001, ANN202 - dialect-specific insert
    """INSERT ... ON CONFLICT for the database in use."""
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
        self._row_locks = db.dialect.name == "postgresql"
        self._build_statements()

    def _build_statements(self) -> None:
        """The recorder's statements, built once (their compiled form is then cached)."""
        events = RoutingEvent.__table__  # type: ignore[attr-defined]
        contacts = Contact.__table__  # type: ignore[attr-defined]
        in_line = contacts.c.line == bindparam("line")
        self._insert_events = (
            _insert(self.db, events)
            .on_conflict_do_nothing(index_elements=["line", "stream_id"])
            .returning(events.c.task_id)
        )
        self._create_contacts = _insert(self.db, contacts).on_conflict_do_nothing(
            index_elements=["line", "task_id"]
        )
        self._lock_contacts = (
            select(contacts.c.task_id)
            .where(in_line, contacts.c.task_id.in_(bindparam("tasks", expanding=True)))
            .order_by(contacts.c.task_id)
            .with_for_update()
        )
        self._task_events = select(events).where(
            events.c.line == bindparam("line"),
            events.c.task_id.in_(bindparam("tasks", expanding=True)),
        )
        upsert = _insert(self.db, contacts)
        self._write_contacts = upsert.on_conflict_do_update(
            index_elements=["line", "task_id"],
            set_={name: upsert.excluded[name] for name in CONTACT_FIELDS},
        )

    # Storing ---------------------------------------------------------------------------

    async def record(self, events: Sequence[Event]) -> int:
        """Store events in one transaction; returns how many were new (replays count 0).

        A fixed number of statements per batch, whatever its size (Core statements built
        once, executemany): under load a batch holds hundreds of events of as many
        contacts, and statements per event or per contact would be most of the cost.
        """
        if not events:
            return 0
        async with self.db.begin() as conn:
            rows = [to_row(self.line, event) for event in events]
            inserted = (await conn.execute(self._insert_events, rows)).scalars().all()
            touched = sorted({task for task in inserted if task})
            if touched:
                await self._rebuild_contacts(conn, touched)
        return len(inserted)

    async def _rebuild_contacts(self, conn: AsyncConnection, task_ids: list[str]) -> None:
        """Rewrite each contact row from all of its task's recorded events.

        The rows must be ours before the events are read, so that a recorder that
        committed other events of the same task meanwhile is seen and the last writer
        sees every event. PostgreSQL: created if new, then locked, sorted (two recorders
        lock in the same order). SQLite: the transaction holds the database's write lock
        since its INSERT of the events, so there is nothing to lock row by row.
        """
        keys = [{"line": self.line, "task_id": task_id} for task_id in task_ids]
        if self._row_locks:
            await conn.execute(self._create_contacts, keys)
            await conn.execute(self._lock_contacts, {"line": self.line, "tasks": task_ids})
        rows = await conn.execute(self._task_events, {"line": self.line, "tasks": task_ids})
        by_task: dict[str, list[Event]] = {task_id: [] for task_id in task_ids}
        for row in rows:
            by_task[row.task_id].append(from_row(row))
        await conn.execute(
            self._write_contacts,
            [{**key, **contact_fields(by_task[key["task_id"]])} for key in keys],
        )

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
                handled = await self.step()
                delay = 1.0
                if 0 < handled < self.batch:
                    await asyncio.sleep(BATCH_GAP_S)  # let the next batch gather
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recorder of line %s failed; retrying in %.0f s", self.line, delay)
                self._own_pending = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
