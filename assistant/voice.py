"""The voice: a heard question → the brain → an answer spoken sentence by sentence.

:class:`Voice` answers one question: it takes a VOICE ticket (voice outranks the API),
streams tokens through the :class:`~assistant.speech.sentences.SentenceSplitter` into the
mouth (piper synthesises chunk N+1 while chunk N plays), keeps the conversation history
(only what was actually spoken after a barge-in) and logs the turn's timings. With a
:class:`Hold` it prepares an answer to a question guessed at a pause (:mod:`assistant.ahead`):
generated and synthesised, but silent, and nothing run or kept, until the hold lets it go.
The listening loop is :class:`~assistant.voiceloop.VoiceLoop`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from .config import Config
from .memory import trim
from .speech.ears import Heard
from .speech.mouth import Mouth, Utterance
from .speech.sentences import SentenceSplitter, split_all
from .thermal.admission import Priority
from .turn import Conversation, Held, Piece, Turn, TurnEvent, TurnRequest, Turns

__all__ = ["Hold", "TurnResult", "Voice"]

log = logging.getLogger(__name__)


@dataclass
class TurnResult:
    transcript: str
    answer: str  # what was generated
    spoken: str  # what was heard (shorter after a barge-in)
    stt_final_s: float  # end of speech → final transcript
    first_token_s: float  # end of speech → first token
    first_audio_s: float  # end of speech → first audio sample out
    total_s: float  # end of speech → last audio sample out
    answer_done_s: float  # end of speech → the last token
    stt_rtf: float
    tts_rtf: float
    interrupted: bool = False
    ahead: bool = False  # the answer was prepared at a pause, before the end of speech

    def timings(self) -> dict[str, Any]:
        return asdict(self)


def _speak(event: TurnEvent, splitter: SentenceSplitter, utterance: Utterance) -> None:
    """A streamed answer's event to the mouth: each sentence as soon as it is complete."""
    if isinstance(event, Piece):
        for chunk in splitter.feed(event.text):
            utterance.add(chunk)
    elif isinstance(event, Held):  # the last sentence too: ready the moment it is let go
        for chunk in splitter.flush():
            utterance.add(chunk)


def _spoken(utterance: Utterance) -> None:
    """(On a worker thread.) Wait until the answer is said, then give back the pages piper
    freed (:func:`~assistant.memory.trim`)."""
    utterance.done.wait()
    trim()


class Hold:
    """A prepared answer's leash: its turn is held (nothing run, kept or told) and its
    utterance silent until :meth:`go` (the question was what the person said: the heard
    utterance's timings are the answer's) or :meth:`drop`."""

    def __init__(self) -> None:
        self.heard: Heard | None = None
        self.dropped = False
        self.settled = asyncio.Event()  # go or drop
        self._turn: Turn | None = None
        self._utterance: Utterance | None = None
        self._on_go: Callable[[], None] = lambda: None

    def attach(self, turn: Turn, utterance: Utterance, on_go: Callable[[], None]) -> None:
        self._turn, self._utterance, self._on_go = turn, utterance, on_go
        if self.settled.is_set():  # decided while the turn was being admitted
            self._apply()

    def go(self, heard: Heard) -> None:
        self.heard = heard
        self.settled.set()
        self._apply()

    def drop(self) -> None:
        self.dropped = True
        self.settled.set()
        self._apply()

    def _apply(self) -> None:
        turn, utterance = self._turn, self._utterance
        if turn is None or utterance is None:
            return
        if self.dropped:
            turn.discard()
            utterance.stop()
        else:
            self._on_go()
            turn.release()
            utterance.release()


class Voice:
    """Answers a heard question aloud: the house's turn (:class:`~assistant.turn.Turns`,
    at voice priority, in the voice's own conversation) mapped to the mouth."""

    def __init__(
        self,
        config: Config,
        turns: Turns,
        mouth: Mouth,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.turns = turns
        self.brain = turns.brain
        self.mouth = mouth
        self.clock = clock
        self.conversation = Conversation("voice")
        self.last_turn_at = clock()
        self.turn: Turn | None = None
        self.utterance: Utterance | None = None
        self.on_first_audio: Callable[[float], None] | None = None  # e.g. state "speaking"

    @property
    def history(self) -> list[tuple[str, str]]:
        return self.conversation.history

    def reset(self) -> None:
        self.conversation.history = []

    def interrupt(self) -> None:
        """Barge-in: stop speaking now and stop generating after the current token."""
        if self.utterance is not None:
            self.utterance.stop()
        if self.turn is not None:
            self.turn.cancel()

    async def answer(
        self, heard: Heard, question: str, *, streaming: bool = True, hold: Hold | None = None
    ) -> TurnResult | None:
        """Think and speak. ``streaming=False``: the whole answer, then the whole synthesis.

        A call of one of the configured actions is checked, run and answered by the turn's
        :class:`~assistant.actions.actor.Actor`; a yes or no to its "Shall I …?" is
        answered without the model. After a barge-in nothing is run or said. ``hold``: an
        answer prepared ahead (``heard`` is the guess); None when it was dropped."""
        request = TurnRequest(
            "voice",
            question,
            self.conversation,
            priority=Priority.VOICE,
            arrived=heard.speech_end,
            held=hold is not None,
        )
        turn = await self.turns.start(request)
        # what the recognizer freed goes back while the answer is thought (a worker thread)
        trimmed = asyncio.get_running_loop().run_in_executor(None, trim)
        utterance = self.mouth.start(self.on_first_audio, held=hold is not None)
        if hold is not None:
            hold.attach(turn, utterance, lambda: self._own(turn, utterance))
        else:
            self._own(turn, utterance)
        splitter = SentenceSplitter() if streaming else None
        try:
            async for event in turn:
                if splitter is not None:
                    _speak(event, splitter, utterance)
            if hold is not None:
                await hold.settled.wait()
                if hold.dropped or hold.heard is None:
                    return None
                heard = hold.heard
        except BaseException:
            utterance.stop()
            turn.cancel()
            if turn.released.is_set() and not turn.discarded:
                turn.end(delivered=utterance.spoken())
            else:
                turn.discard()
            raise
        answered = self.clock()
        self._finish(utterance, splitter, turn)
        await trimmed
        await asyncio.get_running_loop().run_in_executor(None, _spoken, utterance)
        result = self._result(heard, turn, utterance, answered, ahead=hold is not None)
        self.last_turn_at = self.clock()
        if self.turn is turn:
            self.turn = self.utterance = None
        return result

    def _own(self, turn: Turn, utterance: Utterance) -> None:
        """The answer being spoken now (what a barge-in interrupts)."""
        self.turn, self.utterance = turn, utterance

    @staticmethod
    def _finish(utterance: Utterance, splitter: SentenceSplitter | None, turn: Turn) -> None:
        """The rest of the answer to the mouth, and its end."""
        if splitter is not None:
            for chunk in [*splitter.flush(), turn.said]:
                if chunk:
                    utterance.add(chunk)
        elif shown := split_all([turn.text, turn.said]):
            # one piper call for everything; every chunk ends a sentence, as when streaming
            utterance.add(" ".join(c if c[-1] in ".!?…:;," else f"{c}." for c in shown))
        utterance.end()

    def _result(
        self, heard: Heard, turn: Turn, utterance: Utterance, answered: float, *, ahead: bool
    ) -> TurnResult:
        """The turn's figures (from the end of speech), and its end: history and record."""
        end = self.clock()
        if utterance.stopped:
            turn.cancel()
        spoken = utterance.spoken() if utterance.stopped else turn.answer
        first_audio = utterance.first_audio_at
        since = heard.speech_end
        first_audio_s = first_audio - since if first_audio is not None else None
        job = turn.job
        first_token = job.first_at - since if job is not None and job.first_at is not None else 0.0
        result = TurnResult(
            transcript=heard.text,
            answer=turn.answer,
            spoken=spoken,
            stt_final_s=heard.stt_final_s,
            first_token_s=first_token,
            first_audio_s=first_audio_s or 0.0,
            total_s=end - since,
            answer_done_s=max(0.0, answered - since) if job is not None else 0.0,
            stt_rtf=heard.stt_s / heard.audio_s if heard.audio_s else 0.0,
            tts_rtf=utterance.tts_rtf,
            interrupted=utterance.stopped,
            ahead=ahead,
        )
        turn.end(
            delivered=spoken if utterance.stopped else None,
            first_audio_s=first_audio_s,
            detail=f"{result.stt_final_s:.2f} s to final transcript, {result.first_audio_s:.2f} s "
            f"to first audio, {result.total_s:.2f} s total; STT RTF {result.stt_rtf:.2f}, "
            f"TTS RTF {result.tts_rtf:.2f}{' (interrupted)' if result.interrupted else ''}"
            f"{' (prepared at a pause)' if ahead else ''}",
        )
        return result
