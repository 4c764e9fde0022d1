"""What the HTTP app reads on each request: the live config and the house's parts."""

from __future__ import annotations

import os
import time
from dataclasses import InitVar, dataclass, field
from typing import Any, Protocol

from ..actions.actor import Actor
from ..brain import Brain
from ..config import Config
from ..events import EventHub
from ..speech.mouth import Mouth
from ..status import snapshot
from ..systemd import Liveness
from ..thermal.governor import Governor
from ..turn import Turns
from ..voiceloop import VoiceLoop
from . import metrics as prom

__all__ = ["ApiState", "Listening"]


class Listening(Protocol):
    """A server the status names: where it listens and how many are connected."""

    @property
    def url(self) -> str: ...

    @property
    def connections(self) -> int: ...


@dataclass
class ApiState:
    """What the app reads on each request. ``config`` is swapped whole on reload."""

    config: Config
    brain: Brain
    governor: Governor
    model_id: str = "qwen-assistant"
    mouth: Mouth | None = None  # when the device can speak
    metrics: prom.Metrics = field(default_factory=prom.Metrics)
    #: every turn, the voice's state and the heat, for /v1/events and the kiosk page
    events: EventHub = field(default_factory=EventHub)
    started: float = field(default_factory=time.time)
    liveness: Liveness | None = None  # the parts the watchdog waits on
    starting: bool = False  # the service sets it while it loads (False: ready once loaded)
    voice: VoiceLoop | None = None  # when the device listens
    voice_off: str = ""  # why there is no voice loop ("" while there is one)
    model_sha256: str = ""
    backend: str = ""  # "CPU (AMD EPYC)", "Vulkan: Vulkan0 …, 99 layers offloaded"
    runtime_dir: str = ""
    api_url: str = ""
    #: the last reload's outcome (reload.Reloaded.as_dict), None before the first
    reload: dict[str, Any] | None = None
    wyoming: Listening | None = None  # the Wyoming server while it listens
    wyoming_off: str = ""  # why it does not ("" while it does, or when not enabled)
    #: the device's [[actions]] (offered to API clients only with api.allow_actions)
    actor: InitVar[Actor | None] = None
    #: the house's turn runner to share (the service's, with voice and Wyoming); None:
    #: one of the API's own, with ``actor``. Either way ``metrics`` counts its turns.
    runner: InitVar[Turns | None] = None
    turns: Turns = field(init=False)

    def __post_init__(self, actor: Actor | None, runner: Turns | None) -> None:
        if runner is None:
            runner = Turns(self.brain, actor or Actor(), lambda: self.config)
        self.turns = runner
        runner.listeners.append(self.metrics.turn)
        runner.listeners.append(self.events.turn)

    def snapshot(self) -> dict[str, Any]:
        """The one status: /status serves it, status.json and the STATUS= line render it."""
        speaking = bool(self.mouth and self.mouth.speaking)
        stalled = self.liveness.stalled() if self.liveness is not None else []
        return snapshot(
            self.brain,
            self.governor,
            model=self.model_id,
            speaking=speaking,
            stalled=stalled,
            starting=self.starting,
            voice=self.voice,
            voice_off=self.voice_off,
            reload=self.reload,
        ) | {
            "pid": os.getpid(),
            "started_at": self.started,
            "config": str(self.config.source or ""),
            "model_sha256": self.model_sha256,
            "backend": self.backend,
            "runtime_dir": self.runtime_dir,
            "api": self.api_url,
            "wyoming": self._wyoming(),
        }

    def _wyoming(self) -> dict[str, Any]:
        server = self.wyoming
        if server is None:
            why = self.wyoming_off or (
                "wyoming.enabled = false" if not self.config.wyoming.enabled else "starting"
            )
            return {"url": "", "off": why, "connections": 0}
        return {"url": server.url, "off": "", "connections": server.connections}
