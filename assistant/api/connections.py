"""uvicorn's HTTP/1.1 protocol with two limits it lacks: a header-read timeout and a cap on
open connections.

uvicorn closes idle kept-alive connections (``timeout_keep_alive``) but gives a client that
sends its request line and headers slowly all the time it wants, so a few slow-header
connections hold sockets indefinitely. Here each request's headers must be complete within
``api.header_timeout_s`` of the connection opening (or of the previous response on a
kept-alive connection), else the connection is closed; and beyond ``api.max_connections``
open connections a new one is answered ``503`` with ``Retry-After`` at once and closed.
Both settings are read per connection, so a reload applies them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from ..config import API

__all__ = ["limited_protocol"]

#: seconds a refused connection stays open so the client can read the 503 before the close
REFUSED_LINGER_S = 1.0


def _refusal(limit: int) -> bytes:
    body = json.dumps(
        {
            "error": {
                "message": f"too many open connections (api.max_connections = {limit}); "
                "retry shortly",
                "type": "server_error",
                "param": None,
                "code": "too_many_connections",
            }
        }
    ).encode()
    head = (
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
        f"retry-after: 1\r\nconnection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def limited_protocol(settings: Callable[[], API]) -> type[asyncio.Protocol]:
    """An ``http=`` protocol class for uvicorn.Config enforcing ``settings()``'s limits."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class Limited(H11Protocol):
        _refused = False
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            s = settings()
            if len(self.connections) >= s.max_connections:
                self._refused = True  # never counted, never handed to the app
                self.transport = transport
                transport.write(_refusal(s.max_connections))
                self.loop.call_later(REFUSED_LINGER_S, transport.close)
                return
            super().connection_made(transport)
            self._arm(s.header_timeout_s)

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return  # the request of a refused connection is not read
            super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            if self._refused:
                return
            self._disarm()
            super().connection_lost(exc)

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:  # the headers are in
                self._disarm()

        def on_response_complete(self) -> None:
            # the next request on this kept-alive connection gets the same limit (armed
            # first: a pipelined request that is already complete disarms it at once)
            if not self.transport.is_closing():
                self._arm(settings().header_timeout_s)
            super().on_response_complete()

        def _arm(self, seconds: float) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(seconds, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return Limited
