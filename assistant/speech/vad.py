"""Voice activity: where an utterance starts and ends, from 30 ms frames (pure, no clock).

An energy detector with an adaptive noise floor: a frame is speech when it is louder than
``floor_dbfs`` and ``margin_db`` above the running noise level. An utterance starts after
``start_frames`` speech frames in a row (with ``preroll`` frames kept, so the first syllable
is not cut) and ends after ``trailing_silence_s`` without speech.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ModelError
from .audio import FRAME_S

__all__ = ["Segment", "Segmenter", "SileroSegmenter", "dbfs", "make_segmenter", "silero_model"]

log = logging.getLogger(__name__)


def dbfs(pcm: bytes) -> float:
    """RMS level of int16 PCM in dB relative to full scale (silence: -120)."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    if not len(x):
        return -120.0
    rms = math.sqrt(float(np.mean(x * x)))
    return 20 * math.log10(rms / 32768) if rms > 0 else -120.0


@dataclass
class Segment:
    """What :meth:`Segmenter.feed` reports for a frame."""

    event: str  # "start" (with the pre-roll as pcm), "speech", "end", "" (silence)
    pcm: bytes = b""
    voiced: bool = False  # this frame itself is speech


class Segmenter:
    def __init__(
        self,
        *,
        trailing_silence_s: float = 0.5,
        floor_dbfs: float = -45.0,
        margin_db: float = 12.0,
        start_frames: int = 3,
        preroll_s: float = 0.3,
        max_s: float = 20.0,
    ) -> None:
        self.floor_dbfs = floor_dbfs
        self.margin_db = margin_db
        self.start_frames = start_frames
        self.end_frames = max(1, round(trailing_silence_s / FRAME_S))
        self.max_frames = round(max_s / FRAME_S)
        self._preroll: deque[bytes] = deque(maxlen=max(start_frames, round(preroll_s / FRAME_S)))
        self.noise_dbfs = -70.0
        self.in_speech = False
        self._run = 0  # consecutive speech frames (before start) or silent frames (after)
        self._frames = 0

    def is_speech(self, pcm: bytes) -> bool:
        level = dbfs(pcm)
        speech = level > max(self.floor_dbfs, self.noise_dbfs + self.margin_db)
        if not speech:  # follow the room's noise, slowly
            self.noise_dbfs += 0.05 * (max(level, -90.0) - self.noise_dbfs)
        return speech

    def feed(self, pcm: bytes) -> Segment:
        speech = self.is_speech(pcm)
        if not self.in_speech:
            self._preroll.append(pcm)
            self._run = self._run + 1 if speech else 0
            if self._run >= self.start_frames:
                self.in_speech, self._run, self._frames = True, 0, 0
                pre = b"".join(self._preroll)
                self._preroll.clear()
                return Segment("start", pre, voiced=True)
            return Segment("", voiced=speech)
        self._frames += 1
        self._run = 0 if speech else self._run + 1
        if self._run >= self.end_frames or self._frames >= self.max_frames:
            self.reset()
            return Segment("end", pcm, voiced=speech)
        return Segment("speech", pcm, voiced=speech)

    def reset(self) -> None:
        self.in_speech, self._run, self._frames = False, 0, 0
        self._preroll.clear()


def silero_model() -> Path:
    """Silero VAD v6 as ONNX, the copy faster-whisper ships (MIT)."""
    try:
        import faster_whisper
    except ImportError:
        raise ModelError(
            "the Silero VAD model comes with faster-whisper, which is not installed; "
            "pip install 'qwen-assistant[whisper]', or set speech.vad = \"energy\""
        ) from None
    path = Path(faster_whisper.__file__).parent / "assets" / "silero_vad_v6.onnx"
    if not path.is_file():
        raise ModelError(f'{path}: missing from faster-whisper; set speech.vad = "energy"')
    return path


class SileroSegmenter(Segmenter):
    """The same utterance rules, with Silero's neural VAD deciding what is speech: a steady
    fan or a hall's murmur is not speech however loud it is.

    Silero v6 (ONNX, on the onnxruntime piper already uses) takes 512-sample windows with
    the 64 samples before them as context, and carries its state from window to window.
    Each 30 ms frame is judged by the latest window's probability, with hysteresis:
    ``threshold`` to start speech, 0.15 less to stay in it.
    """

    WINDOW, CONTEXT = 512, 64  # samples

    def __init__(self, *, threshold: float = 0.5, **options: float) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        import onnxruntime

        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = opts.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(silero_model()), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self.threshold = threshold
        self._held = np.zeros(0, dtype=np.float32)
        self._context = np.zeros(self.CONTEXT, dtype=np.float32)
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self.probability = 0.0

    def is_speech(self, pcm: bytes) -> bool:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        self._held = np.concatenate([self._held, samples])
        while len(self._held) >= self.WINDOW:
            window, self._held = self._held[: self.WINDOW], self._held[self.WINDOW :]
            x = np.concatenate([self._context, window])[None, :]
            prob, self._h, self._c = self._session.run(
                None, {"input": x, "h": self._h, "c": self._c}
            )
            self._context = window[-self.CONTEXT :]
            self.probability = float(np.ravel(prob)[0])
        return self.probability >= (self.threshold - 0.15 if self.in_speech else self.threshold)


def make_segmenter(kind: str, trailing_silence_s: float) -> Segmenter:
    """``speech.vad``: "silero" (neural; the energy detector, with one warning, when its
    model is not installed) or "energy"."""
    if kind == "silero":
        try:
            return SileroSegmenter(trailing_silence_s=trailing_silence_s)
        except ModelError as exc:
            log.warning("speech.vad: %s; using the energy VAD", exc)
    return Segmenter(trailing_silence_s=trailing_silence_s)
