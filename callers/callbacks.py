"""Callback requests: taken while the line is closed (phone or "laisser un message"),
turned into callback tasks in the engine once the line opens, keeping their place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import select

from callers.context import Callers
from callers.models import CallbackRequest, CallbackSource, CallbackState, fetch_all
from callers.voice.state import get_task, new_id, set_task
from routing.errors import TaskExists
from routing.models import Channel, TaskSpec, TaskState

log = logging.getLogger("callers.callbacks")


@dataclass(frozen=True)
class NewCallback:
    """What a caller left; phone/email/message are sealed before they reach the database."""

    source: CallbackSource
    departement: str
    skill: str = ""
    caller_key: str = ""
    phone: str = ""
    email: str = ""
    message: str = ""
    preferred_time: str = ""
    first_name: str = ""
    request_id: str = ""  # given by the voice flow so a retried webhook saves it once


async def save_request(ctx: Callers, new: NewCallback) -> str:
    """Store a request (pending) and queue it at once if the line is open; returns its id."""
    request_id = new.request_id or new_id("r")
    async with ctx.sessions() as session:
        if await session.get(CallbackRequest, request_id) is None:
            session.add(
                CallbackRequest(
                    id=request_id,
                    created_at=datetime.fromtimestamp(ctx.now_ms() / 1000, UTC),
                    source=new.source.value,
                    departement=new.departement,
                    skill=new.skill,
                    caller_key=new.caller_key,
                    phone_sealed=ctx.identity.seal(new.phone),
                    email_sealed=ctx.identity.seal(new.email),
                    message_sealed=ctx.identity.seal(new.message),
                    preferred_time=new.preferred_time,
                    first_name=new.first_name,
                )
            )
            await session.commit()
    await release_pending(ctx)
    return request_id


async def release_pending(ctx: Callers, limit: int = 200) -> int:
    """Turn pending requests into callback tasks while the line is open; returns how many.

    Safe to run from several processes: the task id is the request id, so a second
    enqueue of the same request fails with TaskExists and is treated as done.
    """
    status = await ctx.schedule.status(ctx.now_ms())
    if not status.open:
        return 0
    async with ctx.sessions() as session:
        rows = await fetch_all(
            session,
            select(CallbackRequest)
            .where(CallbackRequest.state == CallbackState.PENDING.value)
            .order_by(CallbackRequest.created_at)
            .limit(limit),
        )
        for row in rows:
            await set_task(
                ctx,
                row.id,
                num=row.phone_sealed,
                email=row.email_sealed,
                msg=row.message_sealed,
                pref_time=row.preferred_time,
                first_name=row.first_name,
                source=row.source,
                ck=row.caller_key,
            )
            created = row.created_at
            if created.tzinfo is None:  # SQLite drops the zone
                created = created.replace(tzinfo=UTC)
            try:
                await ctx.engine.enqueue(
                    TaskSpec(
                        id=row.id,
                        channel=Channel.CALLBACK,
                        departement=row.departement,
                        skill=row.skill,
                        caller_key=row.caller_key,
                        place_ms=int(created.timestamp() * 1000),
                    )
                )
            except TaskExists:
                log.info("callback %s was already queued", row.id)
            row.state, row.task_id = CallbackState.QUEUED.value, row.id
            row.queued_at = datetime.fromtimestamp(ctx.now_ms() / 1000, UTC)
            session.add(row)
        await session.commit()
    return len(rows)


@dataclass(frozen=True)
class CallbackDetails:
    """What a volunteer handling a callback task sees (decrypted only for them)."""

    task_id: str
    phone: str
    email: str
    message: str
    preferred_time: str
    first_name: str


async def callback_details(ctx: Callers, task_id: str) -> CallbackDetails | None:
    """Contact details of a callback task (callers of this function check who asks)."""
    meta = await get_task(ctx, task_id)
    if not meta:
        return None
    return CallbackDetails(
        task_id=task_id,
        phone=ctx.identity.open(meta.get("num", "")),
        email=ctx.identity.open(meta.get("email", "")),
        message=ctx.identity.open(meta.get("msg", "")),
        preferred_time=meta.get("pref_time", ""),
        first_name=meta.get("first_name", ""),
    )


async def callback_details_for(
    ctx: Callers, task_id: str, volunteer_id: str
) -> CallbackDetails | None:
    """The details, only for the volunteer the callback is offered or assigned to."""
    task = await ctx.engine.task(task_id)
    if task is None or task.channel is not Channel.CALLBACK or task.volunteer != volunteer_id:
        return None
    if task.state not in {TaskState.RESERVED, TaskState.ASSIGNED, TaskState.WRAPUP}:
        return None
    return await callback_details(ctx, task_id)
