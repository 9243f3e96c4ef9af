"""The public chat: the /aide page, its JSON endpoints and the caller's websocket.

Websocket protocol (JSON text frames), ``/aide/ws?token=<signed token>``:
- server -> page: ``{"type": "hello", "messages": [...], "status": {...}}`` on connect
  (the whole conversation, so a reload or reconnection shows everything again);
  ``{"type": "messages", "messages": [...]}``; ``{"type": "status", ...}`` when the
  position, wait or state changes; ``{"type": "error", "message": "<French>"}``;
  ``{"type": "ended"}``; ``{"type": "pong"}`` for each ping.
- page -> server: ``{"type": "send", "text": "...", "mid": "..."}`` (``mid``: the page's id for
  the message, so that one sent again after a lost line is posted once), ``{"type": "end"}``,
  ``{"type": "ping"}`` (every 15 s: three unanswered and the page reconnects).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from callers.chat.limits import ConnectionLimit, allow_ip
from callers.chat.room import ChatError
from callers.chat.service import ChatService, chat_topics
from callers.schedule import opening_summary
from callers.settings import CallersSettings

log = logging.getLogger("callers.chat")
HERE = Path(__file__).resolve().parent.parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
STATUS_EVERY_MS = 2000
MAX_FRAME = 16_000  # bytes: a 2,000-character message with JSON escaping fits


def _ip(client: Any) -> str:
    return client.host if client else "unknown"


def static_files() -> StaticFiles:
    """The page's script and style (mount at /aide/static)."""
    return StaticFiles(directory=str(HERE / "static"))


def chat_router(settings: CallersSettings, service: Callable[[], ChatService]) -> APIRouter:
    """The chat page and endpoints; ``service`` gives the ChatService at request time."""
    router = APIRouter(tags=["chat"])

    @router.get("/aide", response_class=HTMLResponse, include_in_schema=False)
    async def page(request: Request) -> HTMLResponse:
        svc = service()
        open_now = await svc.line_open()
        topics = [(key, label) for key, (label, _skill) in chat_topics().items()]
        hours = opening_summary(await svc.ctx.schedule.get())
        return templates.TemplateResponse(
            request, "aide.html",
            {"open_now": open_now, "topics": topics, "max_chars": settings.chat_max_chars,
             "hours": hours},
        )

    async def json_body(request: Request) -> dict[str, Any]:
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            raise ChatError("format", "La demande n'a pas pu être lue.")
        try:
            body = await request.json()
        except ValueError:
            raise ChatError("format", "La demande n'a pas pu être lue.") from None
        if not isinstance(body, dict):
            raise ChatError("format", "La demande n'a pas pu être lue.")
        return body

    def refused(error: ChatError, status: int = 400) -> JSONResponse:
        return JSONResponse({"error": error.code, "message": error.message}, status_code=status)

    @router.post("/aide/api/start", include_in_schema=False)
    async def start(request: Request) -> JSONResponse:
        svc = service()
        if not await allow_ip(svc.ctx.redis, svc.ctx.keys, "start", _ip(request.client),
                              settings.chat_starts_per_hour_ip, 3600):
            return refused(ChatError("rate", "Trop de demandes. Réessayez dans un moment."), 429)
        try:
            body = await json_body(request)
            started = await svc.start(body.get("topic"), body.get("postal_code"),
                                      body.get("first_name"))
        except ChatError as error:
            return refused(error)
        return JSONResponse({"token": started.token})

    @router.post("/aide/api/message", include_in_schema=False)
    async def leave_message(request: Request) -> JSONResponse:
        svc = service()
        if not await allow_ip(svc.ctx.redis, svc.ctx.keys, "offline", _ip(request.client),
                              settings.chat_starts_per_hour_ip, 3600):
            return refused(ChatError("rate", "Trop de demandes. Réessayez dans un moment."), 429)
        try:
            await svc.leave_message(await json_body(request))
        except ChatError as error:
            return refused(error)
        return JSONResponse({"ok": True})

    @router.websocket("/aide/ws")
    async def socket(websocket: WebSocket) -> None:
        svc = service()
        task_id = svc.task_of(websocket.query_params.get("token", ""))
        if task_id is None or not await svc.ctx.redis.exists(svc.ctx.keys.chat(task_id)):
            await websocket.close(code=4403)
            return
        await websocket.accept()
        await ChatConnection(svc, settings, websocket, task_id).run()

    return router


class ChatConnection:
    """One caller's websocket: pushes messages and status, takes messages and 'end'."""

    def __init__(self, svc: ChatService, settings: CallersSettings, ws: WebSocket,
                 task_id: str) -> None:
        self.svc, self.settings, self.ws, self.task_id = svc, settings, ws, task_id
        self.limit = ConnectionLimit(settings.chat_messages_per_10s, 10)
        self.ip = _ip(ws.client)
        self.last = "0-0"
        self.status: dict[str, Any] = {}
        self.closed = False

    async def send(self, payload: dict[str, Any]) -> None:
        await self.ws.send_text(json.dumps(payload, ensure_ascii=False))

    async def run(self) -> None:
        history = await self.svc.room.history(self.task_id)
        self.last = history[-1]["id"] if history else "0-0"
        self.status = await self.svc.status(self.task_id)
        await self.send({"type": "hello", "messages": history, "status": self.status})
        pusher = asyncio.create_task(self.push())
        try:
            await self.receive()
        except WebSocketDisconnect:
            pass
        finally:
            # The flag ends the loop within one blocking read even if redis-py swallows
            # the cancellation (redis/redis-py#2028); a push racing the close may fail.
            self.closed = True
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await pusher

    async def push(self) -> None:
        """New messages as they come, and the status whenever it changes."""
        while not self.closed:
            batch = await self.svc.room.read(self.task_id, self.last, block_ms=STATUS_EVERY_MS)
            if batch:
                self.last = batch[-1]["id"]
                await self.send({"type": "messages", "messages": batch})
            status = await self.svc.status(self.task_id)
            if status != self.status:
                self.status = status
                await self.send({"type": "status", **status})

    async def receive(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
            frame = message.get("text")
            if not isinstance(frame, str):  # a binary frame: the page sends text only
                await self.error(ChatError("format", "Ce message n'a pas pu être lu."))
                continue
            if len(frame) > MAX_FRAME:
                await self.error(ChatError("too_long", "Votre message est trop long."))
                continue
            try:
                msg = json.loads(frame)
            except (ValueError, RecursionError):  # RecursionError: nested deeper than Python
                await self.error(ChatError("format", "Ce message n'a pas pu être lu."))
                continue
            kind = msg.get("type") if isinstance(msg, dict) else None
            if kind == "end":
                await self.svc.end(self.task_id)
                await self.send({"type": "ended"})
            elif kind == "send":
                await self.on_send(msg.get("text"), msg.get("mid", ""))
            elif kind == "ping":  # the page's check that the line is alive
                await self.send({"type": "pong"})
            else:
                await self.error(ChatError("format", "Ce message n'a pas pu être lu."))

    async def on_send(self, text: object, message_id: object) -> None:
        if not self.limit.allow() or not await allow_ip(
            self.svc.ctx.redis, self.svc.ctx.keys, "msg", self.ip,
            self.settings.chat_messages_per_minute_ip, 60,
        ):
            await self.error(ChatError(
                "rate", "Vous envoyez trop de messages à la suite. Attendez quelques secondes."))
            return
        try:
            await self.svc.caller_says(self.task_id, text, message_id)
        except ChatError as error:
            await self.error(error)

    async def error(self, error: ChatError) -> None:
        await self.send({"type": "error", "code": error.code, "message": error.message})
