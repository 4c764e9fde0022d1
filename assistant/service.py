"""``qwen-assistant run``: the long-running service, and systemd's view of it.

Start order: thermal governor (it owns the fan) → HTTP API listening (``/health`` says
503 while loading) → model (and piper voice) loaded on the inference thread, with
``EXTEND_TIMEOUT_USEC`` sent while it loads → ``READY=1`` → serving. A ``STATUS=`` line
goes to systemd (and ``status.json`` to the runtime directory, for ``qwen-assistant
status``) every ``service.status_interval_s``. ``WATCHDOG=1`` is sent at half of
``WatchdogSec`` and only while every part in :class:`~assistant.systemd.Liveness` (the
governor's loop, the inference thread) makes progress.

SIGHUP: ``RELOADING=1``, re-read the config (validate, then swap; a bad edit keeps the
old settings, and the status keeps saying so until a good reload), ``READY=1``; each
reload's outcome is numbered in status.json for ``qwen-assistant reload``. SIGTERM or
SIGINT: ``STOPPING=1``, nothing new is admitted, the API stops accepting, running answers
get ``service.stop_grace_s`` to finish, the rest are cut (a streaming client gets an error
event, never a fake ``finish_reason``), every turn is logged, the fan goes to its safe
state. A stop while the model loads abandons the load at once. A second signal exits at
once.

One service per runtime directory: :meth:`RuntimeDir.claim` locks the pidfile first, before
anything touches the fan or a socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .actions.actor import Actor
from .api.app import ApiState, create_app
from .api.server import Server
from .brain import Brain, TurnRecord
from .config import Config
from .parts import build_mouth, build_voice
from .reload import Reloaded, reload_config
from .runtime import RuntimeDir
from .systemd import Heartbeat, Liveness, Notifier
from .watch import Watch
from .wyoming.start import start_wyoming

if TYPE_CHECKING:
    from .hardware import Indicators, PushButton
    from .llm.engine import Engine
    from .llm.ports import TextEngine
    from .speech.mouth import Mouth
    from .thermal.governor import Governor
    from .voiceloop import VoiceLoop
    from .wyoming import info
    from .wyoming.server import WyomingServer

__all__ = ["Service"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Each ``EXTEND_TIMEOUT_USEC`` while loading asks systemd for this much more time.
LOAD_EXTEND_S = 30.0


class Service:
    def __init__(
        self,
        config: Config,
        *,
        make_engine: Callable[[], TextEngine] | None = None,
        governor: Governor | None = None,
        speak_to: str | None = None,
        listen_from: str | None = None,
        notifier: Notifier | None = None,
        runtime_dir: str | None = None,
    ) -> None:
        self.config = config
        self._make_engine = make_engine or self._default_engine
        self._governor = governor
        self.speak_to = speak_to
        self.listen_from = listen_from
        self._voice_task: asyncio.Task[None] | None = None
        self._gpio: list[Indicators | PushButton] = []  # LEDs and button, closed at stop
        self.notifier = notifier or Notifier()
        self.liveness = Liveness()
        #: the loops that keep systemd informed (status line, watchdog)
        self.watch = Watch(self.notifier, self.liveness, lambda: self.config)
        self.stopping = asyncio.Event()
        self.ready = False
        self.serving = asyncio.Event()  # set once READY=1 went out
        self._signals = 0
        self.state: ApiState | None = None
        self.server: Server | None = None
        self._serving: asyncio.Task[None] | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._ticks = threading.Event()  # set: the governor thread ends
        self._ticker: threading.Thread | None = None
        self._runtime_dir = runtime_dir
        self._runtime: RuntimeDir | None = None
        #: set when a stop came while a model was still loading on a thread that cannot
        #: be interrupted: ``cmd_run`` exits without waiting for it
        self.abandoned = False
        self._loading_now: asyncio.Future[Any] | None = None
        #: piper and the recognizer load here, not in asyncio's default executor, whose
        #: threads asyncio.run would wait for after a stop
        self._loader = ThreadPoolExecutor(1, thread_name_prefix="loader")
        self.reloads = 0  # generation of the last reload (status.json: reload.generation)
        self.last_reload: Reloaded | None = None
        #: why the voice loop is not running ("" while it runs)
        self.voice_off = "voice.enabled = false" if not config.voice.enabled else ""
        #: the [[actions]] every front end offers (updated on reload)
        self.actor = Actor(config.actions)
        self.wyoming: WyomingServer | None = None  # while it listens
        self._wyoming_parts: info.Parts | None = None

    def _default_engine(self) -> Engine:
        from .llm.engine import Engine

        # the governor's thread and pacing levers act on this engine between tokens
        intensity = self.state.governor.intensity if self.state is not None else None
        engine = Engine.from_config(self.config, intensity=intensity)
        engine.load()
        # the system prompt the voice, Wyoming and the actions' API turns send (with what the
        # actions say) goes into the KV cache before the first request
        engine.warm_system(self.actor.system_prompt(self.config.llm.system_prompt))
        return engine

    def _mouth(self) -> Mouth | None:
        """piper + the speaker, or None (logged) when the device cannot speak."""
        if not self.config.voice.enabled and not self.speak_to:
            return None
        mouth, why = build_mouth(self.config, self.speak_to)
        if why:
            self.voice_off = why
        return mouth

    # -- signals ---------------------------------------------------------------------------
    def stop(self) -> None:
        self._signals += 1
        if self._signals > 1:
            log.warning("second stop signal: exiting now")
            os._exit(0)
        log.info("stopping")
        self.notifier.stopping()
        if self.state is not None:
            self.state.brain.closing = "the service is stopping"
            # `qwen-assistant status` says "stopping" (not "ready", not "not running") until
            # the process is gone: the status loop goes on through the drain
            self.watch.publish(self.state, send=False)
        if self.wyoming is not None:  # no new connection during the drain
            self.wyoming.close()
        if self._wyoming_parts is not None:  # each event and synthesis ends with an error
            self._wyoming_parts.closing = "the service is stopping"
        self.stopping.set()

    def reload(self) -> None:
        if self.state is None or self.stopping.is_set():
            return  # a reload while stopping would tell systemd READY=1 again
        if self.ready:
            self.notifier.reloading()
        outcome = reload_config(self.config, self.state.governor)
        self.reloads += 1
        self.last_reload = outcome
        self.config = self.state.config = outcome.config
        self.actor.update(outcome.config.actions)
        if self._wyoming_parts is not None:  # describe tells Home Assistant at once
            self._wyoming_parts.home_control = bool(outcome.config.actions)
        self.state.reload = outcome.as_dict(self.reloads)
        self.watch.set_stall_limits()
        line = self.watch.publish(self.state, send=False)  # `qwen-assistant reload` waits for it
        if self.ready:
            self.notifier.ready(line)

    # -- run -------------------------------------------------------------------------------
    async def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT, stop. Returns the exit status (0)."""
        loop = asyncio.get_running_loop()
        # first of all, before the fan or a socket is touched; AlreadyRunning: exit 75
        self._runtime = RuntimeDir.claim(self._runtime_dir)
        self.watch.runtime = self._runtime
        for sig, handler in (
            (signal.SIGTERM, self.stop),
            (signal.SIGINT, self.stop),
            (signal.SIGHUP, self.reload),
        ):
            loop.add_signal_handler(sig, handler)
        try:
            starting = asyncio.ensure_future(self._start())
            stop = asyncio.ensure_future(self.stopping.wait())
            await asyncio.wait({starting, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not starting.done():  # stopped while loading: abandon the load
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await starting
                self.abandoned = self._loading_now is not None
                log.info("stopped while loading%s", " (load abandoned)" if self.abandoned else "")
                return 0
            state = starting.result()
            state.starting = False
            self.ready = True
            self.notifier.ready(self.watch.publish(state, send=False))
            self.serving.set()
            waits: set[asyncio.Future[Any]] = {asyncio.ensure_future(self.stopping.wait())}
            if self._serving is not None:
                waits.add(self._serving)
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            if self._serving is not None and self._serving.done() and not self.stopping.is_set():
                self._serving.result()  # the server died: raise what killed it
            return 0
        finally:
            if not self.stopping.is_set():
                self.notifier.stopping()  # a failed start stops too
            await self._shutdown()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)

    async def _start(self) -> ApiState:
        from .thermal.governor import Governor

        loop = asyncio.get_running_loop()
        config = self.config
        governor = self._governor or Governor.from_config(config, drive_fan=True)
        ticked = self.liveness.register("thermal governor", config.service.stall_s)
        self._ticker = threading.Thread(
            target=governor.run, args=(self._ticks, ticked.beat), name="governor", daemon=True
        )
        self._ticker.start()
        brain = Brain(governor.admission)
        if self.stopping.is_set():
            brain.closing = "the service is stopping"
        inference = self.liveness.register("inference", config.service.stall_s)
        inference.paused = True  # loading the model is bounded by TimeoutStartSec instead
        brain.heartbeat = inference.beat
        self.watch.set_stall_limits()
        self.state = state = ApiState(
            config, brain, governor, liveness=self.liveness, starting=True, actor=self.actor
        )
        state.runtime_dir = str(self._runtime.path) if self._runtime else ""
        state.voice_off = self.voice_off
        self.watch.events = state.events
        if config.api.enabled:
            self.server = Server(
                create_app(state),
                config.api,
                grace_s=config.service.stop_grace_s,
                live=lambda: state.config.api,
            )
            self.server.bind()
            state.api_url = self.server.url
            self._serving = asyncio.create_task(self.server.serve(), name="api")
            log.info("API listening on %s (loading the model)", self.server.url)

        def turned(_turn: TurnRecord) -> None:  # `qwen-assistant status` shows a turn at once
            self.watch.publish(state)

        brain.listeners.append(turned)
        self._loops = [
            asyncio.create_task(self.watch.report(state), name="status"),
            asyncio.create_task(self.watch.watch(state), name="watchdog"),
        ]
        await self._loading(brain.load(self._make_engine))
        inference.beat()
        inference.paused = False
        state.model_id = Path(str(brain.loaded.model_path)).stem
        state.model_sha256 = getattr(brain.engine, "sha256", "")
        backend = getattr(brain.engine, "backend", None)
        state.backend = backend.describe() if backend is not None else ""
        state.mouth = await self._loading(loop.run_in_executor(self._loader, self._mouth))
        if state.mouth is not None and (self.config.voice.enabled or self.listen_from):
            state.voice = await self._loading(loop.run_in_executor(self._loader, self._ears, state))
            state.voice_off = self.voice_off
            if state.voice is not None:
                heard = self.liveness.register("voice loop", config.service.stall_s)
                state.voice.heartbeat = heard.beat
                state.voice.on_event = state.events.publish
                self.watch.set_stall_limits()
                self._voice_task = asyncio.create_task(state.voice.run(self.stopping), name="voice")
                self._voice_task.add_done_callback(lambda t: self._voice_ended(t, heard))
        if config.wyoming.enabled:
            await self._start_wyoming(state)
        log.info(
            "ready: %s loaded in %.1f s on %s%s",
            state.model_id,
            brain.loaded.load_s,
            state.backend,
            "" if state.mouth else " (no speech output)",
        )
        return state

    def _voice_ended(self, task: asyncio.Task[None], heard: Heartbeat) -> None:
        """The voice loop ended before the service: its input file (``--listen-from``) ran
        out, and its heartbeat is no longer awaited (it is not stalled); the rest serves on.
        A loop that failed keeps it: the watchdog sees it stalled."""
        if self.stopping.is_set() or task.cancelled():
            return
        if (exc := task.exception()) is not None:
            log.error("voice: the voice loop failed: %r", exc)
            return
        heard.paused = True
        log.info("voice: %s ended; the voice loop stopped, the API serves on", self.listen_from)

    def _ears(self, state: ApiState) -> VoiceLoop | None:
        """The voice loop, or None (logged) when it cannot run: the service serves text."""
        if state.mouth is None:
            return None
        voice, why = build_voice(
            self.config,
            state.turns,
            state.mouth,
            self.listen_from,
            self._gpio,
            spare=state.governor.spare,
        )
        if why:
            self.voice_off = why
        return voice

    async def _start_wyoming(self, state: ApiState) -> None:
        """The Wyoming server on the parts the voice loop has (loading what it lacks); a
        part that cannot load, or a uri that cannot be bound, is logged and the rest of
        the service serves on."""
        loop = asyncio.get_running_loop()

        async def load(fn: Callable[[], T]) -> T:
            return await self._loading(loop.run_in_executor(self._loader, fn))

        self._wyoming_parts, server = await start_wyoming(lambda: self.config, state, load)
        self.wyoming = state.wyoming = server

    async def _loading(self, work: Awaitable[T]) -> T:
        """Await ``work``, asking systemd for more start-up time while it runs.

        A stop cancels this wait, not the work: ``_loading_now`` then names what was left
        running (see :attr:`abandoned`).
        """
        task = asyncio.ensure_future(work)
        self._loading_now = task
        while not task.done():
            self.notifier.extend_timeout(LOAD_EXTEND_S)
            await asyncio.wait({task}, timeout=LOAD_EXTEND_S / 3)
        self._loading_now = None
        return task.result()

    async def _drain(self, state: ApiState | None) -> None:
        """Stop accepting, let running answers finish within stop_grace_s, cut the rest,
        then let uvicorn send what they said and close."""
        grace = self.config.service.stop_grace_s
        if self.server is not None:  # no new connections; uvicorn waits for the open ones
            self.server.stop(grace)
        if state is not None:
            state.brain.closing = "the service is stopping"
            cut = await state.brain.drain(grace, f"the service is stopping (after {grace:g} s)")
            state.events.close()  # the event streams end (after the cuts they told)
            if cut:
                log.warning("cut %d answer(s) still running after %g s", cut, grace)
        if self.server is not None:
            if self._serving is not None:
                with contextlib.suppress(Exception):
                    await self._serving
            self.server.close()

    async def _shutdown(self) -> None:
        """Reverse order: stop admitting and accepting, let running answers finish within
        service.stop_grace_s, cut the rest, stop the API, close the model, fan to safe."""
        loop = asyncio.get_running_loop()
        state = self.state
        if self._voice_task is not None:
            self.stopping.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._voice_task, 5)
        for part in self._gpio:
            with contextlib.suppress(Exception):
                part.close()
        await self._drain(state)
        if self.wyoming is not None:  # after the drain: running answers were delivered,
            await self.wyoming.stop()  # syntheses still running end with an error event
        if self._wyoming_parts is not None:
            self._wyoming_parts.close()
        for task in self._loops:  # the status said "stopping" through the drain
            task.cancel()
        if state is not None:
            if self.abandoned:
                state.brain.close(wait=False)
            else:
                await loop.run_in_executor(None, state.brain.close)
            if state.mouth is not None:
                state.mouth.close()
            self._ticks.set()
            state.governor.close()
        self._loader.shutdown(wait=not self.abandoned, cancel_futures=True)
        if self._runtime is not None:
            self._runtime.release()
        log.info("stopped")
