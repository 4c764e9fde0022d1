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
import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from .actions.actor import Actor
from .api.app import ApiState, create_app
from .api.server import Server
from .brain import Brain
from .config import Config
from .errors import AssistantError
from .reload import Reloaded, reload_config
from .runtime import STATUS, RuntimeDir
from .status import status_line
from .systemd import Liveness, Notifier

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
        make_engine: Callable[[], Any] | None = None,
        governor: Any = None,
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
        self._gpio: list[Any] = []  # LEDs and button, closed at stop
        self.notifier = notifier or Notifier()
        self.liveness = Liveness()
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
        self._reported_stall = False
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
        self.wyoming: Any = None  # wyoming.server.WyomingServer while it listens
        self._wyoming_parts: Any = None

    def _default_engine(self) -> Any:
        from .llm.engine import Engine

        # the governor's thread and pacing levers act on this engine between tokens
        intensity = self.state.governor.intensity if self.state is not None else None
        engine = Engine.from_config(self.config, intensity=intensity)
        engine.load()
        # the system prompt the voice, Wyoming and the actions' API turns send (with what the
        # actions say) goes into the KV cache before the first request
        engine.warm_system(self.actor.system_prompt(self.config.llm.system_prompt))
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
            self.voice_off = f"no speech output: {exc}"
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
        self.notifier.stopping()
        if self.state is not None:
            self.state.brain.closing = "the service is stopping"
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
        self._set_stall_limits()
        line = self._publish(self.state, send=False)  # `qwen-assistant reload` waits for it
        if self.ready:
            self.notifier.ready(line)

    # -- run -------------------------------------------------------------------------------
    async def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT, stop. Returns the exit status (0)."""
        loop = asyncio.get_running_loop()
        # first of all, before the fan or a socket is touched; AlreadyRunning: exit 75
        self._runtime = RuntimeDir.claim(self._runtime_dir)
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
            self.notifier.ready(self._publish(state, send=False))
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
        self._set_stall_limits()
        self.state = state = ApiState(
            config, brain, governor, liveness=self.liveness, starting=True, actor=self.actor
        )
        state.runtime_dir = str(self._runtime.path) if self._runtime else ""
        state.voice_off = self.voice_off
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

        def turned(_turn: Any) -> None:  # `qwen-assistant status` shows a turn at once
            self._publish(state)

        brain.listeners.append(turned)
        self._loops = [
            asyncio.create_task(self._report(state), name="status"),
            asyncio.create_task(self._watch(state), name="watchdog"),
        ]
        await self._loading(brain.load(self._make_engine))
        inference.beat()
        inference.paused = False
        state.model_id = Path(str(brain.engine.model_path)).stem
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
                self._set_stall_limits()
                self._voice_task = asyncio.create_task(state.voice.run(self.stopping), name="voice")
        if config.wyoming.enabled:
            await self._start_wyoming(state)
        log.info(
            "ready: %s loaded in %.1f s on %s%s",
            state.model_id,
            brain.engine.load_s,
            state.backend,
            "" if state.mouth else " (no speech output)",
        )
        return state

    def _ears(self, state: ApiState) -> Any:
        """The voice loop: microphone (opened now), recognizer, LEDs, button; None (logged)
        when speech-to-text cannot load — the service then serves text only."""
        from .hardware import Indicators, PushButton
        from .speech.audio import SoundDeviceMicrophone, WavMicrophone
        from .speech.stt import Ears, make_recognizer
        from .speech.vad import make_segmenter
        from .voice import Voice, VoiceLoop

        config = self.config
        try:
            recognizer = make_recognizer(config)
        except AssistantError as exc:
            log.error("voice off (the API still serves text): %s", exc)
            self.voice_off = str(exc)
            return None
        mic: Any = (
            WavMicrophone(self.listen_from, rate=recognizer.rate, realtime=True)
            if self.listen_from
            else SoundDeviceMicrophone(config.speech.input_device, rate=recognizer.rate)
        )
        segmenter = make_segmenter(config.speech.vad, config.speech.trailing_silence_s)
        ears = Ears(recognizer, segmenter)
        wake = None
        if config.voice.wake == "word":
            from .speech.wake import make_wake

            vc = config.voice
            try:
                wake = make_wake(vc.wake_engine, vc.wake_word, vc.wake_threshold)
            except AssistantError as exc:
                log.error("voice off (the API still serves text): voice.wake_word: %s", exc)
                self.voice_off = f"voice.wake_word: {exc}"
                return None
        indicators = None
        try:
            indicators = Indicators(config.voice)
        except AssistantError as exc:
            log.warning("status LEDs off: %s", exc)
        if indicators is not None and indicators.leds:
            self._gpio.append(indicators)
        voice = VoiceLoop(
            config,
            mic,
            ears,
            Voice(config, state.turns, state.mouth),
            indicators=indicators,
            wake=wake,
        )
        if config.voice.button_pin:
            try:
                self._gpio.append(PushButton(config.voice.button_pin, voice.press))
            except AssistantError as exc:
                log.warning("push-to-talk button off: %s", exc)
        voice.open_microphone()
        return voice

    async def _start_wyoming(self, state: ApiState) -> None:
        """The Wyoming server on the parts the voice loop has (loading what it lacks); a
        part that cannot load, or a uri that cannot be bound, is logged and the rest of
        the service serves on."""
        from .speech.stt import make_recognizer
        from .speech.tts import PiperTTS
        from .speech.wake import builtin_words
        from .wyoming.agent import Agent
        from .wyoming.handler import Handler
        from .wyoming.info import Parts
        from .wyoming.server import WyomingServer

        loop = asyncio.get_running_loop()
        config = self.config
        parts = self._wyoming_parts = Parts(
            agent=Agent(lambda: self.config, state.turns),
            model_id=state.model_id,
            home_control=bool(config.actions),
            metrics=state.metrics,
            language=config.speech.language,
        )
        if state.voice is not None:
            parts.recognizer = state.voice.ears.recognizer
        else:
            try:
                parts.recognizer = await self._loading(
                    loop.run_in_executor(self._loader, make_recognizer, config)
                )
            except AssistantError as exc:
                log.warning("wyoming: no speech-to-text or wake phrase: %s", exc)
                parts.missing["asr"] = parts.missing["wake"] = str(exc)
        if parts.recognizer is not None:
            parts.stt_model = Path(str(parts.recognizer.path)).name
            parts.wake_phrase = config.voice.wake_phrase.strip()
        parts.wake_words = builtin_words()  # microWakeWord needs no speech-to-text
        if state.mouth is not None:
            parts.tts = state.mouth.tts
        else:
            tts = PiperTTS.from_config(config)
            try:
                await self._loading(loop.run_in_executor(self._loader, tts.load))
                parts.tts = tts
            except AssistantError as exc:
                log.warning("wyoming: no text-to-speech: %s", exc)
                parts.missing["tts"] = str(exc)
        server = WyomingServer(
            config.wyoming, functools.partial(Handler, parts, config.wyoming.max_audio_s)
        )
        try:
            await server.start()
        except AssistantError as exc:
            log.error("wyoming off (the API and voice still serve): %s", exc)
            state.wyoming_off = str(exc)
            return
        self.wyoming = server
        state.wyoming = server
        offered = [k for k in ("asr", "tts", "handle") if k not in parts.missing]
        if parts.wake_words or parts.wake_phrase:
            offered.append("wake " + ", ".join([*parts.wake_words, parts.wake_phrase]).rstrip(", "))
        log.info("wyoming listening on %s (%s)", server.url, ", ".join(offered))

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

    def _set_stall_limits(self) -> None:
        stall = self.config.service.stall_s
        floors = {
            # the governor beats once per tick: never call it stalled within three ticks
            "thermal governor": 3 * self.config.thermal.interval_s,
            # an idle inference thread beats only on the probe queued once per watchdog
            # round: its beat is one round old at the next check, so allow two rounds
            "inference": 2 * self._watch_period(),
        }
        for name, beat in self.liveness.parts.items():
            beat.stall_s = max(stall, floors.get(name, 0.0))

    def _watch_period(self) -> float:
        wd = self.notifier.watchdog_s
        return wd / 2 if wd else self.config.service.status_interval_s

    # -- the loops that keep systemd informed ----------------------------------------------
    def _publish(self, state: ApiState, *, send: bool = True) -> str:
        """Write status.json and (``send``) the STATUS= line; return the line.

        status.json is the same snapshot /status serves, plus the line and when it was
        written: `qwen-assistant status` renders exactly what the API and systemd see.
        """
        snap = state.snapshot()
        line = status_line(snap)
        if send:
            self.notifier.status(line)
        if self._runtime is not None:
            data = snap | {
                "line": line,
                "updated_at": time.time(),
                "interval_s": self.config.service.status_interval_s,
            }
            try:
                self._runtime.write_status(data)
            except OSError as exc:
                log.warning("cannot write %s: %s", self._runtime.path / STATUS, exc)
        return line

    async def _report(self, state: ApiState) -> None:
        while True:
            self._publish(state)
            await asyncio.sleep(self.config.service.status_interval_s)

    async def _watch(self, state: ApiState) -> None:
        """Ping the watchdog at half its period, only while every part makes progress."""
        while True:
            stalled = self.liveness.stalled()
            engine = state.brain.engine
            if engine is not None and engine.failure:  # dead, not slow: no waiting stall_s
                stalled.append(f"inference ({engine.failure})")
            if not stalled:
                self.notifier.watchdog()
                if self._reported_stall:
                    log.warning("watchdog: every part makes progress again")
                    self._reported_stall = False
            elif not self._reported_stall:
                log.error("watchdog: stalled: %s; not pinging systemd", ", ".join(stalled))
                self._reported_stall = True
                self._publish(state)
            state.brain.probe()  # the inference thread beats when it gets to it
            await asyncio.sleep(self._watch_period())

    async def _drain(self, state: ApiState | None) -> None:
        """Stop accepting, let running answers finish within stop_grace_s, cut the rest,
        then let uvicorn send what they said and close."""
        grace = self.config.service.stop_grace_s
        if self.server is not None:  # no new connections; uvicorn waits for the open ones
            self.server.stop(grace)
        if state is not None:
            state.brain.closing = "the service is stopping"
            cut = await state.brain.drain(grace, f"the service is stopping (after {grace:g} s)")
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
        for task in self._loops:
            task.cancel()
        if self._voice_task is not None:
            self.stopping.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._voice_task, 5)
        for part in self._gpio:
            with contextlib.suppress(Exception):
                part.close()
        await self._drain(state)
        if self.wyoming is not None:  # after the drain: running answers were delivered
            await self.wyoming.stop()
        if self._wyoming_parts is not None:
            self._wyoming_parts.close()
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
