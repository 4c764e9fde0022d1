"""Voice activity: where an utterance starts and ends, from 30 ms frames (pure, no clock).

An energy detector with an adaptive noise floor: a frame is speech when it is louder than
``floor_dbfs`` and ``margin_db`` above the running noise level. An utterance starts after
``start_frames`` speech frames in a row (with ``preroll`` frames kept, so the first syllable
is not cut) and ends after ``trailing_silence_s`` without speech.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from .audio import FRAME_S

__all__ = ["Segment", "Segmenter", "dbfs"]


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
