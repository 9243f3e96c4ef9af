"""The caller side of the chat: starting, resuming (signed token), status, ending,
transcripts, and the offline "laisser un message" form.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from callers import callbacks
from callers.chat.room import ChatError, ChatRoom, clean_text, plain
from callers.context import Callers
from callers.identity import normalize_number
from callers.models import CallbackSource, ChatMessage, fetch_all
from callers.voice.state import new_id, once
from routing.errors import RoutingError, UnknownDepartement
from routing.models import Channel, TaskSpec, TaskState
from routing.skills import SKILLS
from routing.territory import departement_code_for_postal_code

log = logging.getLogger("callers.chat")

TOKEN_MAX_AGE_S = 12 * 3600
TOKEN_TASK = "t"  # the field of a chat token that names its task
OTHER_TOPIC = "autre"
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,}$")


def chat_topics() -> dict[str, tuple[str, str]]:
    """Topic key -> (French label, routing skill) offered on the page."""
    topics = {key: (label, key) for key, label in SKILLS.items()}
    topics[OTHER_TOPIC] = ("Autre chose, ou je ne sais pas", "")
    return topics


@dataclass(frozen=True)
class ChatStart:
    task_id: str
    token: str


def _first_name(value: object) -> str:
    text = " ".join(plain(value).split()) if isinstance(value, str) else ""
    if len(text) > 40:
        raise ChatError("first_name", "Le prénom est trop long (40 caractères au plus).")
    return text


class ChatService:
    """Chat tasks for one line."""

    def __init__(self, ctx: Callers) -> None:
        self.ctx = ctx
        self.room = ChatRoom(ctx.redis, ctx.keys, ctx.engine.clock, ctx.settings.chat_max_chars)
        self._tokens = URLSafeTimedSerializer(ctx.settings.secret_key, salt="permanence-chat")

    # Tokens ----------------------------------------------------------------------

    def token_for(self, task_id: str) -> str:
        return self._tokens.dumps({TOKEN_TASK: task_id})

    def task_of(self, token: str) -> str | None:
        """The chat task a token was issued for, or None (forged, expired, malformed)."""
        try:
            data = self._tokens.loads(token, max_age=TOKEN_MAX_AGE_S)
        except (BadSignature, ValueError, TypeError):
            return None
        return _task_in(data)

    # Validation ------------------------------------------------------------------

    def departement_of(self, postal_code: object) -> str:
        """The département of a French postal code, or a French error."""
        try:
            code = departement_code_for_postal_code(str(postal_code or ""))
            return self.ctx.engine.territories.departement(code).code
        except UnknownDepartement:
            raise ChatError(
                "postal_code",
                "Ce code postal n'est pas reconnu. Indiquez les 5 chiffres, par exemple 05000.",
            ) from None

    @staticmethod
    def skill_of(topic: object) -> str:
        topics = chat_topics()
        if not isinstance(topic, str) or topic not in topics:
            raise ChatError("topic", "Choisissez le sujet de votre demande dans la liste.")
        return topics[topic][1]

    # Life of a chat ----------------------------------------------------------------

    async def line_open(self) -> bool:
        """Chats start only when the line is open and someone is on duty."""
        status = await self.ctx.schedule.status(self.ctx.now_ms())
        return status.open and await self.ctx.on_duty() > 0

    async def start(self, topic: object, postal_code: object, first_name: object) -> ChatStart:
        """Validate the form and put the chat in the queue."""
        skill = self.skill_of(topic)
        departement = self.departement_of(postal_code)
        name = _first_name(first_name)
        if not await self.line_open():
            raise ChatError("closed", "La discussion est fermée pour le moment. "
                                      "Vous pouvez nous laisser un message.")
        task_id = new_id("c")
        await self.ctx.redis.hset(self.ctx.keys.chat(task_id), mapping={
            "topic": str(topic), "dept": departement, "name": name,
            "started": str(self.ctx.now_ms())})
        await self.ctx.redis.expire(self.ctx.keys.chat(task_id), TOKEN_MAX_AGE_S)
        await self.ctx.engine.enqueue(
            TaskSpec(id=task_id, channel=Channel.CHAT, departement=departement, skill=skill)
        )
        return ChatStart(task_id, self.token_for(task_id))

    async def status(self, task_id: str) -> dict[str, Any]:
        """What the caller's page shows: waiting (position, wait), talking, or ended."""
        task = await self.ctx.engine.task(task_id)
        if task is None or task.state in {TaskState.ENDED, TaskState.WRAPUP}:
            return {"state": "ended"}
        if task.state is TaskState.ASSIGNED:
            volunteer = await self.ctx.engine.volunteer(task.volunteer)
            return {"state": "talking", "volunteer": volunteer.name if volunteer else ""}
        position = await self.ctx.engine.place(task)
        if position is None:  # offered to a volunteer, ringing on their console
            return {"state": "waiting", "position": 1, "wait_minutes": 1}
        minutes = await self.ctx.expected_wait_minutes(position, "chat")
        return {"state": "waiting", "position": position, "wait_minutes": minutes}

    async def caller_says(
        self, task_id: str, text: object, message_id: object = ""
    ) -> dict[str, Any]:
        """A caller's message (only while the chat is live); with the page's id for it, posted
        once however often it is sent."""
        status = await self.status(task_id)
        if status["state"] == "ended":
            raise ChatError("ended", "Cette discussion est terminée.")
        if not isinstance(message_id, str):
            raise ChatError("invalid", "Ce message n'a pas pu être lu.")
        meta = await self.ctx.redis.hgetall(self.ctx.keys.chat(task_id))
        return await self.room.post(task_id, "caller", clean_text(text, self.room.max_chars),
                                    name=meta.get("name", ""), message_id=message_id)

    async def end(self, task_id: str) -> None:
        """The caller ends the chat: abandoned if waiting, completed if talking."""
        # Claimed first, so the task_completed event adds no second goodbye.
        await once(self.ctx, f"chat:{task_id}:completed")
        try:
            await self.ctx.engine.cancel(task_id)
        except RoutingError as error:
            log.info("chat %s end: %s", task_id, error.code)
        await self.system_once(task_id, "ended-by-caller",
                               "La personne a terminé la discussion.")
        await self.save_transcript(task_id)

    async def system_once(self, task_id: str, what: str, text: str) -> None:
        if await once(self.ctx, f"chat:{task_id}:{what}"):
            await self.room.post(task_id, "system", text)

    # Transcripts --------------------------------------------------------------------

    async def save_transcript(self, task_id: str) -> int:
        """Copy the room into SQL (idempotent: each stream entry once); returns rows added."""
        try:
            return await self._save_transcript(task_id)
        except IntegrityError:
            # Another process saved the same lines at the same moment: take what is left.
            return await self._save_transcript(task_id)

    async def _save_transcript(self, task_id: str) -> int:
        entries = await self.room.raw_entries(task_id)
        if not entries:
            return 0
        async with self.ctx.sessions() as session:
            known = set(await fetch_all(
                session, select(ChatMessage.stream_id).where(ChatMessage.task_id == task_id)))
            added = 0
            for entry_id, fields in entries:
                if entry_id in known:
                    continue
                session.add(ChatMessage(
                    task_id=task_id, stream_id=entry_id,
                    at=datetime.fromtimestamp(int(fields.get("at", "0")) / 1000, UTC),
                    author=fields.get("author", "system"), name=fields.get("name", ""),
                    volunteer_id=fields.get("vol", ""), text=fields.get("text", ""),
                ))
                added += 1
            await session.commit()
        return added

    async def on_event(self, event: dict[str, str]) -> None:
        """Engine events about chat tasks: tell the caller, keep the transcript."""
        task_id, kind = event.get("task", ""), event.get("type", "")
        if not task_id.startswith("c") or kind not in {
            "task_assigned", "task_completed", "task_ended", "task_transferred"}:
            return
        task = await self.ctx.engine.task(task_id)
        if task is None or task.channel is not Channel.CHAT:
            return
        if kind == "task_assigned":
            volunteer = await self.ctx.engine.volunteer(event.get("volunteer", ""))
            name = volunteer.name if volunteer and volunteer.name else "Un bénévole"
            await self.system_once(task_id, f"joined:{event.get('volunteer')}",
                                   f"{name} a rejoint la discussion.")
        elif kind == "task_transferred":
            await self.system_once(task_id, f"transfer:{event.get('at')}",
                                   "Un autre bénévole va prendre la suite. Merci de patienter.")
        elif kind == "task_completed":
            await self.system_once(task_id, "completed", "La discussion est terminée. Merci !")
            await self.save_transcript(task_id)
        elif kind == "task_ended":
            await self.save_transcript(task_id)

    # Offline messages ---------------------------------------------------------------

    async def leave_message(self, form: dict[str, Any]) -> str:
        """The offline form: becomes a callback task when the line opens."""
        skill = self.skill_of(form.get("topic"))
        departement = self.departement_of(form.get("postal_code"))
        phone_raw = str(form.get("phone") or "").strip()
        email = str(form.get("email") or "").strip()
        phone = normalize_number(phone_raw) if phone_raw else ""
        if phone_raw and phone is None:
            raise ChatError("phone", "Ce numéro de téléphone n'est pas valable. "
                                     "Exemple : 06 12 34 56 78.")
        if email and not EMAIL.match(email):
            raise ChatError("email", "Cette adresse e-mail n'est pas valable.")
        if not phone and not email:
            raise ChatError("contact", "Indiquez un numéro de téléphone ou une adresse e-mail "
                                       "pour que nous puissions vous répondre.")
        message = clean_text(form.get("message"), self.room.max_chars)
        preferred = " ".join(plain(str(form.get("preferred_time") or "")).split())[:120]
        return await callbacks.save_request(self.ctx, callbacks.NewCallback(
            source=CallbackSource.CHAT_FORM, departement=departement, skill=skill,
            phone=phone or "", email=email, message=message, preferred_time=preferred,
            first_name=_first_name(form.get("first_name")),
        ))


def unverified_task_of(token: str) -> str | None:
    """The chat task a token names, without checking its signature: for a client of the
    chat (the simulator) that matches its chats to tasks; never to grant anything."""
    try:
        _, data = URLSafeTimedSerializer("").loads_unsafe(token)
    except (BadSignature, ValueError, TypeError):
        return None
    return _task_in(data)


def _task_in(data: Any) -> str | None:
    task_id = data.get(TOKEN_TASK) if isinstance(data, dict) else None
    return task_id if isinstance(task_id, str) else None
