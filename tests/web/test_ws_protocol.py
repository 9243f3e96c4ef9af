"""The server's WebSocket protocol: consoles go uncompressed, other sockets keep deflate."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import uvicorn
import websockets
from fastapi import FastAPI, WebSocket
from uvicorn.importer import import_from_string

from volunteers.web import CONSOLE_WS
from web.cli import WS_PROTOCOL
from web.ws_protocol import WebSocketProtocol


def _echo_app() -> FastAPI:
    app = FastAPI()

    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        text = await ws.receive_text()
        await ws.send_text(text * 50)  # repetitive: what compression would shrink
        await ws.close()

    app.add_api_websocket_route(CONSOLE_WS, echo)
    app.add_api_websocket_route("/coordination/ws", echo)
    return app


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _extensions(url: str) -> tuple[str | None, str]:
    async with websockets.connect(url) as ws:  # offers permessage-deflate by default
        await ws.send("bonjour ")
        reply = await ws.recv()
        return ws.response.headers.get("Sec-WebSocket-Extensions"), str(reply)


def test_console_sockets_skip_deflate_and_others_keep_it() -> None:
    assert import_from_string(WS_PROTOCOL) is WebSocketProtocol
    port = _port()
    config = uvicorn.Config(
        _echo_app(), host="127.0.0.1", port=port, log_level="warning", ws=WS_PROTOCOL
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.02)
    try:
        base = f"ws://127.0.0.1:{port}"
        console_ext, console_reply = asyncio.run(_extensions(base + CONSOLE_WS + "?v=1"))
        dashboard_ext, dashboard_reply = asyncio.run(_extensions(base + "/coordination/ws"))
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    assert console_ext is None
    assert console_reply == "bonjour " * 50
    assert dashboard_ext is not None and "permessage-deflate" in dashboard_ext
    assert dashboard_reply == "bonjour " * 50
