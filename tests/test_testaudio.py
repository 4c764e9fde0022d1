"""bench wake's audio without models: noises, mixing at an SNR, the clips' plan, the word
error rate (the voices themselves are exercised by the bench's slow test)."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.speech.testaudio import NOISES, SPEEDS, Speaker, level, mix, noise, scaled, unit, wer
from assistant.speech.vad import dbfs
from assistant.speech.wakeclips import (
    FAR_DB,
    LEAD_S,
    SNRS,
    TEMPLATES,
    device_voice,
    playback,
    positives,
)

RATE = 16000


def voice(name: str) -> Speaker:
    """A "voice" that says anything as a tone whose length follows the text."""

    def say(text: str, speed: int) -> bytes:
        t = np.arange(int(RATE * len(text) / 40 / SPEEDS[speed])) / RATE
        return (8000 * np.sin(2 * np.pi * 200 * t)).astype("<i2").tobytes()

    return Speaker(name, say)


TALK = [voice("t").say("some words said here", i % 3) for i in range(6)]


@pytest.mark.parametrize("kind", [*NOISES, "white"])
def test_every_noise_has_unit_level_and_the_length_asked(kind: str) -> None:
    x = noise(kind, RATE, np.random.default_rng(1), TALK)
    assert len(x) == RATE and np.sqrt(np.mean(x**2)) == pytest.approx(1.0, rel=1e-6)


def test_talking_noises_need_talk() -> None:
    with pytest.raises(ValueError, match="babble noise needs speech"):
        noise("babble", RATE, np.random.default_rng(1))


@pytest.mark.parametrize("snr", [10.0, 5.0, 0.0])
def test_mix_puts_the_noise_the_asked_db_under_the_speech(snr: float) -> None:
    speech = TALK[0]
    bed = noise("pink", len(speech) // 2, np.random.default_rng(2))
    noisy = np.frombuffer(mix(speech, bed, snr), dtype="<i2").astype(np.float64)
    added = noisy - np.frombuffer(speech, dtype="<i2")
    measured = 20 * np.log10(level(speech) / np.sqrt(np.mean(added**2)))
    assert measured == pytest.approx(snr, abs=0.2)
    assert dbfs(scaled(speech, -20.0)) == pytest.approx(dbfs(speech) - 20, abs=0.1)


def test_the_positives_cover_every_voice_template_speed_distance_and_condition() -> None:
    voices = [voice("a"), voice("b")]
    clips = positives(voices, "Okay Nabu", TALK, np.random.default_rng(3), lambda _s: None)
    per_voice = len(TEMPLATES) * len(SPEEDS)
    assert len(clips) == len(voices) * per_voice * (1 + len(SNRS))
    conditions = [cond for _, cond, _ in clips]
    assert conditions[: 1 + len(SNRS)] == ["clean", "10 dB", "5 dB"]
    clean = [(what, pcm) for what, cond, pcm in clips if cond == "clean"]
    far = [what.endswith(" far") for what, _ in clean]
    assert far == [i % 2 == 1 for i in range(len(clean))]  # near and far in turn
    (near_what, near), (far_what, far_pcm) = clean[0], clean[1]
    assert near_what.startswith("a: Okay Nabu.") and far_what.endswith("far")
    lead = 2 * int(LEAD_S * RATE)
    assert near[:lead] == bytes(lead)  # the clean clip's lead is silence; the noisy ones hum
    assert dbfs(far_pcm[lead:]) < dbfs(voice("a").say("Okay Nabu.", 1)) + FAR_DB / 2
    noisy = next(pcm for _, cond, pcm in clips if cond == "5 dB")
    assert dbfs(noisy[:lead]) > -60


def test_playback_is_the_devices_voice_at_unit_level() -> None:
    voices = [voice("piper"), voice("espeak en-us")]
    track = device_voice(TALK, voices)
    x = playback(track, 3 * RATE)
    assert len(x) == 3 * RATE and np.sqrt(np.mean(x**2)) == pytest.approx(1.0, rel=1e-6)
    assert len(track) < 3 * RATE  # repeated to the length asked
    third = len(track) // 3
    later = playback(track, 3 * RATE, start=third)  # a stretch from a third of the way in
    rolled = np.tile(np.roll(track, -third), 3 * RATE // len(track) + 1)[: 3 * RATE]
    assert np.array_equal(later, unit(rolled))


@pytest.mark.parametrize(
    ("reference", "heard", "rate"),
    [
        ("What time is it?", "what time is it", 0.0),
        ("What time is it?", "What tine is it?", 0.25),
        ("Turn on the light.", "Turn on the kitchen light.", 0.25),
        ("Turn on the light.", "", 1.0),
    ],
)
def test_word_error_rate(reference: str, heard: str, rate: float) -> None:
    assert wer(reference, heard) == pytest.approx(rate)
