"""Offers do not wait for SQL: a returning caller's notes follow the offer when they are read."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from routing.engine import Engine
from routing.models import Channel, Presence, TaskSpec
from volunteers import accounts, wrapup
from volunteers.access import SessionUser
from volunteers.console import Connection, ConsoleHub
from volunteers.models import Account
from volunteers.runtime import Volunteers
from volunteers.settings import VolunteersSettings


async def _pushed(conn: Connection, kind: str) -> dict[str, Any]:
    """The next message queued for this console of the given type (others are skipped)."""
    while True:
        message = await asyncio.wait_for(conn.queue.get(), 10)
        if message["type"] == kind:
            return message


def _connection(account: Account) -> Connection:
    user = SessionUser(
        account_id=account.id or 0,
        public_id=account.public_id,
        name=account.name,
        email=account.email,
        role=account.role,
        approved=True,
    )
    # No socket: the hub only queues messages; the test reads the queue.
    return Connection(websocket=None, user=user, account=account)  # type: ignore[arg-type]


async def test_offers_ring_while_the_database_is_held_and_notes_follow(
    make_account, engine: Engine, sessions, db_session
) -> None:
    anne, bruno = await make_account("Anne"), await make_account("Bruno")
    await wrapup.store(
        db_session,
        wrapup.WrapUpInput("old-1", "famille", "resolved", notes="Rappeler pour la CAF."),
        account_id=anne.id or 0,
        volunteer_id=anne.public_id,
        caller_key="ck-7",
        channel="voice",
        departement="05",
    )
    await db_session.commit()

    database_free = asyncio.Event()

    @contextlib.asynccontextmanager
    async def held_sessions() -> AsyncIterator[Any]:
        await database_free.wait()  # a saturated database: every session waits
        async with sessions() as session:
            yield session

    vol = Volunteers(
        settings=VolunteersSettings(secret_key="test-secret-key-not-for-production"),
        engine=engine,
        sessions=held_sessions,
    )
    hub = ConsoleHub(vol)
    con_a, con_b = _connection(anne), _connection(bruno)
    hub.attach(con_a)
    hub.attach(con_b)
    hub.start()
    try:
        await asyncio.sleep(0.6)  # the hub reads the stream from "$": let it start
        for account in (anne, bruno):
            await engine.log_in(accounts.routing_profile(account))
            await engine.set_presence(account.public_id, Presence.AVAILABLE)
        await engine.enqueue(TaskSpec("back-1", Channel.VOICE, "05", caller_key="ck-7"))
        await engine.enqueue(TaskSpec("new-1", Channel.VOICE, "05"))

        offers = await asyncio.gather(_pushed(con_a, "offer"), _pushed(con_b, "offer"))
        assert {o["task"] for o in offers} == {"back-1", "new-1"}
        assert not database_free.is_set()  # both rang while SQL was out of reach
        returning = next(o for o in offers if o["task"] == "back-1")
        assert returning["previous"] == [] and returning["ring_s"] == 20
        assert 0 < returning["remaining_ms"] <= 20_000

        database_free.set()
        who = con_a if offers[0]["task"] == "back-1" else con_b
        notes = await _pushed(who, "offer_previous")
        assert notes["task"] == "back-1" and notes["returning"] is True
        assert notes["previous"][0]["notes"] == "Rappeler pour la CAF."
        assert notes["previous"][0]["topic"] == wrapup.TOPICS["famille"]
    finally:
        await hub.stop()
