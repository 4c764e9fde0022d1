"""Wake words: a dedicated wake-word model, or the wake phrase in what a recognizer hears.

:class:`MicroWake` is microWakeWord (``pymicro-wakeword``, Apache-2.0) with one of its
bundled models (:data:`BUILTIN`: okay_nabu, hey_jarvis, hey_mycroft, alexa): a small
streaming TFLite model on 10 ms feature frames, under 1 % of a core.
:func:`match_wake` is the fuzzy match the voice loop uses on each transcript, and
:class:`PhraseWake` runs it over a stream of audio of its own: its own recognizer state on
the loaded speech-to-text model, its own voice-activity detector, a detection as soon as a
partial transcript starts with the phrase. Both have the same face (``name``, ``phrase``,
``feed``, ``finish``); the Wyoming server's ``detect`` uses them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from ..errors import ModelError
from .audio import FRAME_S
from .ears import Ears
from .stt import RATE, Recognizer
from .vad import Segmenter

__all__ = [
    "BUILTIN",
    "REFRACTORY_S",
    "MicroWake",
    "OpenWake",
    "PhraseWake",
    "Refractory",
    "WakeDetector",
    "builtin_words",
    "detections",
    "is_stop",
    "make_wake",
    "match_wake",
    "wake_name",
]


class WakeDetector(Protocol):
    """A wake word heard in a stream of 16 kHz audio: ``feed`` returns the second of a
    detection (None: not yet)."""

    name: str

    def feed(self, pcm: bytes) -> float | None: ...


#: after a detection, the phrase is not detected again for this long (its echo, a repeat)
REFRACTORY_S = 2.0


class Refractory:
    """Which detections count: one, then none for :data:`REFRACTORY_S` of the stream."""

    def __init__(self) -> None:
        self._quiet_until = 0.0  # no detection before (stream seconds)

    def fire(self, at: float) -> bool:
        """Does a detection at ``at`` (stream seconds) count? If it does, the quiet time
        starts there."""
        if at < self._quiet_until:
            return False
        self._quiet_until = at + REFRACTORY_S
        return True


def _words(text: str) -> list[str]:
    return re.sub(r"[^\w\s']", " ", text.lower()).split()


def match_wake(text: str, phrase: str, *, cutoff: float = 0.8) -> str | None:
    """What follows the wake phrase at the start of ``text`` ("" = nothing), or None.

    Fuzzy, because recognisers spell names freely ("hey robot" ~ "Hey, Robot!" ~ "hey robo").
    """
    words, wake = _words(text), _words(phrase)
    if not wake or len(words) < len(wake):
        return None
    for heard, wanted in zip(words, wake, strict=False):  # word by word: "they rob" ≠ "hey robot"
        if difflib.SequenceMatcher(None, heard, wanted).ratio() < cutoff:
            return None
    # the rest in its original spelling: drop as many words as the phrase has
    rest = text.split(None, len(wake))
    return rest[len(wake)].lstrip(" ,.!?") if len(rest) > len(wake) else ""


#: what a person says after interrupting the device to mean "just stop" (not a question)
STOP_PHRASES = frozenset(
    ("stop", "stop it", "cancel", "never mind", "nevermind", "be quiet", "quiet", "enough",
     "that's enough", "shut up", "okay stop", "thank you", "thanks")
)  # fmt: skip


def is_stop(text: str) -> bool:
    """Whether ``text`` is only a way of saying stop ("Stop.", "Never mind!")."""
    return " ".join(_words(text)) in STOP_PHRASES


def wake_name(phrase: str) -> str:
    """The model name a phrase goes by ("Hey Robot" → "hey_robot")."""
    return "_".join(_words(phrase))


class PhraseWake:
    """16 kHz mono int16 audio in, a detection when the phrase is heard.

    Blocking (the recognizer runs here): call it from a worker thread.
    """

    def __init__(self, recognizer: Recognizer, phrase: str) -> None:
        self.phrase = phrase
        self.name = wake_name(phrase)
        self._ears = Ears(recognizer.sibling(), Segmenter(trailing_silence_s=0.3))
        self._frame = 2 * round(RATE * FRAME_S)
        self._held = b""
        self.heard_s = 0.0  # audio fed so far
        self._refractory = Refractory()

    def feed(self, pcm: bytes) -> float | None:
        """Seconds into the stream where the phrase was heard, or None. After a detection
        it listens afresh, and detects nothing for :data:`REFRACTORY_S`."""
        data = self._held + pcm
        cut = len(data) - len(data) % self._frame
        self._held = data[cut:]
        found = None
        for i in range(0, cut, self._frame):
            self.heard_s += FRAME_S
            heard = self._ears.feed(data[i : i + self._frame])
            text = heard.text if heard is not None else self._ears.partial
            if text and match_wake(text, self.phrase) is not None:
                self._ears.reset()
                if found is None and self._refractory.fire(self.heard_s):
                    found = self.heard_s
        return found

    def finish(self) -> float | None:
        """The end of the stream: the last utterance is closed with silence and matched."""
        return self.feed(bytes(self._frame * round(0.6 / FRAME_S)))


def builtin_words() -> dict[str, str]:
    """The bundled microWakeWord models, name → phrase ({} without pymicro-wakeword)."""
    try:
        from pymicro_wakeword import Model
    except ImportError:
        return {}
    return {model.value: BUILTIN.get(model.value, model.value.replace("_", " ")) for model in Model}


#: the phrases the bundled microWakeWord models are trained on
BUILTIN = {
    "okay_nabu": "okay nabu",
    "hey_jarvis": "hey jarvis",
    "hey_mycroft": "hey mycroft",
    "alexa": "alexa",
}


class _WakeModel:
    """A streaming wake-word model: :meth:`scores` gives the model's score for each step of
    new audio; :meth:`feed` reports the first score over :attr:`threshold` in a chunk and
    then nothing for :data:`REFRACTORY_S` (a detection stays high for several steps)."""

    name: str
    phrase: str
    threshold: float

    def __init__(self) -> None:
        self._bytes = 0  # audio fed so far
        self._refractory = Refractory()

    def scores(self, pcm: bytes) -> Iterator[float]:
        """The model's score (0 to 1) for each step the new audio completes."""
        raise NotImplementedError

    def feed(self, pcm: bytes) -> float | None:
        """Seconds into the stream where the wake word was heard, or None."""
        at = (self._bytes + len(pcm)) / 2 / RATE  # the end of this chunk
        best = max(self.scores(pcm), default=0.0)  # every step, so the model keeps up
        self._bytes += len(pcm)
        return at if best > self.threshold and self._refractory.fire(at) else None

    def finish(self) -> float | None:
        return None  # it decides step by step: nothing is held back


class MicroWake(_WakeModel):
    """16 kHz mono int16 audio in, a detection when microWakeWord's model fires (one
    feature frame per 10 ms)."""

    def __init__(self, name: str, threshold: float = 0.0) -> None:
        """``name``: a bundled model (:data:`BUILTIN`) or the path of a custom model's
        ``.json`` (its ``.tflite`` beside it); ``threshold``: the cut-off (0: the model's)."""
        super().__init__()
        try:
            from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model
        except ImportError as exc:
            raise ModelError(
                f"pymicro-wakeword is not installed ({exc}); run scripts/setup.sh"
            ) from None

        if name.endswith(".json"):
            try:
                self._model = MicroWakeWord.from_config(name)
            except Exception as exc:  # noqa: BLE001 - json, KeyError, TFLite's own errors
                raise ModelError(f"{name}: not a microWakeWord model ({exc})") from None
            self.name = Path(name).stem
            self.phrase = str(getattr(self._model, "wake_word", self.name))
        elif name in BUILTIN:
            self.name, self.phrase = name, BUILTIN[name]
            self._model = MicroWakeWord.from_builtin(Model(name))
        else:
            known = ", ".join(BUILTIN)
            raise ModelError(f"{name!r}: no such microWakeWord model; bundled: {known}")
        #: the model's own cut-off (okay_nabu: 0.85) unless one is given
        self.threshold = threshold or float(self._model.probability_cutoff)
        self._features = MicroWakeWordFeatures()

    def scores(self, pcm: bytes) -> Iterator[float]:
        # the mean probability over the model's sliding window, as its own cut-off sees it
        for frame in self._features.process_streaming(pcm):
            score = self._model.process_streaming_prob(frame)
            if score is not None:
                yield score


#: openWakeWord's bundled models (pyopen-wakeword); most are CC BY-NC-SA 4.0: non-commercial
OPEN_BUILTIN = {**BUILTIN, "hey_rhasspy": "hey rhasspy"}


class OpenWake(_WakeModel):
    """openWakeWord (``pyopen-wakeword``; the code Apache-2.0, most bundled models
    CC BY-NC-SA 4.0, i.e. not for a commercial product): mel features → embeddings →
    one model's score per 80 ms; a score over ``threshold`` (0: 0.5) fires."""

    def __init__(self, name: str, threshold: float = 0.0) -> None:
        super().__init__()
        try:
            from pyopen_wakeword import Model, OpenWakeWord, OpenWakeWordFeatures
        except ImportError as exc:
            raise ModelError(
                f"pyopen-wakeword is not installed ({exc}); pip install pyopen-wakeword"
            ) from None
        if name not in OPEN_BUILTIN:
            known = ", ".join(OPEN_BUILTIN)
            raise ModelError(f"{name!r}: no such openWakeWord model; bundled: {known}")
        self.name, self.phrase = name, OPEN_BUILTIN[name]
        self._model = OpenWakeWord.from_builtin(Model(name))
        self._features = OpenWakeWordFeatures.from_builtin()
        self.threshold = threshold or 0.5

    def scores(self, pcm: bytes) -> Iterator[float]:
        for embeddings in self._features.process_streaming(pcm):
            yield from self._model.process_streaming(embeddings)


def make_wake(engine: str, name: str, threshold: float = 0.0) -> MicroWake | OpenWake:
    """``voice.wake_engine``'s detector for ``voice.wake_word``."""
    if engine == "openwakeword":
        return OpenWake(name, threshold)
    return MicroWake(name, threshold)


#: a recording is fed in chunks as a microphone or a Wyoming satellite sends them (64 ms)
CHUNK = 2 * 1024


def detections(detector: MicroWake | OpenWake | PhraseWake, pcm: bytes) -> list[float]:
    """Where ``detector`` hears its word in a whole recording (seconds), fed as a stream."""
    heard = [detector.feed(pcm[i : i + CHUNK]) for i in range(0, len(pcm), CHUNK)]
    heard.append(detector.finish())
    return [at for at in heard if at is not None]
