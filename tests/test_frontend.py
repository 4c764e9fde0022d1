"""The audio front end: pyspeex-noise for real (noise suppression, gain), its 10 ms framing,
its settings, and which consumer of the voice loop hears what."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from assistant.config import Config
from assistant.errors import ModelError
from assistant.speech.frontend import FRAME_BYTES, FrontEnd, make_front_end
from assistant.speech.vad import dbfs
from tests.test_voice import FRAME, FakeWake, frames, speak, sync, tone, word_rig

RATE = 16000


def pink(seconds: float, rms: float, seed: int = 0) -> bytes:
    white = np.random.default_rng(seed).standard_normal(int(seconds * RATE))
    spectrum = np.fft.rfft(white) / np.sqrt(np.maximum(np.arange(len(white) // 2 + 1), 1))
    x = np.fft.irfft(spectrum, len(white))
    return bytes((x / np.sqrt(np.mean(x**2)) * rms).astype("<i2").tobytes())


def bursts(seconds: float, amplitude: int) -> bytes:
    """A 300 Hz tone switching on and off every half second, with a little hiss: speech-like
    enough for speex's gain control, which adapts on what it takes for speech."""
    t = np.arange(int(seconds * RATE)) / RATE
    x = amplitude * np.sin(2 * np.pi * 300 * t) * (np.sin(2 * np.pi * t) > 0)
    x += np.random.default_rng(1).normal(0, amplitude / 50, len(t))
    return x.astype("<i2").tobytes()


def test_off_is_the_raw_audio_and_no_front_end_is_built() -> None:
    front = FrontEnd(0, 0)
    pcm = pink(0.1, 1000)
    assert not front.enabled and front.process(pcm) == pcm and front.describe() == "off"
    assert make_front_end(Config().speech.__class__(noise_suppression=0, auto_gain_dbfs=0)) is None


def test_noise_suppression_takes_a_steady_noise_down_more_at_each_step() -> None:
    noise = np.random.default_rng(0).normal(0, 1000, 3 * RATE).astype("<i2").tobytes()
    down = {n: dbfs(noise[-RATE:]) - dbfs(FrontEnd(n, 0).clean(noise)[-RATE:]) for n in (1, 4)}
    assert down[1] > 10 and down[4] > down[1] + 8, down  # the last second, once adapted


def test_gain_brings_quiet_speech_up_toward_its_target() -> None:
    """Proves the gain works with pyspeex-noise 2.0.1 (whose own float would silence it:
    see frontend.py) and that the target is the setting: a higher target is louder."""
    quiet = bursts(6.0, 300)
    out = {gain: dbfs(FrontEnd(0, gain).clean(quiet)[-2 * RATE :]) for gain in (10, 25)}
    assert out[10] > dbfs(quiet[-2 * RATE :]) + 6, out
    assert out[25] > out[10] + 3, out


def test_frames_of_any_length_come_out_as_whole_10ms_frames_in_order() -> None:
    pcm = pink(1.0, 1000)
    whole, pieces = FrontEnd(2, 0), FrontEnd(2, 0)
    out = b"".join(pieces.process(pcm[i : i + 1234]) for i in range(0, len(pcm), 1234))
    assert out == whole.process(pcm)  # the same audio whatever the microphone's chunks
    assert len(out) == len(pcm) - len(pcm) % FRAME_BYTES
    assert pieces.audio_s == pytest.approx(len(out) / 2 / RATE) and pieces.rtf > 0


def test_a_front_end_for_another_rate_or_setting_is_a_clear_error() -> None:
    speech = dataclasses.replace(Config().speech, noise_suppression=2)
    with pytest.raises(ModelError, match=r"16 kHz.*speech\.noise_suppression = 0"):
        make_front_end(speech, 8000)
    with pytest.raises(ValueError, match="noise_suppression 5"):
        FrontEnd(5, 0)


class HearingWake(FakeWake):
    """Keeps what it was fed."""

    def __init__(self) -> None:
        super().__init__()
        self.heard = b""

    def feed(self, pcm: bytes) -> float | None:
        self.heard += pcm
        return super().feed(pcm)


@pytest.mark.parametrize("wake_hears", ["raw", "clean"])
@sync
async def test_the_wake_word_hears_what_is_configured_and_the_front_end_every_frame(
    wake_hears: str,
) -> None:
    loop, _voice, clock, _recognizer, _ = word_rig([])
    speech = dataclasses.replace(loop.config.speech, noise_suppression=2, wake_hears=wake_hears)
    loop.config = dataclasses.replace(loop.config, speech=speech)
    loop.wake = wake = HearingWake()
    loop.ears.front_end = front = FrontEnd(2, 0)
    pcm = pink(0.6, 1000) + tone(0.3)
    await speak(loop, clock, frames(pcm))
    cleaned = FrontEnd(2, 0).process(pcm)
    assert wake.heard == (cleaned if wake_hears == "clean" else pcm)
    assert wake.heard != (pcm if wake_hears == "clean" else cleaned)
    assert front.audio_s == pytest.approx(len(pcm) / 2 / RATE)
    assert len(pcm) % FRAME == 0
