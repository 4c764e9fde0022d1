"""Speech-to-text behind one interface.

A :class:`Recognizer` takes 16 kHz int16 mono frames: ``accept(pcm)`` returns the partial
text so far (streaming engines) and ``final()`` ends the utterance. Two engines:

- ``vosk`` (default): streaming Kaldi, partial results as you speak; its own endpointing
  can end an utterance too. A grammar (a list of phrases) restricts it — the wake phrase.
- ``whisper``: faster-whisper (tiny.en, int8 on the CPU) on the whole utterance once the
  voice-activity detector says it ended; Silero VAD (``vad_filter``) trims the edges. Its
  encoder sees ``speech.whisper_window_s`` of audio (:func:`window`; 30 s, whisper's own).

:class:`~assistant.speech.ears.Ears` cut utterances out of the microphone's frames and hand
them to a recognizer.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

import numpy as np

from ..config import Config, Speech
from ..errors import ModelError

__all__ = ["Recognizer", "VoskRecognizer", "WhisperRecognizer", "make_recognizer"]

log = logging.getLogger(__name__)

RATE = 16000
FRAMES_PER_S = 100  # whisper's log-mel frames


class Recognizer(Protocol):
    """Speech-to-text on one model: 16 kHz int16 audio in, its transcript out (``accept``:
    the partial one so far; ``final``: the utterance's); ``sibling``: a state of its own on
    the same model."""

    path: Path
    rate: int
    streaming: bool

    def accept(self, pcm: bytes) -> str: ...

    def final(self) -> str: ...

    def reset(self) -> None: ...

    def sibling(self) -> Recognizer: ...

    def guess(self) -> Future[str]:
        """At a pause, what was said so far, the utterance going on: a streaming engine
        settles what it decoded (done at once); whisper transcribes the audio so far on
        its thread (``speech.pause_s``, docs/voice.md)."""
        ...


def done(text: str) -> Future[str]:
    """``text`` as a future already done (a guess that needs no more work)."""
    future: Future[str] = Future()
    future.set_result(text)
    return future


def model_kind(path: Path) -> str:
    """ "vosk", "whisper" or "" for a model directory."""
    if (path / "model.bin").is_file():
        return "whisper"
    if (path / "am").is_dir() or (path / "conf" / "model.conf").is_file():
        return "vosk"
    return ""


def resolve_stt_model(config: Config) -> Path:
    if config.speech.stt_model not in ("", "auto"):
        return Path(config.speech.stt_model)
    from ..models.store import ModelStore

    return ModelStore(config.paths.models_dir).path_for("stt", config.speech.language)


def _check_language(config: Config, path: Path) -> None:
    """A catalog model for another language than ``speech.language`` is one line with the
    fix (a model the catalog does not know is taken as it is)."""
    from ..language import LANGUAGES
    from ..models.store import ModelStore

    want = config.speech.language
    have = ModelStore(config.paths.models_dir).language_of(path)
    if have is not None and have != want:
        raise ModelError(
            f"{path} is a speech-to-text model for {LANGUAGES[have].name} but "
            f'speech.language is "{want}"; run `qwen-assistant models fetch stt` for '
            f'{LANGUAGES[want].name}, or set speech.language = "{have}"'
        )


class VoskRecognizer:
    streaming = True

    def __init__(
        self, path: str | Path, *, rate: int = RATE, grammar: Sequence[str] | None = None
    ) -> None:
        try:
            import vosk
        except ImportError as exc:
            raise ModelError(f"vosk is not installed ({exc}); run scripts/setup.sh") from None
        vosk.SetLogLevel(-1)
        self.path = Path(path)
        if model_kind(self.path) != "vosk":
            raise ModelError(f"{self.path}: not a Vosk model directory (no am/ or conf/)")
        try:
            self._model = vosk.Model(str(self.path))
        except Exception as exc:  # noqa: BLE001 - vosk raises plain Exception
            raise ModelError(f"{self.path}: vosk could not load it ({exc})") from None
        self.rate = rate
        self._grammar = json.dumps([*grammar, "[unk]"]) if grammar else None
        self._done: list[str] = []
        self._endpoints = 0  # pieces vosk's endpointing closed, empty ones included
        self._new()

    def sibling(self) -> VoskRecognizer:
        """A recognizer of its own (its own utterance) on the same loaded model: Kaldi
        recognizers may share one model across threads."""
        twin = copy.copy(self)  # the model and settings; the utterance state is new
        twin._done, twin._endpoints = [], 0
        twin._new()
        return twin

    def _new(self) -> None:
        import vosk

        if self._grammar:
            self._rec = vosk.KaldiRecognizer(self._model, self.rate, self._grammar)
        else:
            self._rec = vosk.KaldiRecognizer(self._model, self.rate)

    def accept(self, pcm: bytes) -> str:
        if self._rec.AcceptWaveform(pcm):  # vosk's own endpoint: keep the piece, go on
            self._endpoints += 1
            text = json.loads(self._rec.Result()).get("text", "")
            if text:
                self._done.append(text)
            return " ".join(self._done)
        partial = json.loads(self._rec.PartialResult()).get("partial", "")
        return " ".join([*self._done, partial]).strip()

    @property
    def endpointed(self) -> bool:
        """Vosk's endpointing closed at least one piece of the current utterance."""
        return self._endpoints > 0

    def guess(self) -> Future[str]:
        return done(self.settle())

    def settle(self) -> str:
        """At a pause: close the piece being decoded now (Kaldi's partial result lags the
        audio by a word or so; its final one does not) and go on with the utterance; the
        text so far. What follows the pause is decoded as a piece of its own."""
        last = json.loads(self._rec.FinalResult()).get("text", "")
        if last:
            self._done.append(last)
        return " ".join(self._done)

    def final(self) -> str:
        last = json.loads(self._rec.FinalResult()).get("text", "")
        text = " ".join([*self._done, last]).strip()
        self._done, self._endpoints = [], 0
        return text

    def reset(self) -> None:
        self._done, self._endpoints = [], 0
        self._rec.Reset()


class WhisperRecognizer:
    streaming = False

    def __init__(
        self,
        path: str | Path,
        *,
        rate: int = RATE,
        threads: int = 0,
        language: str = "en",
        window_s: float = Speech.whisper_window_s,  # speech.whisper_window_s's default
    ) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise ModelError(
                f"faster-whisper is not installed ({exc}); pip install 'qwen-assistant[whisper]'"
            ) from None
        self.path = Path(path)
        if model_kind(self.path) != "whisper":
            raise ModelError(f"{self.path}: not a faster-whisper model directory (no model.bin)")
        try:
            self._model = _windowed(WhisperModel)(
                str(self.path), device="cpu", compute_type="int8", cpu_threads=threads
            )
            self._model.window_frames = round(window_s * FRAMES_PER_S)
        except Exception as exc:  # noqa: BLE001 - ctranslate2 raises RuntimeError and others
            raise ModelError(f"{self.path}: faster-whisper could not load it ({exc})") from None
        if language != "en" and not self._model.model.is_multilingual:
            raise ModelError(
                f"{self.path} is an English-only whisper model but speech.language is "
                f'"{language}"; point speech.stt_model at a multilingual one (tiny, base)'
            )
        self.language = language
        self.rate = rate
        self._chunks: list[bytes] = []
        self._worker = ThreadPoolExecutor(1, "whisper")  # one thread: one ctranslate2 state
        self.busy_s = 0.0  # seconds spent transcribing (for the real-time factor)

    def sibling(self) -> WhisperRecognizer:
        """A recognizer of its own (its own utterance) on the same model and the same
        worker thread, so transcriptions for several users take turns on one model."""
        twin = copy.copy(self)  # the model and its worker; the utterance state is new
        twin._chunks, twin.busy_s = [], 0.0
        return twin

    def accept(self, pcm: bytes) -> str:
        self._chunks.append(pcm)
        return ""

    def guess(self) -> Future[str]:
        return self.submit(self.snapshot())

    def submit(self, pcm: bytes) -> Future[str]:
        """Transcribe ``pcm`` on the recognizer's own thread."""
        return self._worker.submit(self.transcribe, pcm)

    def snapshot(self) -> bytes:
        """The utterance so far (for a transcription started before it ends)."""
        return b"".join(self._chunks)

    def final(self) -> str:
        pcm, self._chunks = b"".join(self._chunks), []
        return self.submit(pcm).result()

    def transcribe(self, pcm: bytes) -> str:
        if len(pcm) < self.rate // 5:  # under 0.1 s: nothing to hear
            return ""
        began = time.monotonic()
        try:
            return self._transcribe(pcm)
        finally:
            self.busy_s += time.monotonic() - began

    def _transcribe(self, pcm: bytes) -> str:
        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        segments, _ = self._model.transcribe(
            audio,
            language=self.language,
            beam_size=1,
            vad_filter=True,
            condition_on_previous_text=False,
            without_timestamps=True,
            # a short window can send whisper round a loop; no one says 8 tokens a second
            max_new_tokens=int(10 + 8 * len(audio) / self.rate),
        )
        return " ".join(s.text.strip() for s in segments).strip()

    def reset(self) -> None:
        self._chunks = []


def window(features: np.ndarray, frames: int) -> np.ndarray:
    """The log-mel frames whisper's encoder sees: faster-whisper pads every segment with
    zeros to whisper's 30 s; this keeps ``frames`` of it, or the sound and half of
    ``frames`` after it when the sound is longer (whole seconds, never past 30 s).

    The encoder's work follows its length: 10 s of it takes a third of the time of 30 s,
    so a question is transcribed in 0.13 s instead of 0.34, but whisper was trained on
    30 s and hears worse with less (the default stays 30). A window that ends right after
    the sound sends tiny.en into loops. All measured in docs/voice.md.
    """
    heard = np.any(features != 0.0, axis=tuple(range(features.ndim - 1)))  # per frame
    sound = np.flatnonzero(heard)
    end = int(sound[-1]) + 1 if len(sound) else 0
    keep = max(frames, end + frames // 2)
    keep = min(features.shape[-1], -(-keep // FRAMES_PER_S) * FRAMES_PER_S)
    return features[..., :keep]


_WINDOWED: dict[type, type] = {}


def _windowed(base: type) -> type:
    """faster-whisper's ``WhisperModel`` whose encoder sees :func:`window` of a segment."""
    if base not in _WINDOWED:

        class Windowed(base):  # type: ignore[misc]
            window_frames = 30 * FRAMES_PER_S

            def encode(self, features: np.ndarray) -> object:
                return super().encode(window(features, self.window_frames))

        _WINDOWED[base] = Windowed
    return _WINDOWED[base]


def make_recognizer(
    config: Config, *, engine: str | None = None, model: str | Path | None = None
) -> Recognizer:
    """The configured engine with its model (loading takes a second or two).

    ``speech.stt_engine = "auto"`` is the engine of the model (:func:`model_kind`).
    """
    engine = engine or config.speech.stt_engine
    path = Path(model) if model else resolve_stt_model(config)
    if not path.exists():
        raise ModelError(
            f"{path}: no such speech-to-text model; run `qwen-assistant models fetch stt` "
            "or set speech.stt_model"
        )
    kind = model_kind(path)
    _check_language(config, path)
    if engine == "auto":
        if not kind:
            raise ModelError(
                f"{path}: neither a Vosk nor a faster-whisper model directory; point "
                "speech.stt_model at one, or run `qwen-assistant models fetch stt`"
            )
        engine = kind
    if kind and kind != engine:
        raise ModelError(
            f"{path} is a {kind} model but speech.stt_engine is {engine!r}; "
            f'set speech.stt_engine = "{kind}" or point speech.stt_model at a {engine} model'
        )
    threads = config.llm.n_threads or 0
    if engine == "whisper":
        return WhisperRecognizer(
            path,
            threads=threads,
            language=config.speech.language,
            window_s=config.speech.whisper_window_s,
        )
    return VoskRecognizer(path)
