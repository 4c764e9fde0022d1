"""The mouth: speaks chunks as they come, synthesising the next while the last one plays.

Two threads: ``mouth-synth`` turns text chunks into PCM with piper, ``mouth-play`` writes PCM
to the speaker in short slices. So chunk N+1 is synthesised while chunk N plays, and a
barge-in (:meth:`Utterance.stop`) takes effect within one slice: the speaker's buffer is
dropped (``abort``) and :meth:`Utterance.spoken` says how much of the answer was actually
heard, so the conversation history can keep only that.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..memory import trim
from .audio import Speaker
from .tts import TTS

__all__ = ["Mouth", "Utterance"]

log = logging.getLogger(__name__)

SLICE_S = 0.05  # playback granularity: how fast a barge-in stops the sound


@dataclass
class _Chunk:
    text: str
    pcm: bytes = b""
    played: int = 0  # bytes written to the speaker


@dataclass
class Utterance:
    """One answer being spoken. ``add`` chunks, then ``end``; ``stop`` interrupts."""

    mouth: Mouth
    on_first_audio: Callable[[float], None] | None = None
    first_audio_at: float | None = None
    chunks: list[_Chunk] = field(default_factory=list)
    ended: bool = False
    halt: threading.Event = field(default_factory=threading.Event)  # set by stop()
    #: may play (a held utterance is synthesised but silent until :meth:`release`)
    go: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    synth_s: float = 0.0  # piper's time
    audio_s: float = 0.0  # seconds of audio produced

    def add(self, text: str) -> None:
        if text.strip() and not self.stopped:
            chunk = _Chunk(text)
            self.chunks.append(chunk)
            self.mouth._texts.put((self, chunk))

    def end(self) -> None:
        self.ended = True
        self.mouth._texts.put((self, None))

    @property
    def stopped(self) -> bool:
        return self.halt.is_set()

    def stop(self) -> None:
        """Barge-in: stop playback now and drop what is not yet said."""
        self.halt.set()
        self.go.set()  # a held one never plays
        self.mouth._texts.put((self, None))

    def release(self) -> None:
        """A held utterance may play now (from its first chunk, synthesised meanwhile)."""
        self.go.set()

    def spoken(self) -> str:
        """The text actually played: whole chunks, and the heard part of an interrupted one."""
        said = []
        for chunk in self.chunks:
            if chunk.pcm and chunk.played >= len(chunk.pcm):
                said.append(chunk.text)
            elif chunk.played:
                words = chunk.text.split()
                heard = round(len(words) * chunk.played / max(1, len(chunk.pcm)))
                if heard:
                    said.append(" ".join(words[:heard]) + " …")
                break
            else:
                break
        return " ".join(said)

    @property
    def tts_rtf(self) -> float:
        return self.synth_s / self.audio_s if self.audio_s else 0.0


class Mouth:
    def __init__(
        self, tts: TTS, speaker: Speaker, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.tts = tts
        self.speaker = speaker
        self.clock = clock
        self.current: Utterance | None = None
        self._texts: queue.Queue[tuple[Utterance, _Chunk | None] | None] = queue.Queue()
        self._sounds: queue.Queue[tuple[Utterance, _Chunk | None] | None] = queue.Queue(4)
        self._threads = [
            threading.Thread(target=self._synth, name="mouth-synth", daemon=True),
            threading.Thread(target=self._play, name="mouth-play", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def speaking(self) -> bool:
        u = self.current
        return u is not None and not u.done.is_set()

    @property
    def playing(self) -> bool:
        """An utterance that may be heard is under way (not a held one, nor a stopped one
        winding down)."""
        u = self.current
        return u is not None and not u.done.is_set() and u.go.is_set() and not u.stopped

    def start(
        self, on_first_audio: Callable[[float], None] | None = None, *, held: bool = False
    ) -> Utterance:
        """A new answer to speak chunk by chunk (any earlier one is stopped); ``held``: its
        chunks are synthesised at once but played only after :meth:`Utterance.release`."""
        if self.current is not None and not self.current.done.is_set():
            self.current.stop()
        self.current = Utterance(self, on_first_audio)
        if not held:
            self.current.go.set()
        return self.current

    def say(self, text: str, on_first_audio: Callable[[float], None] | None = None) -> bool:
        """Speak a whole text (the API's ``"speak": true``); returns at once.

        False (nothing said) while another answer is being spoken: voice outranks the API.
        """
        if self.speaking:
            return False
        utterance = self.start(on_first_audio)
        utterance.add(text)
        utterance.end()
        return True

    # -- threads ---------------------------------------------------------------------------
    def _synth(self) -> None:
        while (item := self._texts.get()) is not None:
            utterance, chunk = item
            synthesised = chunk is not None and not utterance.stopped
            if chunk is not None and synthesised:
                began = self.clock()
                try:
                    chunk.pcm = b"".join(self.tts.synthesize(chunk.text))
                except Exception as exc:  # noqa: BLE001 - one bad chunk must not silence the rest
                    log.error("could not synthesise %r: %s", chunk.text[:40], exc)
                utterance.synth_s += self.clock() - began
                utterance.audio_s += len(chunk.pcm) / 2 / self.tts.sample_rate
            self._sounds.put((utterance, chunk))
            if synthesised:
                trim()  # what the synthesis freed back to the system, once the player has it
        self._sounds.put(None)

    def _play(self) -> None:
        open_for: Utterance | None = None
        while (item := self._sounds.get()) is not None:
            utterance, chunk = item
            try:
                if chunk is None:  # end or stop
                    if utterance.stopped or utterance.ended:
                        if open_for is utterance:
                            (self.speaker.abort if utterance.stopped else self.speaker.stop)()
                            open_for = None
                        utterance.done.set()
                    continue
                if utterance.stopped or not chunk.pcm:
                    continue
                utterance.go.wait()  # held: the next chunk is synthesised meanwhile
                if utterance.halt.is_set():
                    continue
                if open_for is not utterance:
                    if open_for is not None:
                        self.speaker.abort()
                        open_for.done.set()
                    self.speaker.start(self.tts.sample_rate)
                    open_for = utterance
                self._write(utterance, chunk)
                if utterance.halt.is_set():  # barge-in mid-chunk: silence now, not after the queue
                    self.speaker.abort()
                    open_for = None
                    utterance.done.set()
            except Exception as exc:  # noqa: BLE001 - a broken speaker must not stop the service
                log.error("could not speak: %s", exc)
                utterance.halt.set()
                open_for = None
                utterance.done.set()

    def _write(self, utterance: Utterance, chunk: _Chunk) -> None:
        step = 2 * round(self.tts.sample_rate * SLICE_S)
        while chunk.played < len(chunk.pcm) and not utterance.stopped:
            if utterance.first_audio_at is None:
                utterance.first_audio_at = self.clock()
                if utterance.on_first_audio is not None:
                    utterance.on_first_audio(utterance.first_audio_at)
            piece = chunk.pcm[chunk.played : chunk.played + step]
            self.speaker.write(piece)
            chunk.played += len(piece)

    def close(self) -> None:
        """Stop speaking and end the threads."""
        if self.current is not None:
            self.current.stop()
        self._texts.put(None)
        for thread in self._threads:
            thread.join(timeout=5)
