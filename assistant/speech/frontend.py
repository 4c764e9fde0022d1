"""The audio front end: speex noise suppression and automatic gain on the microphone's audio.

``pyspeex-noise`` (MIT; what Home Assistant's Assist pipeline uses) runs speexdsp's
preprocessor on 10 ms frames of 16 kHz int16 mono. The settings follow Home Assistant's:
``speech.noise_suppression`` 0-4 is 15 dB of suppression per step (0: off) and
``speech.auto_gain_dbfs`` 0-31 is the gain control's target, x300 as speex's level (0: off).

:class:`FrontEnd` takes frames of any length (the microphone's 30 ms) and returns the
cleaned audio as it completes 10 ms frames: at most 10 ms is held back. The recognizer
hears the cleaned audio; the wake-word model does too unless ``speech.wake_hears = "raw"``:
``bench wake`` measured both (docs/voice.md).

pyspeex-noise 2.0.1 passes the gain level to speex as a ``double`` where speex reads a
``float``: on a little-endian machine speex reads the double's low four bytes. A target
given as an ordinary number reads as 0.0 and gain control silences everything.
:func:`_speex_level` hands it a double whose low four bytes are the float (its high bytes
keep it positive, which turns gain control on); a test proves the gain lands on target, so
a fixed release fails that test instead of silencing microphones.
"""

from __future__ import annotations

import struct
import sys
import time
from typing import Any

from ..errors import ModelError

__all__ = ["FRAME_BYTES", "FrontEnd", "make_front_end"]

RATE = 16000
FRAME_BYTES = 2 * RATE // 100  # 10 ms of int16 mono: what speex takes
DB_PER_STEP = 15  # noise_suppression 1-4 → -15 … -60 dB
LEVEL_PER_DBFS = 300  # auto_gain_dbfs 1-31 → speex's target level 300 … 9300


def _speex_level(level: float) -> float:
    """The double pyspeex-noise 2.0.1 needs for a gain target of ``level`` (see above)."""
    low = struct.unpack("<I", struct.pack("<f", level))[0]
    return float(struct.unpack("<d", struct.pack("<Q", (0x40000000 << 32) | low))[0])


class FrontEnd:
    """Noise suppression and automatic gain on a stream of 16 kHz int16 mono audio."""

    def __init__(self, noise_suppression: int = 0, auto_gain_dbfs: int = 0) -> None:
        if not 0 <= noise_suppression <= 4:
            raise ValueError(f"noise_suppression {noise_suppression}: 0-4")
        if not 0 <= auto_gain_dbfs <= 31:
            raise ValueError(f"auto_gain_dbfs {auto_gain_dbfs}: 0-31")
        self.noise_suppression = noise_suppression
        self.auto_gain_dbfs = auto_gain_dbfs
        self.cpu_s = 0.0  # process time spent cleaning (all threads, as the heat budget sees)
        self.audio_s = 0.0  # audio cleaned
        self._held = b""
        self._speex: Any = None
        if self.enabled:
            self._speex = self._make()

    @property
    def enabled(self) -> bool:
        return bool(self.noise_suppression or self.auto_gain_dbfs)

    def describe(self) -> str:
        if not self.enabled:
            return "off"
        parts = []
        if self.noise_suppression:
            parts.append(f"noise suppression {self.noise_suppression} (-{self.db} dB)")
        if self.auto_gain_dbfs:
            parts.append(f"auto gain {self.auto_gain_dbfs} dBFS")
        return ", ".join(parts)

    @property
    def db(self) -> int:
        return DB_PER_STEP * self.noise_suppression

    def _make(self) -> Any:
        if sys.byteorder != "little":  # pragma: no cover - the Pi and x86 are little-endian
            raise ModelError("the audio front end needs a little-endian machine")
        try:
            from pyspeex_noise import AudioProcessor
        except ImportError as exc:
            raise ModelError(
                f"the audio front end needs pyspeex-noise ({exc}); reinstall with "
                "scripts/install.sh, or set speech.noise_suppression = 0 and "
                "speech.auto_gain_dbfs = 0"
            ) from exc
        gain = _speex_level(LEVEL_PER_DBFS * self.auto_gain_dbfs) if self.auto_gain_dbfs else 0.0
        return AudioProcessor(gain, -self.db)

    def reset(self) -> None:
        """Start again (a new stream: another microphone, another test clip)."""
        self._held = b""
        if self.enabled:
            self._speex = self._make()

    def process(self, pcm: bytes) -> bytes:
        """The cleaned audio of every whole 10 ms frame so far (the rest waits)."""
        if not self.enabled:
            return pcm
        began = time.process_time()
        data = self._held + pcm
        whole = len(data) - len(data) % FRAME_BYTES
        self._held = data[whole:]
        run = self._speex.process_10ms
        out = b"".join(run(data[i : i + FRAME_BYTES]) for i in range(0, whole, FRAME_BYTES))
        self.cpu_s += time.process_time() - began
        self.audio_s += whole / 2 / RATE
        return out

    def clean(self, pcm: bytes) -> bytes:
        """A whole clip through a fresh front end (its last partial frame kept as it was)."""
        self.reset()
        out = self.process(pcm)
        return out + (pcm[len(out) :] if self.enabled else b"")

    @property
    def rtf(self) -> float:
        """CPU seconds per second of audio so far."""
        return self.cpu_s / self.audio_s if self.audio_s else 0.0


def make_front_end(speech: Any, rate: int = RATE) -> FrontEnd | None:
    """The configured front end (``config.speech``), or None when it is off. It needs 16 kHz
    audio: a recognizer at another rate gets a :class:`ModelError` naming the fix."""
    front = FrontEnd(speech.noise_suppression, speech.auto_gain_dbfs)
    if not front.enabled:
        return None
    if rate != RATE:
        raise ModelError(
            f"the audio front end works on 16 kHz audio and the recognizer takes {rate} Hz; "
            "set speech.noise_suppression = 0 and speech.auto_gain_dbfs = 0"
        )
    return front
