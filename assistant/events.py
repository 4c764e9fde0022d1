"""One event stream for the screen and for robots: every turn of every door, the voice's
state and the device's heat, fanned out to whoever listens (``GET /v1/events``, the kiosk
page).

:class:`EventHub` takes events from any thread and hands each subscriber a bounded queue of
its own: a reader that falls :data:`BACKLOG` events behind is dropped (its stream ends, the
page reconnects and gets a fresh snapshot), so a stalled browser never holds up a turn.
Events are plain JSON-able dicts with a ``type`` and an increasing ``id``. What goes in is
chosen here, field by field: the words of a turn, its door and figures, the action's name,
outcome and what was said — never an API key, a token file or an action's headers.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from .llm.grammar import JsonPiece
from .turn import Admitted, Cut, Done, Outcome, Piece, Refused, Started, TurnEvent

__all__ = ["BACKLOG", "HISTORY", "EventHub", "Subscription", "device", "turn_event"]

#: events a subscriber may fall behind before it is dropped
BACKLOG = 512
#: finished turns the snapshot on connect carries (the page's history)
HISTORY = 8
#: what a "device" event carries of the status snapshot
DEVICE_KEYS = ("state", "problem", "voice", "thermal", "admission", "last")


class Subscription:
    """One reader's queue; iterate it for events. ``dropped`` once it fell too far behind."""

    def __init__(self, hub: EventHub, loop: asyncio.AbstractEventLoop, backlog: int) -> None:
        self._hub = hub
        self._loop = loop
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(backlog)
        self.dropped = False

    def offer(self, event: dict[str, Any]) -> None:  # on the subscriber's loop
        if self.dropped:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:  # too slow: end its stream instead of holding anyone up
            self.end()

    async def get(self) -> dict[str, Any] | None:
        """The next event; None once dropped (after the events it already had)."""
        return await self._queue.get()

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        while (event := await self.get()) is not None:
            yield event

    def end(self) -> None:  # on the subscriber's loop
        """No more events: the stream ends after what it already has."""
        if self.dropped:
            return
        self.dropped = True
        self._hub.unsubscribe(self)
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    def close(self) -> None:
        self._hub.unsubscribe(self)


class EventHub:
    """Publish from any thread; subscribe from an event loop."""

    def __init__(self, *, backlog: int = BACKLOG, clock: Callable[[], float] = time.time) -> None:
        self.backlog = backlog
        self.clock = clock
        self._lock = threading.Lock()
        self._subscribers: list[Subscription] = []
        self._ids = itertools.count(1)
        #: the turns in progress and the last finished ones (for a snapshot on connect)
        self._live: dict[int, dict[str, Any]] = {}
        self.history: deque[dict[str, Any]] = deque(maxlen=HISTORY)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def subscribe(self) -> Subscription:
        sub = Subscription(self, asyncio.get_running_loop(), self.backlog)
        with self._lock:
            self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    def close(self) -> None:
        """The service stops: every stream ends."""
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            try:
                sub._loop.call_soon_threadsafe(sub.end)
            except RuntimeError:
                self.unsubscribe(sub)

    def publish(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Send ``{"type": kind, "id": …, "at": …, **fields}`` to every subscriber."""
        with self._lock:
            event = {"type": kind, "id": next(self._ids), "at": round(self.clock(), 3), **fields}
            self._remember(event)
            subscribers = list(self._subscribers)
        for sub in subscribers:
            try:
                sub._loop.call_soon_threadsafe(sub.offer, event)
            except RuntimeError:  # its loop is closed: it is gone
                self.unsubscribe(sub)
        return event

    def recent(self) -> list[dict[str, Any]]:
        """The last finished turns and those in progress, oldest first."""
        with self._lock:
            return [*self.history, *self._live.values()]

    def _remember(self, event: dict[str, Any]) -> None:  # under the lock
        turn = event.get("turn")
        if turn is None:
            return
        kind = event["type"]
        if kind == "turn":
            self._live[turn] = {"turn": turn, "door": event["door"], "text": event["text"],
                                "answer": "", "state": "waiting"}  # fmt: skip
            return
        live = self._live.get(turn)
        if live is None:
            return
        if kind == "piece":
            live["answer"] += event["text"]
            live["state"] = "answering"
        elif kind == "outcome":
            said = event["said"]
            live["answer"] = f"{live['answer'].strip()} {said}".strip()
        elif kind in ("done", "refused", "cut"):
            del self._live[turn]
            if kind == "done":
                live.update(answer=event["text"], state=event["outcome"])
                self.history.append(live)
            else:
                live.update(state=kind)
                self.history.append(live)

    # -- the house's sources ------------------------------------------------------------
    def turn(self, event: TurnEvent) -> None:
        """A :class:`~assistant.turn.Turns` listener: every door's turn events."""
        fields = turn_event(event)
        if fields is not None:
            self.publish(**fields)


def device(snapshot: dict[str, Any]) -> dict[str, Any]:
    """A "device" event's fields from the status snapshot: the state, the heat and the
    governor's levers, the queue and the last answer's speed (nothing about files, keys or
    configuration)."""
    return {
        key: snapshot[key] for key in ("state", "problem", "voice", "thermal", "admission", "last")
    }


def _done(e: Done) -> dict[str, Any]:
    r = e.record
    return {"kind": "done", "text": e.text, "outcome": r.outcome, "tokens": r.completion_tokens,
            "first_token_s": round(r.first_token_s, 3), "tok_s": round(r.decode_tok_s, 2),
            "total_s": round(r.total_s, 3), "first_audio_s": r.first_audio_s}  # fmt: skip


def _outcome(e: Outcome) -> dict[str, Any]:
    d = e.decision
    return {"kind": "outcome", "action": d.action, "outcome": d.outcome, "said": d.said}


#: each turn event's fields in the stream
_FIELDS: dict[type[Any], Callable[[Any], dict[str, Any] | None]] = {
    Started: lambda e: {"kind": "turn", "text": e.text},
    Admitted: lambda e: {"kind": "admitted", "waited_s": round(e.waited_s, 3)},
    # a tool call's or a schema answer's JSON is not shown
    Piece: lambda e: None if isinstance(e.text, JsonPiece) else {"kind": "piece", "text": e.text},
    Outcome: _outcome,
    Refused: lambda e: {"kind": "refused", "reason": e.reason, "retry_after": e.retry_after},
    Cut: lambda e: {"kind": "cut", "reason": e.reason},
    Done: _done,
}


def turn_event(event: TurnEvent) -> dict[str, Any] | None:
    """The stream's form of a turn event (None: not shown, e.g. a tool call's JSON)."""
    make = _FIELDS.get(type(event))
    fields = make(event) if make is not None else None
    if fields is None:
        return None
    return {"kind": fields.pop("kind"), "turn": event.turn, "door": event.door, **fields}
