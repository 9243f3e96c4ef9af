"""A real server for the console and browser tests: the whole app under uvicorn, in a thread.

The test talks to it over real sockets (HTTP with httpx, websockets with ``websockets``),
drives time through the shared ManualClock, and reaches Redis with its own engine on
the same line (all live state is in Redis, so both engines see the same line).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
import websockets
from fastapi import FastAPI

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    app: FastAPI
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


@contextlib.contextmanager
def serve(app: FastAPI) -> Iterator[LiveServer]:
    """Run the app (lifespan included) until the block ends."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", ws="websockets")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(app, port, server, thread)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


async def login(base: str, email: str, password: str) -> httpx.AsyncClient:
    """An HTTP client holding a logged-in session (cookie) on the live server."""
    client = httpx.AsyncClient(base_url=base)
    page = await client.get("/connexion")
    token = CSRF.search(page.text)
    assert token, "the login page has a CSRF token"
    reply = await client.post(
        "/connexion", data={"email": email, "password": password, "csrf_token": token.group(1)}
    )
    assert reply.status_code == 303, reply.text
    return client


def cookie_header(client: httpx.AsyncClient) -> str:
    return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


@dataclass
class Console:
    """A console over a real websocket: requests get their result; pushes are collected."""

    ws: Any
    pushes: list[dict[str, Any]] = field(default_factory=list)
    _ref: int = 0
    _results: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    _new: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None
    welcome: dict[str, Any] = field(default_factory=dict)
    received: list[str] = field(default_factory=list)  # every frame's type, in order

    @classmethod
    async def open(cls, server: LiveServer, client: httpx.AsyncClient, **headers: str) -> Console:
        origin = headers.pop("origin", server.base)
        ws = await websockets.connect(
            f"{server.ws_base}/benevole/console/ws?v=1",
            additional_headers={"Cookie": cookie_header(client), **headers},
            origin=origin,
        )
        console = cls(ws)
        console._reader = asyncio.get_running_loop().create_task(console._read())
        console.welcome = await console.next("welcome")
        return console

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                msg = json.loads(raw)
                self.received.append(msg.get("type", ""))
                if msg.get("type") == "result" and msg.get("ref") in self._results:
                    self._results.pop(msg["ref"]).set_result(msg)
                else:
                    self.pushes.append(msg)
                    self._new.set()

    async def request(self, kind: str, **fields: Any) -> dict[str, Any]:
        self._ref += 1
        ref = str(self._ref)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._results[ref] = future
        await self.ws.send(json.dumps({"type": kind, "ref": ref, **fields}))
        return await asyncio.wait_for(future, 10)

    async def ping(self) -> None:
        await self.ws.send(json.dumps({"type": "ping"}))
        await self.next("pong")

    async def next(self, kind: str, wait_s: float = 10, **match: Any) -> dict[str, Any]:
        """The first push of this type (and these field values) not consumed yet."""

        async def find() -> dict[str, Any]:
            while True:
                for i, msg in enumerate(self.pushes):
                    if msg.get("type") == kind and all(msg.get(k) == v for k, v in match.items()):
                        return self.pushes.pop(i)
                self._new.clear()
                await self._new.wait()

        return await asyncio.wait_for(find(), wait_s)

    def has(self, kind: str, **match: Any) -> bool:
        return any(
            m.get("type") == kind and all(m.get(k) == v for k, v in match.items())
            for m in self.pushes
        )

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await self._reader

    async def drop(self) -> None:
        """Lose the connection without a goodbye (a closed laptop lid)."""
        self.ws.transport.abort()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await self._reader
