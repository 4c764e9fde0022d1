"""Answer at the pause: the voice loop starts answering while the silence that ends an
utterance runs out, so the first word can come as the person stops.

At each short pause the ears guess what was said so far (:class:`~assistant.speech.ears.Guess`).
When a guess reads as a finished request, :class:`Ahead` starts the voice's answer to it
under a :class:`~assistant.voice.Hold`: the model evaluates the prompt and decodes, piper
synthesises the first sentence, but nothing is played, run, kept or shown. At the endpoint,
if the final transcript is the guess (same words) and the person did not speak again, the
hold lets the answer go and it plays at once; otherwise it is dropped: its job stops, its
slot is freed, and only the wasted tokens are counted (a ``Speculated`` event).

The governor may forbid it: while the heat budget holds the work back nothing is prepared.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from .speech.ears import Guess, Heard
from .speech.endpoint import looks_complete, same_words
from .voice import Hold, TurnResult, Voice

__all__ = ["Ahead", "AheadStats"]

log = logging.getLogger(__name__)


@dataclass
class AheadStats:
    """What the voice loop prepared ahead: started, used (played) and dropped answers."""

    started: int = 0
    used: int = 0
    dropped: int = 0
    #: not started: the guess did not read as finished, or the governor said no
    skipped: int = 0
    #: the last started one: end of speech → its guess's text (the prepared answer's start)
    guess_s: float | None = None


class Ahead:
    """At most one answer prepared ahead, for the voice loop."""

    def __init__(
        self,
        voice: Voice,
        *,
        allowed: Callable[[], bool] = lambda: True,
        language: str = "en",
    ) -> None:
        self.voice = voice
        #: may work be spent ahead now (the governor: not while the heat budget binds)
        self.allowed = allowed
        self.language = language
        self.stats = AheadStats()
        self._guess: Guess | None = None  # the guess looked at (a prepared one, or skipped)
        self._text = ""
        self._hold: Hold | None = None
        self._task: asyncio.Future[TurnResult | None] | None = None

    @property
    def preparing(self) -> bool:
        return self._task is not None

    def consider(self, guess: Guess | None) -> None:
        """Each frame while the ears hear: the ears' current guess. A guess that is gone
        (the person went on) drops its answer; a new one that is ready and reads as a
        finished request starts one."""
        if guess is self._guess:
            return
        if self._guess is not None:
            self.drop("the person went on")
        if guess is None or not guess.ready:
            return
        self._guess = guess
        text = guess.text
        busy = self.voice.mouth.playing  # an API's "speak" plays on: not stopped for a guess
        if busy or not text or not looks_complete(text, self.language) or not self.allowed():
            self.stats.skipped += 1
            return
        # the guess stands in for the utterance until the endpoint says what it was
        heard = Heard(text, guess.speech_end, guess.at, 0.0, 0.0)
        self._hold, self._text = Hold(), text
        self._task = asyncio.ensure_future(self.voice.answer(heard, text, hold=self._hold))
        self._task.add_done_callback(_quietly)
        self.stats.started += 1
        if guess.ready_at is not None:
            self.stats.guess_s = guess.ready_at - guess.speech_end
        log.debug("voice: preparing an answer to %r", text)

    def take(self, heard: Heard, question: str) -> asyncio.Future[TurnResult | None] | None:
        """The endpoint: the prepared answer, let go, when it answers ``question`` as the
        person finished it; None (and the preparation dropped) otherwise."""
        task, hold, guess = self._task, self._hold, self._guess
        self._guess = None
        if task is None or hold is None or guess is None:
            return None
        if (
            task.done()  # it failed (not admitted, a broken model): answer the usual way
            or heard.speech_end != guess.speech_end
            or not same_words(question, self._text)
        ):
            self.drop("the question was not the guess")
            return None
        self._task = self._hold = None
        hold.go(heard)
        self.stats.used += 1
        return task

    def drop(self, why: str) -> None:
        """Stop a prepared answer: nothing of it is played, run or kept."""
        self._guess = None
        if self._hold is None:
            return
        log.debug("voice: dropped the answer prepared for %r: %s", self._text, why)
        self._hold.drop()
        self._task = self._hold = None
        self.stats.dropped += 1


def _quietly(task: asyncio.Future[TurnResult | None]) -> None:
    """A preparation's failure (Busy, a model error) is not the person's: the endpoint
    answers the usual way, and that answer reports it."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.debug("voice: an answer prepared ahead failed: %s", exc)
