"""The daemon's listening loop: microphone → wake → question → :class:`~assistant.voice.Voice`.

Wake phrase, word, button or always-on; the follow-up window; idle reset; half-duplex or
barge-in; the microphone's loss and return; and, with ``voice.answer_ahead``, answers
prepared at a pause (:class:`~assistant.ahead.Ahead`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

from .ahead import Ahead
from .config import Config
from .hardware import ShowsState
from .speech.audio import MicLost, Microphone
from .speech.ears import Ears, Guess, Heard
from .speech.wake import WakeDetector, is_stop, match_wake
from .voice import TurnResult, Voice

__all__ = ["VoiceLoop", "match_wake"]

log = logging.getLogger(__name__)

TAIL_S = 0.3  # half-duplex: the microphone stays deaf this long after the voice stops


class VoiceLoop:
    """Microphone → wake → question → :class:`Voice`, until ``stop`` is set."""

    def __init__(
        self,
        config: Config,
        mic: Microphone,
        ears: Ears,
        voice: Voice,
        *,
        indicators: ShowsState | None = None,
        clock: Callable[[], float] = time.monotonic,
        heartbeat: Callable[[], None] = lambda: None,
        backoff_s: float = 1.0,
        backoff_max_s: float = 30.0,
        wake: WakeDetector | None = None,
        ahead: Ahead | None = None,
    ) -> None:
        self.config = config
        #: voice.wake = "word": the wake-word detector (speech.wake.MicroWake's face:
        #: ``feed(pcm) -> seconds | None``, ``name``); the recognizer waits for it
        self.wake, self.mic, self.ears, self.voice = wake, mic, ears, voice
        self.indicators, self.clock, self.heartbeat = indicators, clock, heartbeat
        #: answers prepared at a pause (voice.answer_ahead); None: each after the endpoint
        self.ahead = ahead
        self.backoff_s, self.backoff_max_s = backoff_s, backoff_max_s
        self.state, self.problem = "starting", ""
        #: told each state change and wake ("voice", state=…, problem=…; "wake", word=…),
        #: from the event loop (the service's event stream)
        self.on_event: Callable[..., object] | None = None
        #: told each answer's figures (bench voice)
        self.on_answer: Callable[[TurnResult], None] | None = None
        self.armed_until = 0.0  # a question needs no wake phrase until then
        self._deaf_until = 0.0
        self._barged = False  # a barge-in stopped the answer: its question is being heard
        self._stop_heard_until = 0.0  # till then, "stop" after a barge-in is no question
        self._answering: asyncio.Task[TurnResult | None] | None = None
        self._frames: asyncio.Queue[bytes] = asyncio.Queue(maxsize=100)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()

    # -- state -----------------------------------------------------------------------------
    def _set(self, state: str, problem: str = "") -> None:
        self.problem = problem
        if state == self.state:
            return
        log.info("voice: %s%s", state, f" ({problem})" if problem else "")
        self.state = state
        if self.indicators is not None:
            self.indicators.show(state)
        if self.on_event is not None:
            self.on_event("voice", state=state, problem=problem)

    @property
    def speaking(self) -> bool:
        return self._answering is not None and not self._answering.done()

    def press(self) -> None:
        """The push-to-talk button (from any thread): listen now, or barge in."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._pressed)

    def _pressed(self) -> None:
        if self.speaking and self.config.voice.barge_in:
            self._barge_in("button")
        self.armed_until = self.clock() + self.config.voice.follow_up_s

    def _barge_in(self, why: str) -> None:
        """Stop the answer and listen at once: what follows is the next question."""
        log.info("voice: barge-in (%s)", why)
        self._barged = True
        self._stop_heard_until = self.clock() + self.config.voice.follow_up_s
        self.ears.reset()
        self.voice.interrupt()

    def open_microphone(self) -> None:
        """Open the microphone now (the service does, before READY=1); a missing one is
        reported as "mic lost" and the reader keeps trying."""
        try:
            self.mic.open()
            self._set("listening")
        except MicLost as exc:
            self._set("mic lost", str(exc))
            self.mic.close()

    # -- the microphone thread ----------------------------------------------------------------
    def _read(self, loop: asyncio.AbstractEventLoop) -> None:
        """Frames into the event loop; on loss, reopen by name with backoff."""
        delay = self.backoff_s
        while not self._stop.is_set():
            try:
                pcm = self.mic.read(timeout=1.0)
            except MicLost as exc:
                loop.call_soon_threadsafe(self._set, "mic lost", str(exc))
                log.warning("voice: %s; reopening in %.0f s", exc, delay)
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, self.backoff_max_s)
                self.heartbeat()  # retrying is progress: the loop is alive
                try:
                    self.mic.reopen()
                except MicLost as again:
                    log.warning("voice: still no microphone: %s", again)
                    continue
                delay = self.backoff_s
                log.info("voice: the microphone is back")
                loop.call_soon_threadsafe(self._set, "listening")
                continue
            if not pcm:  # the end of a WAV file
                loop.call_soon_threadsafe(self._frames.put_nowait, b"")
                return
            self.heartbeat()
            loop.call_soon_threadsafe(self._offer, pcm)

    def _offer(self, pcm: bytes) -> None:
        if self._frames.full():
            self._frames.get_nowait()  # drop the oldest: never block the audio thread
        self._frames.put_nowait(pcm)

    # -- the loop ------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        self._loop = loop = asyncio.get_running_loop()

        def speaking(_at: float) -> None:  # from the mouth's thread
            loop.call_soon_threadsafe(self._set, "speaking")

        self.voice.on_first_audio = speaking
        if self.state == "starting":
            self.open_microphone()
        reader = threading.Thread(target=self._read, args=(loop,), name="microphone", daemon=True)
        reader.start()
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                getting = asyncio.ensure_future(self._frames.get())
                await asyncio.wait({getting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not getting.done():
                    getting.cancel()
                    break
                pcm = getting.result()
                if not pcm:
                    break  # end of file
                await self._frame(pcm)
            if self._answering is not None:
                await asyncio.wait({self._answering})
        finally:
            self._stop.set()
            stopping.cancel()
            if self.ahead is not None:
                self.ahead.drop("stopping")
            if self._answering is not None and not self._answering.done():
                self.voice.interrupt()
            self.mic.close()

    async def _frame(self, pcm: bytes) -> None:
        now = self.clock()
        vc = self.config.voice
        if (self.speaking and not self._barged) or now < self._deaf_until:
            if not (self.speaking and vc.barge_in):
                # half-duplex: never hear ourselves. The ears are already clear: the
                # question's end reset them, and _answer resets them when it finishes.
                return
            pcm, clean = self._cleaned(pcm)
            if vc.wake == "word":  # the wake word stops the answer; nothing is transcribed
                if self._wake_heard(pcm):
                    self._barge_in("wake word")
                    self.armed_until = now + vc.follow_up_s
                return
            heard = self.ears.feed_clean(clean)
            text = heard.text if heard is not None else self.ears.partial
            if vc.wake == "phrase" and text and match_wake(text, vc.wake_phrase) is not None:
                self._barge_in("wake phrase")
                self.armed_until = now + vc.follow_up_s  # the question needs no phrase
            return
        if now - self.voice.last_turn_at > vc.idle_reset_s and self.voice.history:
            log.info("voice: idle for %.0f s, starting a new conversation", vc.idle_reset_s)
            self.voice.reset()
        pcm, clean = self._cleaned(pcm)
        if vc.wake == "word" and now >= self.armed_until and not self.ears.hearing:
            # the wake word's model listens; the recognizer runs only once it is heard
            if self._wake_heard(pcm):
                self.armed_until = now + vc.follow_up_s
                self.ears.reset()
                word = self.wake.name if self.wake is not None else "?"
                log.info("voice: wake word %s heard", word)
                if self.on_event is not None:
                    self.on_event("wake", word=word)
            return
        heard = self.ears.feed_clean(clean)
        if heard is None:
            if self.ahead is not None and not self.speaking:
                self.ahead.consider(self._guessed(now))
            return
        await self._utterance(heard, now)

    async def _utterance(self, heard: Heard, now: float) -> None:
        """An utterance ended: answer it if it is a question (with the answer prepared at
        its pause, when that was this question)."""
        question = self._question(heard, now) if heard.text else ""
        prepared = self.ahead.take(heard, question) if self.ahead is not None else None
        if question:
            if self._answering is not None and not self._answering.done():
                await asyncio.wait({self._answering})  # the interrupted answer winds down
            self._answering = asyncio.ensure_future(self._answer(heard, question, prepared))

    def _guessed(self, now: float) -> Guess | None:
        """The ears' guess, when it would be a question (a wake phrase is not guessed at)."""
        guess = self.ears.guess
        vc = self.config.voice
        if guess is None or not (vc.wake in ("word", "always") or now < self.armed_until):
            return None
        return guess

    def _cleaned(self, pcm: bytes) -> tuple[bytes, bytes]:
        """(what the wake word hears, what the recognizer hears) of one frame: every frame
        the loop listens to goes through the ears' front end, so it follows the room."""
        clean = self.ears.clean(pcm)
        return (clean if self.config.speech.wake_hears == "clean" else pcm), clean

    def _wake_heard(self, pcm: bytes) -> bool:
        return self.wake is not None and self.wake.feed(pcm) is not None

    def _question(self, heard: Heard, now: float) -> str:
        vc = self.config.voice
        if now < self._stop_heard_until and is_stop(heard.text):
            log.info("voice: %r after a barge-in: stopped, nothing to answer", heard.text)
            return ""  # "Okay Nabu … stop": the stop was the point
        if vc.wake == "word":  # the ears heard it because the wake word (or a turn) armed them
            return heard.text
        if vc.wake == "always" or now < self.armed_until:
            rest = match_wake(heard.text, vc.wake_phrase) if vc.wake == "phrase" else None
            return rest if rest else heard.text
        if vc.wake == "phrase":
            rest = match_wake(heard.text, vc.wake_phrase)
            if rest == "":
                self.armed_until = now + vc.follow_up_s  # "hey robot" … then the question
                log.info("voice: wake phrase heard")
            return rest or ""
        return ""  # button mode: wait for the button

    async def _answer(
        self,
        heard: Heard,
        question: str,
        prepared: asyncio.Future[TurnResult | None] | None = None,
    ) -> TurnResult | None:
        """Answer ``question`` (``prepared``: the answer to it the loop began at a pause)."""
        self._set("thinking")
        try:
            result = await (prepared or self.voice.answer(heard, question))
        except Exception as exc:  # noqa: BLE001 - busy, too hot, a broken model: keep listening
            log.error("voice: could not answer %r: %s", question, exc)
            self._set("listening", str(exc))
            return None
        finally:
            if self._barged:  # the ears are hearing the question that interrupted it
                self._barged = False
            else:
                self._deaf_until = self.clock() + TAIL_S
                self.ears.reset()
            self.armed_until = self.clock() + self.config.voice.follow_up_s
        self._set("listening")
        if result is not None and self.on_answer is not None:
            self.on_answer(result)
        return result
