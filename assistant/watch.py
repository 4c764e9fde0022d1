"""The loops that keep systemd informed: the status line (and ``status.json``) every
``service.status_interval_s`` and after every turn, and the watchdog's ping at half its
period, sent only while every part in :class:`~assistant.systemd.Liveness` makes progress."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from .events import EventHub, device
from .runtime import STATUS, RuntimeDir
from .status import status_line
from .systemd import Liveness, Notifier

if TYPE_CHECKING:
    from .api.state import ApiState
    from .config import Config

__all__ = ["Watch"]

log = logging.getLogger(__name__)


class Watch:
    def __init__(
        self, notifier: Notifier, liveness: Liveness, config: Callable[[], Config]
    ) -> None:
        self.notifier = notifier
        self.liveness = liveness
        self.config = config  # the live config: a reload changes the intervals
        #: where status.json goes (set once the service claimed its runtime directory)
        self.runtime: RuntimeDir | None = None
        self.reported_stall = False
        #: the event stream: a "device" event with each status (heat, levers, queue, speed)
        self.events: EventHub | None = None

    def set_stall_limits(self) -> None:
        stall = self.config().service.stall_s
        floors = {
            # the governor beats once per tick: never call it stalled within three ticks
            "thermal governor": 3 * self.config().thermal.interval_s,
            # an idle inference thread beats only on the probe queued once per watchdog
            # round: its beat is one round old at the next check, so allow two rounds
            "inference": 2 * self.period(),
        }
        for name, beat in self.liveness.parts.items():
            beat.stall_s = max(stall, floors.get(name, 0.0))

    def period(self) -> float:
        wd = self.notifier.watchdog_s
        return wd / 2 if wd else self.config().service.status_interval_s

    def publish(self, state: ApiState, *, send: bool = True) -> str:
        """Write status.json and (``send``) the STATUS= line; return the line.

        status.json is the same snapshot /status serves, plus the line and when it was
        written: `qwen-assistant status` renders exactly what the API and systemd see.
        """
        snap = state.snapshot()
        line = status_line(snap)
        if self.events is not None:
            self.events.publish("device", **device(snap))
        if send:
            self.notifier.status(line)
        if self.runtime is not None:
            data = snap | {
                "line": line,
                "updated_at": time.time(),
                "interval_s": self.config().service.status_interval_s,
            }
            try:
                self.runtime.write_status(data)
            except OSError as exc:
                log.warning("cannot write %s: %s", self.runtime.path / STATUS, exc)
        return line

    async def report(self, state: ApiState) -> None:
        while True:
            self.publish(state)
            await asyncio.sleep(self.config().service.status_interval_s)

    async def watch(self, state: ApiState) -> None:
        """Ping the watchdog at half its period, only while every part makes progress."""
        while True:
            stalled = self.liveness.stalled()
            engine = state.brain.engine
            if engine is not None and engine.failure:  # dead, not slow: no waiting stall_s
                stalled.append(f"inference ({engine.failure})")
            if not stalled:
                self.notifier.watchdog()
                if self.reported_stall:
                    log.warning("watchdog: every part makes progress again")
                    self.reported_stall = False
            elif not self.reported_stall:
                log.error("watchdog: stalled: %s; not pinging systemd", ", ".join(stalled))
                self.reported_stall = True
                self.publish(state)
            state.brain.probe()  # the inference thread beats when it gets to it
            await asyncio.sleep(self.period())
