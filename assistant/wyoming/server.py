"""The Wyoming server: one listening socket inside ``qwen-assistant run``.

Wyoming has no authentication, so the bind is loopback unless ``wyoming.allow_lan`` (the
config refuses anything else). What a client sends is bounded before it is believed: a
header line over :data:`MAX_LINE_BYTES`, a ``data_length`` over :data:`MAX_DATA_BYTES` or
a ``payload_length`` over :data:`MAX_PAYLOAD_BYTES` closes the connection after an
``error`` event, as does a client silent for :data:`IDLE_S` or not reading what it asked
for for :data:`WRITE_S`. One connection over ``wyoming.max_connections`` takes the place of
a connection whose writes have been stuck for :data:`STALLED_S` (a client that asks and
never reads gets that long of a slot others wait for), or is closed at once with an error.
A stop closes the listening socket first (no new connection during the drain). Nothing a
client does reaches past its own connection: the voice loop and the HTTP API keep serving.

With ``wyoming.zeroconf`` the service is announced over mDNS as ``_wyoming._tcp`` (the
``zeroconf`` package, as ``wyoming[zeroconf]`` does), so Home Assistant discovers it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from wyoming.audio import AudioChunk
from wyoming.error import Error
from wyoming.event import Event, async_write_event
from wyoming.server import AsyncServer

from ..config import Wyoming as WyomingConfig
from ..errors import AssistantError

__all__ = [
    "IDLE_S",
    "MAX_DATA_BYTES",
    "MAX_LINE_BYTES",
    "MAX_PAYLOAD_BYTES",
    "STALLED_S",
    "WRITE_S",
    "BadEvent",
    "ProtocolError",
    "WyomingServer",
    "audio_chunk",
    "event_text",
    "read_event",
]

log = logging.getLogger(__name__)

MAX_LINE_BYTES = 64 * 1024  # an event's JSON header line
MAX_DATA_BYTES = 64 * 1024  # its extra JSON data (a Synthesize text, a Transcript)
MAX_PAYLOAD_BYTES = 256 * 1024  # its payload (an audio chunk: ~8 s of 16 kHz mono)
IDLE_S = 60.0  # a client that sends nothing for this long is disconnected
WRITE_S = 30.0  # a client that reads nothing of an answer for this long is disconnected
#: a connection whose writes have waited this long gives its place to a new client
STALLED_S = 5.0


class ProtocolError(Exception):
    """What the client sent is not a Wyoming event we accept; the connection closes."""


class BindError(AssistantError):
    exit_code = 69


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """The next event, None at the end of the stream; :class:`ProtocolError` for bytes
    that are not a Wyoming event or that exceed the caps (wyoming's own reader believes
    any ``payload_length``)."""
    try:
        line = await reader.readline()
    except (ValueError, asyncio.LimitOverrunError):  # no newline within the limit
        raise ProtocolError(f"an event header longer than {MAX_LINE_BYTES} bytes") from None
    if not line:
        return None
    if not line.endswith(b"\n"):
        return None  # the client left mid-line
    try:
        header = json.loads(line)
    except ValueError:
        raise ProtocolError("an event header that is not JSON") from None
    if not isinstance(header, dict) or not isinstance(header.get("type"), str):
        raise ProtocolError('an event header without a "type" string')
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise ProtocolError('"data" must be a JSON object')
    data_length = _length(header, "data_length", MAX_DATA_BYTES)
    payload_length = _length(header, "payload_length", MAX_PAYLOAD_BYTES)
    try:
        if data_length:
            extra = json.loads(await reader.readexactly(data_length))
            if not isinstance(extra, dict):
                raise ProtocolError("an event's data must be a JSON object")
            data.update(extra)
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError:
        return None  # the client left mid-event
    except (ValueError, RecursionError):
        raise ProtocolError("an event's data that is not JSON") from None
    return Event(type=header["type"], data=data, payload=payload)


def _length(header: dict[str, Any], key: str, cap: int) -> int:
    value = header.get(key) or 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProtocolError(f"{key} must be a whole number of bytes")
    if value > cap:
        raise ProtocolError(f"{key} {value} is over the limit of {cap} bytes")
    return value


class WyomingServer(AsyncServer):
    """Accepts connections on ``config.uri`` and runs a handler for each.

    ``make_handler(reader, writer)`` builds the :class:`~assistant.wyoming.handler.Handler`.
    """

    def __init__(self, config: WyomingConfig, make_handler: Callable[..., Any]) -> None:
        super().__init__()
        self.config = config
        self._make_handler = make_handler
        self._server: asyncio.Server | None = None
        self._tasks: dict[asyncio.Task[None], Any] = {}  # each connection's Handler
        self._zeroconf: Any = None
        self.url = ""

    @property
    def connections(self) -> int:
        return len(self._tasks)

    async def run(self, handler_factory: Any = None) -> None:  # AsyncServer's blocking form
        await self.start(handler_factory)
        if self._server is not None:
            await self._server.serve_forever()

    async def start(self, handler_factory: Any = None) -> None:
        """Bind and listen (without wyoming's SIGTERM handler: the service owns signals).
        Raises :class:`BindError` naming the uri."""
        if handler_factory is not None:
            self._make_handler = handler_factory
        uri = self.config.uri
        accept = self._accept
        try:
            if uri.startswith("unix://"):
                path = Path(uri[len("unix://") :])
                with contextlib.suppress(FileNotFoundError):
                    if path.is_socket():
                        path.unlink()  # a socket left by a crash; never another kind of file
                self._server = await asyncio.start_unix_server(
                    accept, path=str(path), limit=MAX_LINE_BYTES
                )
                os.chmod(path, 0o660)
                self.url = uri
            else:
                parts = urlsplit(uri)
                self._server = await asyncio.start_server(
                    accept, host=parts.hostname, port=parts.port, limit=MAX_LINE_BYTES
                )
                host, port = self._server.sockets[0].getsockname()[:2]
                shown = f"[{host}]" if ":" in host else host
                self.url = f"tcp://{shown}:{port}"
        except OSError as exc:
            raise BindError(
                f"wyoming.uri {uri!r}: cannot listen: {exc.strerror or exc}; "
                "free it or choose another port"
            ) from None
        if self.config.zeroconf:
            await self._announce()

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            return 0
        return int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._tasks) >= self.config.max_connections and not self._make_room():
            log.warning(
                "wyoming: connection refused: %d open (wyoming.max_connections)", len(self._tasks)
            )
            with contextlib.suppress(Exception):
                await async_write_event(
                    Error(
                        text=f"busy: {len(self._tasks)} connections open; try again",
                        code="too_many_connections",
                    ).event(),
                    writer,
                )
            writer.close()
            return
        task = typing.cast("asyncio.Task[None]", asyncio.current_task())
        handler = self._tasks[task] = self._make_handler(reader, writer)
        try:
            await handler.run()
        except asyncio.CancelledError:  # stop() ends it: not an error of the connection
            pass
        except Exception as exc:  # one connection's bug never stops the server
            log.exception("wyoming: connection failed: %s", exc)
        finally:
            self._tasks.pop(task, None)
            writer.close()

    def stuck(self) -> list[float]:
        """How long each connection's write has waited for its client (0: not waiting)."""
        now = time.monotonic()
        return [handler.stuck_s(now) for handler in self._tasks.values()]

    def _make_room(self) -> bool:
        """Drop the connection stuck longest on a write, if for :data:`STALLED_S`."""
        now = time.monotonic()
        longest = max(self._tasks.values(), key=lambda h: h.stuck_s(now), default=None)
        if longest is None or longest.stuck_s(now) < STALLED_S:
            return False
        longest.drop(f"not reading for {longest.stuck_s(now):.0f} s while another client waits")
        return True

    def close(self) -> None:
        """Accept no new connection (a stop's first step); open ones are served on."""
        if self._server is not None:
            self._server.close()

    async def stop(self) -> None:
        """Stop listening, end every connection, withdraw the announcement."""
        self.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
        if self._zeroconf is not None:
            with contextlib.suppress(Exception):
                await self._zeroconf.async_close()
            self._zeroconf = None
        if self.config.uri.startswith("unix://"):
            with contextlib.suppress(OSError):
                Path(self.config.uri[len("unix://") :]).unlink()

    async def _announce(self) -> None:
        """mDNS ``_wyoming._tcp``; a network where that fails is logged, not fatal."""
        try:
            from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

            host = urlsplit(self.config.uri).hostname or ""
            address = host if host not in ("0.0.0.0", "::", "") else _lan_address()  # noqa: S104
            name = socket.gethostname().split(".")[0] or "qwen-assistant"
            info = AsyncServiceInfo(
                "_wyoming._tcp.local.",
                f"{name}._wyoming._tcp.local.",
                addresses=[socket.inet_aton(address)],
                port=self.port,
                properties={"app": "qwen-assistant"},
            )
            self._zeroconf = AsyncZeroconf()
            # two Pis called "raspberrypi" on one LAN: the second is renamed, not refused
            await self._zeroconf.async_register_service(info, allow_name_change=True)
        except Exception as exc:  # noqa: BLE001 - mDNS is a convenience; the socket serves
            log.warning("wyoming: zeroconf announcement failed (%s); add host:port in HA", exc)
            if self._zeroconf is not None:
                with contextlib.suppress(Exception):
                    await self._zeroconf.async_close()
                self._zeroconf = None
            return
        log.info("wyoming: announced as %s on %s:%d", info.name, address, self.port)


def _lan_address() -> str:
    """The address this host reaches the mDNS group from (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("224.0.0.251", 5353))
        return str(probe.getsockname()[0])


class BadEvent(Exception):
    """An event we understand but cannot take (missing fields, out-of-range values)."""

    def __init__(self, message: str, code: str = "bad_event") -> None:
        super().__init__(message)
        self.code = code


def event_text(event: Event, what: str) -> str:
    text = event.data.get("text")
    if not isinstance(text, str):
        raise BadEvent(f'{what}: "text" must be a string')
    return text


def audio_chunk(event: Event) -> AudioChunk:
    data = event.data
    try:
        rate, width, channels = int(data["rate"]), int(data["width"]), int(data["channels"])
    except (KeyError, TypeError, ValueError):
        raise BadEvent("audio-chunk needs whole numbers rate, width and channels") from None
    if not (1000 <= rate <= 192000 and width in (1, 2, 3, 4) and channels in (1, 2)):
        raise BadEvent(
            f"audio-chunk: unsupported audio: rate {rate}, width {width}, channels {channels} "
            "(rate 1000-192000, width 1-4 bytes, 1 or 2 channels)"
        )
    audio = event.payload or b""
    if len(audio) % (width * channels):
        raise BadEvent("audio-chunk: the payload is not a whole number of samples")
    return AudioChunk(rate=rate, width=width, channels=channels, audio=audio)
