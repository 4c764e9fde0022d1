"""``qwen-assistant bench wake``: a wake-word model against the transcript matcher.

Positives: the wake word said by the installed piper voice (with piper's own variation) in
four sentences at three speeds, each clean and again under pink noise 10 dB below the
speech. Negatives: ``minutes`` of audio without the wake word: two thirds piper reading
ordinary sentences at the three speeds, one sixth music-like chords, one sixth noise
(white, pink, brown). The wake-word detector listens to the negatives as one stream (a
fresh detector for each positive); the transcript matcher (``voice.wake = "phrase"``: the
recognizer on everything, and the fuzzy phrase match) runs on the first
``matcher_minutes`` of the same negatives, so the two costs compare per second of audio.
CPU is process time (all threads), as the heat budget sees it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..config import Config
from .audio import resample
from .stt import RATE, make_recognizer
from .tts import PiperTTS
from .wake import BUILTIN, OPEN_BUILTIN, PhraseWake, detections, make_wake

__all__ = ["TARGETS", "bench_wake", "render"]

SPEEDS = (0.85, 1.0, 1.2)
POSITIVES = (
    "{word}.",
    "{word}, what time is it?",
    "{word}, turn on the kitchen light.",
    "{word}, what is the capital of France?",
)
NEGATIVES = (
    "The weather today is mild, with a light breeze from the west.",
    "Tomorrow there may be some rain in the afternoon.",
    "Please remember to water the plants on the balcony.",
    "The train to the city leaves every twenty minutes.",
    "I think the meeting was moved to Thursday morning.",
    "Could you pass me the salt and the pepper, please?",
    "The museum opens at nine and closes at six.",
    "She bought fresh bread, some cheese and a bottle of juice.",
    "Our team won the match by two goals.",
    "The library has a new collection of old maps.",
    "Turn left at the bakery and walk for five minutes.",
    "He has been learning to play the guitar since spring.",
    "The children built a sand castle near the water.",
    "Dinner will be ready in about half an hour.",
    "This soup needs a little more salt.",
    "The robot cleaned the kitchen floor this morning.",
    "My neighbour has a very friendly old dog.",
    "We should book the hotel before the prices go up.",
    "The concert in the park starts at eight tonight.",
    "Can you tell me how to get to the station?",
)
#: the issue's targets
TARGETS = {"false_reject_rate": 0.05, "false_accepts_per_hour": 0.5, "idle_cpu_ratio": 0.1}


def _noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(n)
    if kind == "white":
        out = white
    elif kind == "brown":
        out = np.cumsum(white)
        out -= np.convolve(out, np.ones(801) / 801, mode="same")  # no drift to the rails
    else:  # pink: white shaped to 1/f
        spectrum = np.fft.rfft(white)
        spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
        out = np.fft.irfft(spectrum, n)
    return out / (np.sqrt(np.mean(out**2)) or 1.0)


def _under_noise(pcm: bytes, rng: np.random.Generator, snr_db: float = 10.0) -> bytes:
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    level = np.sqrt(np.mean(x[np.abs(x) > 500] ** 2)) if np.any(np.abs(x) > 500) else 1000.0
    mixed = x + _noise("pink", len(x), rng) * level / 10 ** (snr_db / 20)
    return np.clip(mixed, -32768, 32767).astype("<i2").tobytes()


def _chords(seconds: float, rng: np.random.Generator) -> bytes:
    """Music-like audio: triads from a major scale, 0.4 s each, with an envelope."""
    scale = 220.0 * 2 ** (np.array([0, 2, 4, 5, 7, 9, 11, 12, 14, 16, 17, 19]) / 12)
    note = int(0.4 * RATE)
    t = np.arange(note) / RATE
    envelope = np.minimum(1.0, t / 0.02) * np.exp(-3 * t)
    out = []
    for _ in range(int(seconds / 0.4)):
        root = int(rng.integers(0, 5))
        tone = sum(np.sin(2 * np.pi * scale[root + k] * t) for k in (0, 2, 4))
        out.append(3000 * envelope * tone)
    return np.concatenate(out).astype("<i2").tobytes()


def _say(tts: PiperTTS, text: str, speed: float) -> bytes:
    tts.speed = speed
    return resample(b"".join(tts.synthesize(text)), tts.sample_rate, RATE)


def _cpu(detector: Any, pcm: bytes) -> tuple[int, float]:
    """Detections and process CPU seconds of one detector over ``pcm`` as a stream."""
    began = time.process_time()
    hits = len(detections(detector, pcm))
    return hits, time.process_time() - began


def bench_wake(
    config: Config,
    *,
    word: str = "",
    engine: str = "",
    minutes: float = 30.0,
    matcher_minutes: float = 5.0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    vc = config.voice
    engine = engine or vc.wake_engine
    word = word or vc.wake_word
    phrase = (OPEN_BUILTIN if engine == "openwakeword" else BUILTIN).get(word, word)
    say = " ".join(w.capitalize() for w in phrase.split())
    rng = np.random.default_rng(7)
    tts = PiperTTS.from_config(config)
    tts.load()
    step = progress or (lambda _what: None)

    missed, total = [], 0
    for template in POSITIVES:
        for speed in SPEEDS:
            clean = bytes(2 * RATE // 3) + _say(tts, template.format(word=say), speed)
            clean += bytes(RATE)
            for noisy in (False, True):
                pcm = _under_noise(clean, rng) if noisy else clean
                hits, _ = _cpu(make_wake(engine, word, vc.wake_threshold), pcm)
                total += 1
                if not hits:
                    missed.append(
                        f"{template.format(word=say)} ×{speed}{' noise' if noisy else ''}"
                    )
                step("positive")

    parts, seconds, i = [], 0.0, 0
    while seconds < minutes * 60 * 2 / 3:  # speech without the wake word
        pcm = _say(tts, NEGATIVES[i % len(NEGATIVES)], SPEEDS[i % len(SPEEDS)]) + bytes(RATE // 2)
        parts.append(pcm)
        seconds += len(pcm) / 2 / RATE
        i += 1
        step("negative speech")
    parts.append(_chords(minutes * 60 / 6, rng))
    for kind in ("white", "pink", "brown"):
        n = int(minutes * 60 / 18 * RATE)
        parts.append((_noise(kind, n, rng) * 2000).astype("<i2").tobytes())
    negatives = b"".join(parts)
    audio_s = len(negatives) / 2 / RATE
    step("negatives ready")
    false_accepts, wake_cpu = _cpu(make_wake(engine, word, vc.wake_threshold), negatives)
    step("wake word over the negatives")
    sample = negatives[: int(matcher_minutes * 60 * RATE) * 2]
    matcher = PhraseWake(make_recognizer(config), vc.wake_phrase)
    _, matcher_cpu = _cpu(matcher, sample)
    step("transcript matcher")
    sample_s = len(sample) / 2 / RATE
    wake_rtf, matcher_rtf = wake_cpu / audio_s, matcher_cpu / sample_s
    return {
        "word": word,
        "engine": engine,
        "positives": total,
        "false_rejects": len(missed),
        "false_reject_rate": round(len(missed) / total, 4),
        # half the positives are clean, half under pink noise 10 dB below the speech
        "false_reject_rate_clean": round(sum("noise" not in m for m in missed) / (total / 2), 4),
        "false_reject_rate_noise": round(sum("noise" in m for m in missed) / (total / 2), 4),
        "negatives_minutes": round(audio_s / 60, 1),
        "false_accepts": false_accepts,
        "false_accepts_per_hour": round(false_accepts / (audio_s / 3600), 3),
        "wake_rtf": round(wake_rtf, 5),
        "matcher_minutes": round(sample_s / 60, 1),
        "matcher_rtf": round(matcher_rtf, 4),
        "idle_cpu_ratio": round(wake_rtf / matcher_rtf, 4) if matcher_rtf else None,
        "targets": TARGETS,
        "missed": missed,
    }


def render(result: dict[str, Any]) -> str:
    lines = [f"{key:<24} {value}" for key, value in result.items() if key not in ("missed",)]
    lines += [f"  missed: {m}" for m in result["missed"]]
    return "\n".join(lines)
