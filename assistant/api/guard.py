"""The door of the HTTP API: Host check, bearer token, body size and read time.

A plain ASGI middleware (not Starlette's BaseHTTPMiddleware, which breaks streaming and
disconnect detection). Order: a foreign ``Host`` is refused first (403; a web page that
rebinds its DNS name to 127.0.0.1 still sends its own name), then the token (401), then
the body is read in full — at most ``api.max_body_bytes`` (413) within
``api.read_timeout_s`` (408) — and replayed to the app. ``/health`` needs no token so a
supervisor can probe it.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import socket
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ..config import API

__all__ = ["Guard", "allowed_hosts", "error_body"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: served without the key: the supervisor's probe, and the kiosk page and its assets (they
#: hold no secret; the page asks for the key when the events need it)
OPEN_PATHS = frozenset({"/health", "/", "/kiosk/kiosk.js", "/kiosk/kiosk.css"})
#: the one path a browser may authorize with the key cookie (an EventSource sends no header)
COOKIE_PATHS = frozenset({"/v1/events"})
COOKIE = b"qwen_assistant_key"


def error_body(message: str, kind: str, code: str | None = None, param: str | None = None) -> bytes:
    """OpenAI's error shape, so its client raises the right exception with our message."""
    error = {"message": message, "type": kind, "param": param, "code": code}
    return json.dumps({"error": error}).encode()


def allowed_hosts(settings: API) -> frozenset[str]:
    """Host names (without port) the API answers to."""
    names = {"localhost", "127.0.0.1", "::1", settings.host.lower()}
    names.update(h.lower() for h in settings.allowed_hosts)
    hostname = socket.gethostname().lower()
    names.update({hostname, f"{hostname}.local"})  # the device's own names are not rebinding
    return frozenset(names - {"", "0.0.0.0", "::"})  # noqa: S104 - removed, not bound


def host_name(header: str) -> str:
    """``example.com:8088`` → ``example.com``; ``[::1]:8088`` → ``::1``."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        settings: Callable[[], API],
        on_refuse: Callable[[int], None] | None = None,
    ) -> None:
        self.app = app
        self.on_refuse = on_refuse or (lambda _status: None)
        self._settings = settings  # read per request: a reload may change the key or hosts
        self._hosts: tuple[API, frozenset[str]] | None = None

    @property
    def settings(self) -> API:
        return self._settings()

    def hosts(self, settings: API) -> frozenset[str]:
        if self._hosts is None or self._hosts[0] is not settings:
            self._hosts = (settings, allowed_hosts(settings))
        return self._hosts[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = self.settings
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        host = host_name(headers.get("host", b"").decode("latin-1"))
        if host not in self.hosts(settings):
            await self._refuse(
                send,
                403,
                f"Host {host or '(none)'!r} is not served here; add it to api.allowed_hosts",
                "permission_error",
            )
            return
        key = settings.api_key.encode()
        path = scope.get("path")
        if key and path not in OPEN_PATHS and not _authorized(headers, key, path in COOKIE_PATHS):
            await self._refuse(
                send,
                401,
                "missing or wrong API key: send 'Authorization: Bearer <api.api_key>'",
                "authentication_error",
                extra=[(b"www-authenticate", b"Bearer")],
            )
            return
        body = await self._read_body(settings, headers, receive, send)
        if body is None:
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: only http.disconnect comes

        await self.app(scope, replay, send)

    async def _refuse(
        self,
        send: Send,
        status: int,
        message: str,
        kind: str,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self.on_refuse(status)
        body = error_body(message, kind)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *(extra or []),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def _read_body(
        self, settings: API, headers: dict[str, bytes], receive: Receive, send: Send
    ) -> bytes | None:
        limit = settings.max_body_bytes
        too_big = f"request body over api.max_body_bytes ({limit} bytes)"
        try:
            declared = int(headers.get("content-length", b"0"))
        except ValueError:
            await self._refuse(send, 400, "Content-Length is not a number", "invalid_request_error")
            return None
        if declared > limit:
            await self._refuse(send, 413, too_big, "invalid_request_error")
            return None
        chunks: list[bytes] = []
        size = 0

        async def read_all() -> bool:
            nonlocal size
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return False
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    return True
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return True

        try:
            complete = await asyncio.wait_for(read_all(), settings.read_timeout_s)
        except TimeoutError:
            await self._refuse(
                send,
                408,
                f"request body not received within api.read_timeout_s "
                f"({settings.read_timeout_s:g} s)",
                "invalid_request_error",
                extra=[(b"connection", b"close")],
            )
            return None
        if not complete:
            return None  # the client left
        if size > limit:  # the rest is unread: close the connection after the reply
            await self._refuse(
                send, 413, too_big, "invalid_request_error", extra=[(b"connection", b"close")]
            )
            return None
        return b"".join(chunks)


def _authorized(headers: dict[str, bytes], key: bytes, cookie: bool = False) -> bool:
    """The bearer token (or, where ``cookie`` allows it, the key cookie) is the key."""
    scheme, _, token = headers.get("authorization", b"").partition(b" ")
    # compare_digest takes the same time wherever the first difference is
    if scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), key):
        return True
    return cookie and hmac.compare_digest(_cookie(headers.get("cookie", b"")), key)


def _cookie(header: bytes) -> bytes:
    """The key cookie's value ("" when absent), percent-decoded as the page encodes it."""
    for part in header.split(b";"):
        name, _, value = part.strip().partition(b"=")
        if name == COOKIE:
            return urllib.parse.unquote_to_bytes(value.strip())
    return b""
