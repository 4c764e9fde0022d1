"""The house for one command: governor (with its levers), Brain, Actor and turn runner.

``ask``, ``chat``, ``listen``, ``bench voice`` and ``bench api`` build their house here,
the same way the service builds its own, so a question takes the same path whichever
command asks it: the governor's admission and thread/pacing levers in front of the engine,
the Brain's batching engine, the turn (:mod:`assistant.turn`) with the configured actions.
A command beside the service never drives the fan or the clock cap (``drive_fan=False``).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING

from .actions.actor import Actor
from .brain import Brain
from .config import Config
from .thermal.governor import Governor
from .turn import Turns

if TYPE_CHECKING:
    from .llm.engine import Engine

__all__ = ["Parts", "unpaced"]


def unpaced(config: Config) -> Config:
    """``config`` without the thermal rate limit between requests: a bench or a rig runs
    its turns back to back (the heat checks and levers still act)."""
    thermal = dataclasses.replace(config.thermal, rate_per_min=600.0, burst=100, queue_size=100)
    return dataclasses.replace(config, thermal=thermal)


class Parts:
    """Built in order, closed in reverse (a context manager); :meth:`load` loads the model."""

    def __init__(
        self,
        config: Config,
        *,
        model: str | None = None,
        drive_fan: bool = False,
        actor: Actor | None = None,
    ) -> None:
        self.config = config
        self.model = model
        self.governor = Governor.from_config(config, drive_fan=drive_fan)
        self.governor.tick()
        self.brain = Brain(self.governor.admission)
        self.actor = actor if actor is not None else Actor(config.actions)
        self.turns = Turns(self.brain, self.actor, lambda: self.config)
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def check_open(self) -> None:
        """Raise :class:`~assistant.thermal.admission.Busy` now if it is too hot to answer
        (before the model loads for nothing)."""
        self.governor.admission.check_open()

    def make_engine(self) -> Engine:
        """The engine, loaded, the governor's levers on it, the actions' system prompt in
        its KV cache (the prompt every turn starts with)."""
        from .llm.engine import Engine

        engine = Engine.from_config(self.config, self.model, intensity=self.governor.intensity)
        engine.load()
        engine.warm_system(self.actor.system_prompt(self.config.llm.system_prompt))
        return engine

    async def load(self, make_engine: Callable[[], Engine] | None = None) -> None:
        """Load the model on the Brain's inference thread; the governor starts ticking."""
        await self.brain.load(make_engine or self.make_engine)
        if self._ticker is None:
            self._ticker = threading.Thread(
                target=self.governor.run, args=(self._stop,), name="governor", daemon=True
            )
            self._ticker.start()

    def close(self) -> None:
        self._stop.set()
        self.brain.close()

    def __enter__(self) -> Parts:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
