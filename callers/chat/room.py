"""Chat rooms: one Redis stream per chat task, read by both sides' websockets.

The caller's socket (callers.chat.router) and the volunteer's console socket
(volunteers/, through web/) never talk to each other directly: each appends to the
task's stream and follows it with XREAD, so any app process can serve either side
and a dropped connection resumes from the last id it saw.

Message dicts (the shape volunteers.runtime.ChatBridge expects):
``{"id": stream id (ordered), "author": "caller" | "volunteer" | "system",
"name": display name, "text": plain text (never HTML), "at": epoch ms,
"mid": the sender's own id for it ('' when it gave none)}``.
Keys: ``perm:callers:{line}:room:<task id>``, and ``...:roomsent:<task id>`` for the ids
of the messages sent with one (see callers.keys).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from redis.asyncio import Redis

from callers.keys import CallerKeys
from routing.clock import Clock

ROOM_TTL_S = 2 * 24 * 3600
MAX_CHARS = 2000
# A sender's own id for a message (the console makes one per message it sends).
MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Appends a message, once per sender's id when it has one: sent again (its answer lost with
# a weak line), it is found, not posted twice. KEYS: the room, its sent ids; ARGV: author:id
# ('' = no id), TTL (s), the fields. Answers the entry's id and 1 if it is new.
_POST = """
local sent = ARGV[1] ~= ''
if sent then
  local known = redis.call('HGET', KEYS[2], ARGV[1])
  if known then return {known, 0} end
end
local entry = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[2])
if sent then
  redis.call('HSET', KEYS[2], ARGV[1], entry)
  redis.call('EXPIRE', KEYS[2], ARGV[2])
end
return {entry, 1}
"""
# How long follow() blocks per read: well below redis-py's 5 s socket timeout, or the
# client gives up the read before the server's empty answer comes and the follower dies.
FOLLOW_BLOCK_MS = 2000


class ChatError(Exception):
    """A message refused, with a French explanation for the person who wrote it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


# What a transcript cannot keep: control characters but newline and tab (PostgreSQL refuses
# NUL in text, and with it the whole transcript; the others garble it), and halves of
# surrogate pairs (not UTF-8: Redis could not take the message).
UNSTORABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def plain(text: str) -> str:
    """Text without the characters a transcript cannot keep; line ends as newlines."""
    return UNSTORABLE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def clean_text(text: object, max_chars: int = MAX_CHARS) -> str:
    """The message as it will be stored, or ChatError (empty, too long, not text)."""
    if not isinstance(text, str):
        raise ChatError("invalid", "Ce message n'a pas pu être lu.")
    text = plain(text).strip()
    if not text:
        raise ChatError("empty", "Le message est vide.")
    if len(text) > max_chars:
        raise ChatError(
            "too_long",
            f"Votre message est trop long : {len(text)} caractères. "
            f"Le maximum est de {max_chars} caractères. Coupez-le en plusieurs messages.",
        )
    return text


def _message(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    return {
        "id": entry_id,
        "author": fields.get("author", "system"),
        "name": fields.get("name", ""),
        "text": fields.get("text", ""),
        "at": int(fields.get("at", "0")),
        "mid": fields.get("mid", ""),  # the sender's id for it, if it gave one
    }


class ChatRoom:
    """Append to and follow the chat streams of one line."""

    def __init__(self, redis: Redis, keys: CallerKeys, clock: Clock,
                 max_chars: int = MAX_CHARS) -> None:
        self.redis = redis
        self.keys = keys
        self.clock = clock
        self.max_chars = max_chars
        self._post = redis.register_script(_POST)

    async def post(
        self,
        task_id: str,
        author: str,
        text: str,
        *,
        name: str = "",
        volunteer_id: str = "",
        message_id: str = "",
    ) -> dict[str, Any]:
        """Append a message (validated) and return it as readers will see it.

        With the sender's `message_id`, a message sent again is posted once: the second time
        it answers with the stream id of the first."""
        if author not in {"caller", "volunteer", "system"}:
            raise ValueError(f"unknown author {author!r}")
        if message_id and not MESSAGE_ID.fullmatch(message_id):
            raise ChatError("invalid", "Ce message n'a pas pu être lu.")
        body = clean_text(text, self.max_chars)
        fields = {"author": author, "name": name[:60], "text": body,
                  "at": str(self.clock.now_ms()), "vol": volunteer_id}
        if message_id:
            fields["mid"] = message_id  # a page back after a lost line sees what arrived
        key = self.keys.room(task_id)
        entry_id, new = await self._post(
            keys=[key, self.keys.room_sent(task_id)],
            args=[f"{author}:{message_id}" if message_id else "", ROOM_TTL_S,
                  *(item for pair in fields.items() for item in pair)],
        )
        if not new:  # posted before: the message as it was then
            stored = await self.redis.xrange(key, entry_id, entry_id)
            fields = stored[0][1] if stored else fields
        return _message(entry_id, fields)

    async def history(self, task_id: str) -> list[dict[str, Any]]:
        """Every message of the conversation so far."""
        entries = await self.redis.xrange(self.keys.room(task_id))
        return [_message(i, f) for i, f in entries]

    async def read(self, task_id: str, after: str, block_ms: int = 0) -> list[dict[str, Any]]:
        """Messages after an id; waits up to block_ms for the first one (0: do not wait)."""
        result = await self.redis.xread(
            {self.keys.room(task_id): after or "0-0"}, count=200,
            block=block_ms if block_ms > 0 else None,
        )
        return [_message(i, f) for _stream, entries in result for i, f in entries]

    async def follow(self, task_id: str, after: str) -> AsyncIterator[list[dict[str, Any]]]:
        """Batches of new messages as they arrive (runs until cancelled)."""
        last = after or "0-0"
        while True:
            batch = await self.read(task_id, last, block_ms=FOLLOW_BLOCK_MS)
            if batch:
                last = batch[-1]["id"]
                yield batch

    async def send(
        self, task_id: str, volunteer_id: str, name: str, text: str, message_id: str = ""
    ) -> None:
        """The volunteer side writes (the console's ChatBridge.send)."""
        await self.post(
            task_id, "volunteer", text, name=name, volunteer_id=volunteer_id,
            message_id=message_id,
        )

    async def raw_entries(self, task_id: str) -> list[tuple[str, dict[str, str]]]:
        """The stream as stored (for the transcript)."""
        return await self.redis.xrange(self.keys.room(task_id))
