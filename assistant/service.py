"""``qwen-assistant run``: the long-running service.

Start order: thermal governor (it owns the fan) → HTTP API listening (``/health`` says
503 while loading) → model (and piper voice) loaded on the inference thread → serving.
SIGHUP re-reads the config (validate, then swap; a bad edit keeps the old settings).
SIGTERM or SIGINT stops in reverse order: the API stops accepting, generation is
cancelled after the token in progress, the fan goes to its safe state. A second signal
exits at once.

Not here yet: the voice loop (issue 3) and systemd's notify protocol (issue 5).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .api.app import ApiState, create_app
from .api.server import Server
from .brain import Brain
from .config import Config
from .errors import AssistantError
from .reload import pidfile, reload_config

__all__ = ["Service"]

log = logging.getLogger(__name__)


class Service:
    def __init__(
        self,
        config: Config,
        *,
        make_engine: Callable[[], Any] | None = None,
        governor: Any = None,
        speak_to: str | None = None,
    ) -> None:
        self.config = config
        self._make_engine = make_engine or self._default_engine
        self._governor = governor
        self.speak_to = speak_to
        self.stopping = asyncio.Event()
        self._signals = 0
        self.state: ApiState | None = None
        self.server: Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self._ticks = threading.Event()  # set: the governor thread ends
        self._ticker: threading.Thread | None = None
        self._pidfile: Path | None = None

    def _default_engine(self) -> Any:
        from .llm.engine import Engine

        engine = Engine.from_config(self.config)
        engine.load()
        engine.new_chat()  # the system prompt goes into the KV cache before the first request
        return engine

    def _mouth(self) -> Any:
        """piper + the speaker, or None (logged) when the device cannot speak."""
        if not self.config.voice.enabled and not self.speak_to:
            return None
        from .speech.audio import SoundDeviceSpeaker, WavSpeaker
        from .speech.mouth import Mouth
        from .speech.tts import PiperTTS

        try:
            tts = PiperTTS.from_config(self.config)
            tts.load()
        except AssistantError as exc:
            log.warning("speech output off: %s", exc)
            return None
        speaker: Any = (
            WavSpeaker(self.speak_to)
            if self.speak_to
            else SoundDeviceSpeaker(self.config.speech.output_device)
        )
        return Mouth(tts, speaker)

    # -- signals ---------------------------------------------------------------------------
    def stop(self) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second stop signal: exiting now")
            os._exit(0)
        log.info("stopping")
        self.stopping.set()

    def reload(self) -> None:
        if self.state is None:
            return
        self.config = reload_config(self.config, self.state.governor)
        self.state.config = self.config

    # -- run -------------------------------------------------------------------------------
    async def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT, stop. Returns the exit status (0)."""
        loop = asyncio.get_running_loop()
        for sig, handler in (
            (signal.SIGTERM, self.stop),
            (signal.SIGINT, self.stop),
            (signal.SIGHUP, self.reload),
        ):
            loop.add_signal_handler(sig, handler)
        try:
            await self._start()
            waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(self.stopping.wait())}
            if self._serving is not None:
                waits.add(self._serving)
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if self._serving is not None and self._serving.done() and not self.stopping.is_set():
                self._serving.result()  # the server died: raise what killed it
            return 0
        finally:
            await self._shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def _start(self) -> None:
        from .thermal.governor import Governor

        loop = asyncio.get_running_loop()
        config = self.config
        governor = self._governor or Governor.from_config(config, drive_fan=True)
        governor.tick()
        self._ticker = threading.Thread(
            target=governor.run, args=(self._ticks,), name="governor", daemon=True
        )
        self._ticker.start()
        brain = Brain(governor.admission)
        self.state = state = ApiState(config, brain, governor)
        if config.api.enabled:
            self.server = Server(create_app(state), config.api)
            self.server.bind()
            self._serving = asyncio.create_task(self.server.serve(), name="api")
            log.info("API listening on %s (loading the model)", self.server.url)
        self._pidfile = _write_pidfile()
        await brain.load(self._make_engine)
        state.model_id = Path(str(brain.engine.model_path)).stem
        state.mouth = await loop.run_in_executor(None, self._mouth)
        log.info(
            "ready: %s loaded in %.1f s%s",
            state.model_id,
            brain.engine.load_s,
            "" if state.mouth else " (no speech output)",
        )

    async def _shutdown(self) -> None:
        """Reverse order: cancel generation, stop the API, close the model, fan to safe."""
        loop = asyncio.get_running_loop()
        state = self.state
        if state is not None:
            state.brain.cancel_all()  # stops after the token in progress
        if self.server is not None:
            self.server.stop()
            if self._serving is not None:
                with contextlib.suppress(Exception):
                    await self._serving
            self.server.close()
        if state is not None:
            await loop.run_in_executor(None, state.brain.close)
            if state.mouth is not None:
                state.mouth.close()
            self._ticks.set()
            state.governor.close()
        if self._pidfile is not None:
            with contextlib.suppress(OSError):
                self._pidfile.unlink()
        log.info("stopped")


def _write_pidfile() -> Path | None:
    path = pidfile()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{os.getpid()}\n")
    except OSError as exc:
        log.warning("no pidfile (%s); `qwen-assistant reload` needs --pid %d", exc, os.getpid())
        return None
    return path
