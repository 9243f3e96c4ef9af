"""Uvicorn's WebSocket protocol, without per-message compression on the volunteers' consoles.

permessage-deflate keeps a zlib compressor and decompressor for the life of every socket
(uvicorn asks for 4 KiB windows, memLevel 5): about 35 KB of resident memory per
connection, measured with 500 consoles. A worker holds hundreds of consoles, whose
messages are small JSON objects (offers, results, heartbeats), so there it costs more
memory than it saves bytes. The coordinators' dashboard, whose updates list every
volunteer, keeps it: few sockets, large and very repetitive messages.

Negotiation happens when the upgrade request arrives, per connection: a console's
handshake simply does not offer the extension back, and the browser sends and receives
uncompressed frames (RFC 7692 makes the extension optional for both ends).
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

from volunteers.web import CONSOLE_WS

# Paths whose sockets go without permessage-deflate (prefix match on the request path).
UNCOMPRESSED_PATHS: tuple[str, ...] = (CONSOLE_WS,)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """``ws=`` for uvicorn: the sans-I/O websockets implementation (uvicorn's 'auto').

    Given to uvicorn by name (WS_PROTOCOL), so that only the workers import it.
    """

    def handle_connect(self, event: Request) -> None:
        if event.path.startswith(UNCOMPRESSED_PATHS):
            self.conn.available_extensions = []
        super().handle_connect(event)
