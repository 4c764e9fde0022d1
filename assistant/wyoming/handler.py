"""One Wyoming connection: its events mapped onto the device's own parts.

- ``describe`` → ``info`` (:func:`~assistant.wyoming.info.describe`).
- ``transcribe``? + ``audio-start`` / ``audio-chunk``… / ``audio-stop`` → ``transcript``, with
  the configured recognizer (any rate, width and channels converted to 16 kHz mono;
  longer than ``wyoming.max_audio_s``: an error and the connection closes).
- ``synthesize`` → ``audio-start`` / ``audio-chunk``… / ``audio-stop`` with the piper voice;
  ``synthesize-start`` / ``synthesize-chunk``… / ``synthesize-stop`` → the same audio,
  spoken sentence by sentence as the text arrives (the project's splitter), then
  ``synthesize-stopped``; the compatibility ``synthesize`` inside a stream is not spoken.
- ``detect`` + audio → ``detection`` (as soon as the wake phrase is heard) or, at
  ``audio-stop``, ``not-detected``.
- ``transcript`` (with ``context.conversation_id``) → ``handled`` with Qwen's answer, or
  an ``error`` saying why it was not admitted.

A malformed event gets an ``error`` (the connection stays); bytes that are not Wyoming get
an ``error`` and the connection closes (:class:`~assistant.wyoming.connection.Connection`:
the mechanics every connection shares). While the service stops (``Parts.closing``), every
event but ``describe`` gets an ``error`` (code ``stopping``) and the connection closes; a
synthesis in progress ends the same way at its next sentence, or when the server's stop
cuts it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import Any

from wyoming.asr import Transcript
from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop
from wyoming.event import Event
from wyoming.handle import Handled, NotHandled
from wyoming.tts import (
    SynthesizeStopped,
)
from wyoming.wake import Detect, Detection, NotDetected

from ..brain import NotReady
from ..errors import PromptTooLong
from ..speech.ears import transcribe_pcm
from ..speech.sentences import SentenceSplitter, split_all
from ..speech.stt import RATE, Recognizer
from ..speech.tts import TTS
from ..speech.wake import MicroWake, PhraseWake, wake_name
from ..thermal.admission import Busy
from .connection import Connection
from .info import Parts, describe
from .server import BadEvent, audio_chunk, event_text

__all__ = ["Handler"]

Wake = MicroWake | PhraseWake

log = logging.getLogger(__name__)

SAMPLES_PER_CHUNK = 1024  # audio sent to the client in chunks of this many samples
#: numbers the connections (a conversation of its own for each)
_CONNECTIONS = itertools.count(1)


class Handler(Connection):
    def __init__(
        self,
        parts: Parts,
        max_audio_s: float,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        super().__init__(parts, reader, writer)
        self.max_bytes = round(max_audio_s * RATE) * 2
        self.max_audio_s = max_audio_s
        self._audio: bytearray | None = None  # a transcription's 16 kHz mono audio
        self._converter: AudioChunkConverter | None = None
        self._wake: list[Wake] | None = None  # the detectors of a detect stream
        self._detected = False
        self._stream: SentenceSplitter | None = None  # a synthesize-start … stream
        self._stream_started = False
        #: this connection's own conversation when a transcript names none
        self.connection = f"connection-{next(_CONNECTIONS)}"
        self._actions = self._by_type()

    async def disconnect(self) -> None:
        self._audio = self._wake = self._stream = None
        if self.parts.agent is not None:  # its pending "Shall I …?" ends with it
            self.parts.agent.forget_connection(self.connection)

    def _program(self, kind: str) -> str:
        """The Wyoming program an event belongs to (for the metrics)."""
        if kind.startswith("audio-"):
            return "wake" if self._wake is not None else "asr"
        return {"transcribe": "asr", "detect": "wake", "transcript": "handle"}.get(
            kind, "tts" if kind.startswith("synthesize") else kind
        )

    async def _dispatch(self, event: Event) -> bool:
        self._check_open(event.type)
        act = self._actions.get(event.type)  # (built once per connection)
        if act is None:
            log.debug("wyoming %s: ignored %s event", self.peer, event.type)
            return True
        await act(event)
        return True

    def _by_type(self) -> dict[str, Any]:
        """Event type → the method that answers it."""
        return {
            "describe": self._describe,
            "transcribe": self._transcribe,
            "detect": self._detect,
            "audio-start": self._audio_start,
            "audio-chunk": self._chunk,
            "audio-stop": self._audio_stop,
            "synthesize": self._synthesize_event,
            "synthesize-start": self._stream_start,
            "synthesize-chunk": self._stream_chunk,
            "synthesize-stop": self._stream_stop,
            "transcript": self._handle,
        }

    async def _describe(self, _event: Event) -> None:
        await self.write_event(describe(self.parts).event())

    # -- audio in: transcription and wake --------------------------------------------------
    async def _transcribe(self, _event: Event) -> None:
        self._recognizer()
        self._audio, self._converter, self._wake = bytearray(), None, None

    async def _audio_start(self, _event: Event) -> None:
        if self._wake is None and self._audio is None:  # audio without transcribe
            self._recognizer()
            self._audio = bytearray()
        self._converter = AudioChunkConverter(rate=RATE, width=2, channels=1)

    async def _detect(self, event: Event) -> None:
        """Listen for the requested wake words (none named: every one this device has)."""
        parts = self.parts
        ours = dict.fromkeys(parts.wake_words)
        if parts.wake_phrase:
            ours[wake_name(parts.wake_phrase)] = None
        if not ours:
            raise self._missing("wake")
        names = Detect.from_event(event).names or []
        wanted = [wake_name(n) for n in names] or list(ours)
        if not any(n in ours for n in wanted):
            raise BadEvent(
                f"no wake word {', '.join(names)!r} here; this device has {', '.join(ours)}",
                "unknown_wake_word",
            )
        self._wake = [
            PhraseWake(self._recognizer(), parts.wake_phrase)
            if n not in parts.wake_words
            else MicroWake(n)
            for n in wanted
            if n in ours
        ]
        self._audio, self._detected = None, False

    async def _chunk(self, event: Event) -> None:
        chunk = audio_chunk(event)
        if self._audio is None and self._wake is None:
            raise BadEvent("audio-chunk without transcribe, detect or audio-start")
        if self._converter is None:
            self._converter = AudioChunkConverter(rate=RATE, width=2, channels=1)
        try:
            pcm = self._converter.convert(chunk).audio
        except Exception as exc:  # noqa: BLE001 - audioop's errors for odd formats
            raise BadEvent(f"audio-chunk cannot be converted: {exc}") from None
        if self._wake is not None:
            await self._feed_wake(self._wake, pcm)
            return
        audio = self._audio
        if audio is None:
            return
        audio += pcm
        if len(audio) > self.max_bytes:
            self._audio = None
            raise BadEvent(
                f"audio longer than {self.max_audio_s:g} s (wyoming.max_audio_s); "
                "end the utterance sooner",
                "too_long",
            )

    async def _feed_wake(self, wakes: list[Wake], pcm: bytes) -> None:
        loop = asyncio.get_running_loop()
        for wake in wakes:
            at = await loop.run_in_executor(self.parts.executor, wake.feed, pcm)
            if at is not None:
                await self._detection(wake, at)

    async def _detection(self, wake: Wake, at: float) -> None:
        self._detected = True
        log.info("wyoming %s: wake word %r at %.2f s", self.peer, wake.name, at)
        self._count("wake", "detected")
        await self.write_event(Detection(name=wake.name, timestamp=round(at * 1000)).event())

    async def _audio_stop(self, _event: Event) -> None:
        loop = asyncio.get_running_loop()
        if self._wake is not None:
            wakes, self._wake = self._wake, None
            for wake in wakes:
                at = await loop.run_in_executor(self.parts.executor, wake.finish)
                if at is not None:
                    await self._detection(wake, at)
            if not self._detected:
                self._count("wake", "not_detected")
                await self.write_event(NotDetected().event())
            return
        if self._audio is None:
            raise BadEvent("audio-stop without audio")
        pcm, self._audio = bytes(self._audio), None
        began = time.monotonic()
        rec = self._recognizer().sibling()
        text = await loop.run_in_executor(self.parts.executor, transcribe_pcm, rec, pcm)
        took = time.monotonic() - began
        audio_s = len(pcm) / 2 / RATE
        log.info(
            "wyoming %s: transcribed %.1f s of audio in %.2f s: %r", self.peer, audio_s, took, text
        )
        self._count("asr", "ok")
        await self.write_event(Transcript(text=text).event())

    # -- audio out: synthesis ----------------------------------------------------------------
    async def _synthesize_event(self, event: Event) -> None:
        if self._stream is None:  # inside a stream it only repeats the text
            await self._synthesize(event_text(event, "synthesize"))

    async def _stream_start(self, _event: Event) -> None:
        self._tts()
        self._stream, self._stream_started = SentenceSplitter(), False

    async def _stream_chunk(self, event: Event) -> None:
        if self._stream is None:
            raise BadEvent("synthesize-chunk without synthesize-start")
        for sentence in self._stream.feed(event_text(event, "synthesize-chunk")):
            await self._speak(sentence)

    async def _stream_stop(self, _event: Event) -> None:
        if self._stream is None:
            raise BadEvent("synthesize-stop without synthesize-start")
        stream, self._stream = self._stream, None
        for sentence in stream.flush():
            await self._speak(sentence)
        if self._stream_started:
            await self.write_event(AudioStop().event())
        self._count("tts", "ok")
        await self.write_event(SynthesizeStopped().event())

    async def _synthesize(self, text: str) -> None:
        self._tts()
        self._stream_started = False
        for sentence in split_all([text]):
            await self._speak(sentence)
        if not self._stream_started:  # nothing to say: an empty sound, not silence forever
            await self._start_audio()
        self._count("tts", "ok")
        await self.write_event(AudioStop().event())

    def _tts(self) -> TTS:
        if (tts := self.parts.tts) is None:
            raise self._missing("tts")
        return tts

    def _recognizer(self) -> Recognizer:
        if (recognizer := self.parts.recognizer) is None:
            raise self._missing("asr")
        return recognizer

    async def _start_audio(self) -> None:
        self._stream_started = True
        await self.write_event(
            AudioStart(rate=self._tts().sample_rate, width=2, channels=1).event()
        )

    async def _speak(self, sentence: str) -> None:
        self._check_open()  # a stop ends a long synthesis at its next sentence
        tts = self._tts()
        loop = asyncio.get_running_loop()
        pcm = await loop.run_in_executor(
            self.parts.executor, lambda: b"".join(tts.synthesize(sentence))
        )
        if not self._stream_started:
            await self._start_audio()
        step = SAMPLES_PER_CHUNK * 2
        for i in range(0, len(pcm), step):
            chunk = AudioChunk(rate=tts.sample_rate, width=2, channels=1, audio=pcm[i : i + step])
            await self.write_event(chunk.event())

    # -- the conversation agent ----------------------------------------------------------------
    async def _handle(self, event: Event) -> None:
        agent = self.parts.agent
        if agent is None:
            raise self._missing("handle")
        question = event_text(event, "transcript").strip()
        context = event.data.get("context")
        if context is not None and not isinstance(context, dict):
            raise BadEvent("transcript: context must be an object")
        conversation = str((context or {}).get("conversation_id") or "")
        if not question:
            self._count("handle", "not_handled")
            await self.write_event(
                NotHandled(text="I did not hear a question.", context=context).event()
            )
            return
        try:
            answer = await agent.answer(question, conversation, connection=self.connection)
        except Busy as exc:
            raise BadEvent(str(exc), f"busy_{exc.reason}") from None
        except NotReady as exc:
            raise BadEvent(str(exc), "not_ready") from None
        except PromptTooLong as exc:
            raise BadEvent(str(exc), "too_long_prompt") from None
        if not answer.text:
            self._count("handle", "not_handled")
            await self.write_event(
                NotHandled(text="I have no answer to that.", context=context).event()
            )
            return
        self._count("handle", "ok")
        await self.write_event(Handled(text=answer.text, context=context).event())
