"""The echo canceller (WebRTC's AEC3 through livekit, set up as PipeWire's echo-cancel
module sets it up): the device's own sound taken out of the microphone, the person's kept."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.speech.echo import RATE, EchoCanceller, available

pytestmark = pytest.mark.skipif(not available(), reason="pip install 'qwen-assistant[aec]'")


def pcm(x: np.ndarray) -> bytes:
    return bytes(np.clip(x, -32768, 32767).astype("<i2").tobytes())


def rms(data: bytes) -> float:
    return float(np.sqrt(np.mean(np.frombuffer(data, dtype="<i2").astype(np.float64) ** 2)))


def voice_like(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A voiced sound: harmonics of a gliding 110-160 Hz pitch in syllables (4 a second),
    made here (nothing committed); noise suppression keeps it as it keeps a voice."""
    t = np.arange(int(seconds * RATE)) / RATE
    pitch = 135 + 25 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    sound = sum(np.sin(k * phase) / k for k in range(1, 20))
    syllables = np.sin(2 * np.pi * 2 * t) ** 2
    return 3000 * sound * syllables


def test_the_devices_own_voice_is_taken_out_once_the_canceller_has_heard_some() -> None:
    rng = np.random.default_rng(3)
    played = voice_like(rng, 8.0)
    lag = RATE // 20  # 50 ms from the speaker to the microphone, with a short room tail
    tail = np.exp(-np.arange(lag) / 150) * 0.1
    tail[0] = 1.0
    echo = np.convolve(np.concatenate([np.zeros(lag), played]), tail)[: len(played)]
    mic = pcm(0.7 * echo)
    out = EchoCanceller().cancel(mic, pcm(played))
    assert len(out) == len(mic)
    last = 2 * 3 * RATE  # the last 3 s: the canceller has had 5 s to adapt
    assert rms(out[-last:]) < 0.1 * rms(mic[-last:])  # more than 20 dB taken out


def test_the_person_is_kept_when_the_device_is_silent() -> None:
    rng = np.random.default_rng(4)
    person = pcm(voice_like(rng, 4.0))
    out = EchoCanceller().cancel(person, bytes(len(person)))
    last = 2 * 2 * RATE
    assert rms(out[-last:]) > 0.5 * rms(person[-last:])
