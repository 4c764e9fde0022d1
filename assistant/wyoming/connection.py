"""One Wyoming connection's mechanics, whatever it asks for: events read on a task of their
own (a client that leaves mid-answer is noticed at once), an idle limit, a write deadline, a
connection whose writes are stuck given up to a client that waits, a stop that says so with
an ``error`` (code ``stopping``) instead of a bare EOF, and every refusal an ``error`` event.
:class:`~assistant.wyoming.handler.Handler` maps the events onto the device's parts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from wyoming.error import Error
from wyoming.event import Event
from wyoming.server import AsyncEventHandler

from .info import Parts
from .server import IDLE_S, WRITE_S, BadEvent, ProtocolError, read_event

__all__ = ["Connection"]

log = logging.getLogger(__name__)

_QUEUE = 16  # events read ahead of the one being handled (backpressure beyond)


class Connection(AsyncEventHandler):
    """The events of one client, answered by :meth:`_dispatch` (a subclass's)."""

    def __init__(
        self, parts: Parts, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        super().__init__(reader, writer)
        self.parts = parts
        self.peer = str(writer.get_extra_info("peername") or "unix socket")
        #: time.monotonic() since a write has waited for the client to read (None: not)
        self.blocked_since: float | None = None

    async def _dispatch(self, event: Event) -> bool:
        """Answer ``event`` (:class:`BadEvent` for one it cannot take); False closes."""
        raise NotImplementedError

    def _program(self, kind: str) -> str:
        """The Wyoming program an event belongs to (for the metrics)."""
        return kind

    async def run(self) -> None:
        """Read events on one task, handle them on this one, until either side ends."""
        events: asyncio.Queue[Event | None] = asyncio.Queue(_QUEUE)
        reading = asyncio.create_task(self._read(events), name="wyoming read")
        try:
            while True:
                try:  # idle: waiting for the client, not for an answer it awaits
                    async with asyncio.timeout(IDLE_S):
                        event = await events.get()
                except TimeoutError:
                    log.info("wyoming %s: idle for %.0f s, disconnected", self.peer, IDLE_S)
                    return
                if event is None:
                    return
                handling = asyncio.ensure_future(self.handle_event(event))
                try:
                    await asyncio.wait({handling, reading}, return_when=asyncio.FIRST_COMPLETED)
                except asyncio.CancelledError:  # the server stops: say so, not a bare EOF
                    handling.cancel()
                    if self.parts.closing and not handling.done():
                        await self._stopping()
                    raise
                if not handling.done():  # the client left (or broke the protocol) meanwhile
                    handling.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await handling
                    return
                if not handling.result():
                    return
        finally:
            self.writer.close()  # first: a read in progress ends with the connection
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reading
            await self.disconnect()

    async def _read(self, events: asyncio.Queue[Event | None]) -> None:
        try:
            while (event := await read_event(self.reader)) is not None:
                await events.put(event)
        except ProtocolError as exc:
            log.warning("wyoming %s: %s; closing the connection", self.peer, exc)
            with contextlib.suppress(Exception):
                await self.write_event(Error(text=str(exc), code="protocol").event())
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(asyncio.QueueFull):
                events.put_nowait(None)

    async def write_event(self, event: Event) -> None:
        """Send ``event``; a client that has not read for :data:`WRITE_S` (eight clients
        that ask for speech and never read held every connection) is disconnected, and one
        blocked for :data:`~assistant.wyoming.server.STALLED_S` gives its connection up to
        a new client when every connection is taken (the server's :meth:`drop`)."""
        self.blocked_since = time.monotonic()
        try:
            async with asyncio.timeout(WRITE_S):
                await super().write_event(event)
        except TimeoutError:
            log.warning("wyoming %s: not reading for %.0f s, disconnected", self.peer, WRITE_S)
            self.writer.transport.abort()
            raise ConnectionResetError(f"{self.peer} stopped reading") from None
        finally:
            self.blocked_since = None

    def stuck_s(self, now: float) -> float:
        """How long the write in progress has waited for the client (0: none waits)."""
        return now - self.blocked_since if self.blocked_since is not None else 0.0

    def drop(self, why: str) -> None:
        """End this connection now (its writes are stuck): ``why`` is logged."""
        log.warning("wyoming %s: %s, disconnected", self.peer, why)
        self.writer.transport.abort()

    async def _stopping(self) -> None:
        """Tell the client the service is stopping (within a second: it may not read)."""
        error = Error(text=f"{self.parts.closing}: try again shortly", code="stopping")
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await super().write_event(error.event())

    async def handle_event(self, event: Event) -> bool:
        """Answer one event; False closes the connection."""
        try:
            return await self._dispatch(event)
        except BadEvent as exc:
            log.info("wyoming %s: %s event refused: %s", self.peer, event.type, exc)
            self._count(self._program(event.type), exc.code)
            await self.write_event(Error(text=str(exc), code=exc.code).event())
            return exc.code not in ("too_long", "stopping")
        except (ConnectionError, OSError):
            return False

    def _count(self, program: str, outcome: str) -> None:
        if self.parts.metrics is not None:
            self.parts.metrics.wyoming_request(program, outcome)

    def _check_open(self, kind: str = "") -> None:
        """:class:`BadEvent` ("stopping") while the service stops (``describe`` is answered)."""
        if self.parts.closing and kind != "describe":
            raise BadEvent(f"{self.parts.closing}: try again shortly", "stopping")

    def _missing(self, what: str) -> BadEvent:
        why = self.parts.missing.get(what, "not available on this device")
        return BadEvent(f"no {what} here: {why}", f"no_{what}")
