"""The ears: microphone frames in, one :class:`Heard` out at the end of each utterance.

Frames go through the front end (noise suppression, gain), the voice-activity detector
(:class:`~assistant.speech.vad.Segmenter`) and the recognizer. At each pause of
``speculate_s`` inside an utterance the ears *guess*: what was said so far (a streaming
recognizer's partial text, or whisper transcribing the utterance so far on its own thread).
A streaming engine's guess is instant: Vosk closes the piece it was decoding
(:meth:`~assistant.speech.stt.VoskRecognizer.settle`), so if the person says nothing more,
the guess is the final transcript. The guess does two things:

- **Adaptive endpointing** (``end_silence_s=(short, long)``): a guess that reads as a
  finished request (:func:`~assistant.speech.endpoint.looks_complete`) ends the utterance
  after ``short`` seconds of silence, one that trails off ("turn on the …") after ``long``.
- **A head start.** The voice loop may start answering the guess before the silence runs
  out (:mod:`assistant.ahead`); with whisper the guess *is* the transcript if the person
  does not go on, so transcription and the silence that ends an utterance overlap.

If the person goes on speaking, the guess is dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

from ..config import Speech
from .audio import FRAME_S
from .endpoint import looks_complete
from .frontend import FrontEnd
from .stt import Recognizer
from .vad import Segmenter

__all__ = ["Ears", "Guess", "Heard", "transcribe_pcm"]


@dataclass(frozen=True)
class Heard:
    """One utterance. Times are the ears' clock."""

    text: str
    speech_end: float  # the last frame that was speech
    final_at: float  # the transcript was ready
    audio_s: float  # seconds of audio the recognizer got
    stt_s: float  # seconds the recognizer worked on this utterance (for the RTF)

    @property
    def stt_final_s(self) -> float:
        """End of speech → final transcript (includes the trailing silence)."""
        return self.final_at - self.speech_end


@dataclass
class Guess:
    """What was said up to a pause: ``text`` once the recognizer has it (``ready``)."""

    future: Future[str]
    speech_end: float  # the last frame of speech before the pause
    at: float  # when the guess was asked for
    ready_at: float | None = None  # when its text came (the ears' clock)

    @property
    def ready(self) -> bool:
        return self.future.done()

    @property
    def text(self) -> str:
        """The guess's text ("" until it is ready, or when it failed)."""
        if not self.future.done() or self.future.exception() is not None:
            return ""
        return self.future.result()


class Ears:
    """Frames in; a :class:`Heard` out at the end of each utterance (see the module)."""

    def __init__(
        self,
        recognizer: Recognizer,
        segmenter: Segmenter,
        *,
        clock: Callable[[], float] = time.monotonic,
        speculate_s: float = Speech.pause_s,  # speech.pause_s's default
        front_end: FrontEnd | None = None,
        end_silence_s: tuple[float, float] | None = None,
        language: str = "en",
    ) -> None:
        self.recognizer = recognizer
        self.front_end = front_end  # noise suppression and gain before everything else
        self.segmenter = segmenter
        self.clock = clock
        self.language = language
        self.partial = ""
        #: the guess at the current pause (None while the person speaks)
        self.guess: Guess | None = None
        self._speech_end = 0.0
        self._bytes = 0
        self._pause = 0
        self._speculate_frames = max(1, round(speculate_s / FRAME_S))
        self._short = 0  # frames of silence that end a complete-looking request (0: off)
        if end_silence_s is not None:
            short, long = end_silence_s
            self._short = max(1, round(short / FRAME_S))
            segmenter.end_frames = max(self._short, round(long / FRAME_S))
        self._busy = 0.0  # recognizer seconds spent on this utterance
        self._busy_mark = 0.0

    @property
    def hearing(self) -> bool:
        return self.segmenter.in_speech

    def clean(self, pcm: bytes) -> bytes:
        """``pcm`` through the front end (as it is without one)."""
        return pcm if self.front_end is None else self.front_end.process(pcm)

    def feed(self, pcm: bytes) -> Heard | None:
        """The microphone's audio in; a :class:`Heard` when an utterance ends."""
        return self.feed_clean(self.clean(pcm))

    def feed_clean(self, pcm: bytes) -> Heard | None:
        """As :meth:`feed`, for audio that went through :meth:`clean` already."""
        segment = self.segmenter.feed(pcm)
        if segment.voiced:
            self._speech_end = self.clock()
            self._pause = 0
            self.guess = None  # the speaker went on: that guess is stale
        else:
            self._pause += 1
        if segment.event == "start":
            self.recognizer.reset()
            self._bytes = 0
            self._busy = 0.0
            self._busy_mark = getattr(self.recognizer, "busy_s", 0.0)
        if segment.event in ("start", "speech", "end"):
            self._bytes += len(segment.pcm)
            began = time.perf_counter()
            self.partial = self.recognizer.accept(segment.pcm)
            self._busy += time.perf_counter() - began
        if segment.event == "speech" and self._pause == self._speculate_frames:
            self.guess = guess = Guess(self._ask(), self._speech_end, self.clock())
            guess.future.add_done_callback(lambda _: setattr(guess, "ready_at", self.clock()))
        if segment.event == "speech" and self._ends_early():
            self.segmenter.reset()
        elif segment.event != "end":
            return None
        return self._heard()

    def _ask(self) -> Future[str]:
        """What was said so far (:meth:`~assistant.speech.stt.Recognizer.guess`)."""
        return self.recognizer.guess()

    def _ends_early(self) -> bool:
        """Adaptive endpointing: the guess reads as a finished request and the pause is the
        short one (the segmenter itself ends a trailing-off one after the long one)."""
        guess = self.guess
        return bool(
            self._short
            and self._pause >= self._short
            and guess is not None
            and guess.ready
            and looks_complete(guess.text, self.language)
        )

    def _heard(self) -> Heard:
        began = time.perf_counter()
        guess, self.guess = self.guess, None
        if guess is not None and not self.recognizer.streaming:
            text = guess.future.result()  # whisper: the guess heard the whole utterance
            self.recognizer.reset()
        else:
            text = self.recognizer.final()
        done = self.clock()
        if hasattr(self.recognizer, "busy_s"):  # whisper: its thread's time, guesses included
            self._busy += self.recognizer.busy_s - self._busy_mark
        else:
            self._busy += time.perf_counter() - began
        self.partial = ""
        audio_s = self._bytes / 2 / self.recognizer.rate
        return Heard(text, self._speech_end, done, audio_s, self._busy)

    def reset(self) -> None:
        """Forget what was being heard (half-duplex: the assistant's own voice)."""
        self.segmenter.reset()
        self.recognizer.reset()
        self.partial = ""
        self.guess = None


def transcribe_pcm(recognizer: Recognizer, pcm: bytes, *, ears: Ears | None = None) -> str:
    """A whole recording (`qwen-assistant transcribe`): every utterance, joined. ``ears``:
    hear it as they do (their front end and voice-activity detector) instead."""
    ears = ears or Ears(recognizer, Segmenter(trailing_silence_s=0.5))
    frame = 2 * round(recognizer.rate * FRAME_S)
    texts = []
    for i in range(0, len(pcm) + frame * 40, frame):  # plus silence to close the last one
        heard = ears.feed(pcm[i : i + frame] or bytes(frame))
        if heard is not None and heard.text:
            texts.append(heard.text)
    return " ".join(texts)
