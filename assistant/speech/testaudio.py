"""Test audio made at run time: voices, noises of a home, and mixing at a signal-to-noise ratio.

The benches (``bench wake``) hear speech from several voices, not one:

- the installed piper voice, with piper's own variation, at three speeds and with its pitch
  moved by sox (``pitch``, in cents);
- espeak-ng's English voices and variants (American, Received Pronunciation, Scottish,
  Caribbean; male and female variants) at three speeds and pitches of its own.

Noises: ``pink`` and ``brown`` (a fan, a hum), ``babble`` (several voices talking at once),
``music`` (chords with an envelope) and ``tv`` (speech over music). :func:`mix` puts a noise
under speech at a given SNR, measured on the speech's loud parts.

Nothing here is committed audio: everything is synthesised (piper, espeak-ng) or computed.
espeak-ng and sox are Debian packages (scripts/lib.sh's TEST_APT).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ModelError
from .audio import resample
from .tts import PiperTTS

__all__ = [
    "ESPEAK_VOICES",
    "NOISES",
    "SPEEDS",
    "Speaker",
    "mix",
    "noise",
    "speakers",
    "unit",
    "wer",
]

RATE = 16000
SPEEDS = (0.85, 1.0, 1.2)
#: espeak-ng voice+variant: American, RP (male 3), Scottish (female 2), Caribbean, US female 3
ESPEAK_VOICES = ("en-us", "en-gb-x-rp+m3", "en-gb-scotland+f2", "en-029", "en-us+f3")
ESPEAK_WPM = 170  # espeak-ng's words per minute at speed 1.0
PITCHES = (35, 50, 65)  # espeak-ng's -p, one per speed, so pitch and speed both vary
PIPER_CENTS = (-150, 0, 150)  # sox pitch shifts of the piper voice, one per speed
NOISES = ("pink", "brown", "babble", "music", "tv")


@dataclass(frozen=True)
class Speaker:
    """One voice: ``say(text, speed_index)`` → 16 kHz int16 mono."""

    name: str
    say: Callable[[str, int], bytes]


def _run(argv: Sequence[str], data: bytes = b"") -> bytes:
    done = subprocess.run(list(argv), input=data, capture_output=True, check=False)
    if done.returncode != 0:  # one line naming the call (espeak-ng -v VOICE): its words
        said = " ".join(done.stderr.decode(errors="replace").split())[-300:]
        raise ModelError(f"{' '.join(argv[:3])} failed: {said}")
    return done.stdout


def _need(tool: str, package: str) -> None:
    if shutil.which(tool) is None:
        raise ModelError(f"{tool} is not installed: `sudo apt-get install {package}`")


def _pitch(pcm: bytes, cents: int) -> bytes:
    if cents == 0:
        return pcm
    raw = ["-t", "raw", "-r", str(RATE), "-e", "signed", "-b", "16", "-c", "1"]
    return _run(["sox", *raw, "-", *raw, "-", "pitch", str(cents)], pcm)


def speakers(tts: PiperTTS | None, espeak: Sequence[str] = ESPEAK_VOICES) -> list[Speaker]:
    """The piper voice (when given) and ``espeak`` voices, each a :class:`Speaker`."""
    out = []
    if tts is not None:
        _need("sox", "sox")

        def piper(text: str, i: int) -> bytes:
            tts.speed = SPEEDS[i]
            pcm = resample(b"".join(tts.synthesize(text)), tts.sample_rate, RATE)
            return _pitch(pcm, PIPER_CENTS[i])

        out.append(Speaker("piper", piper))
    if espeak:
        _need("espeak-ng", "espeak-ng")
        _need("sox", "sox")
    for voice in espeak:

        def espeak_ng(text: str, i: int, voice: str = voice) -> bytes:
            wpm, pitch = round(ESPEAK_WPM * SPEEDS[i]), PITCHES[i]
            wav = _run(
                ["espeak-ng", "-v", voice, "-s", str(wpm), "-p", str(pitch), "--stdout", text]
            )
            raw = ["-t", "raw", "-r", str(RATE), "-e", "signed", "-b", "16", "-c", "1"]
            return _run(["sox", "-t", "wav", "-", *raw, "-"], wav)

        out.append(Speaker(f"espeak {voice}", espeak_ng))
    return out


def unit(x: np.ndarray) -> np.ndarray:
    """``x`` scaled to an RMS of 1 (silence as it is)."""
    return x / (np.sqrt(np.mean(x**2)) or 1.0)


def _colored(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    white = rng.standard_normal(n)
    if kind == "white":
        return unit(white)
    if kind == "brown":
        out = np.cumsum(white)
        out -= np.convolve(out, np.ones(801) / 801, mode="same")  # no drift to the rails
        return unit(out)
    spectrum = np.fft.rfft(white)  # pink: white shaped to 1/f
    spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
    return unit(np.fft.irfft(spectrum, n))


def chords(n: int, rng: np.random.Generator) -> np.ndarray:
    """Music-like sound: triads from a major scale, 0.4 s each, with an envelope (unit RMS)."""
    scale = 220.0 * 2 ** (np.array([0, 2, 4, 5, 7, 9, 11, 12, 14, 16, 17, 19]) / 12)
    note = int(0.4 * RATE)
    t = np.arange(note) / RATE
    envelope = np.minimum(1.0, t / 0.02) * np.exp(-3 * t)
    parts = []
    for _ in range(n // note + 1):
        root = int(rng.integers(0, 5))
        parts.append(envelope * sum(np.sin(2 * np.pi * scale[root + k] * t) for k in (0, 2, 4)))
    return unit(np.concatenate(parts)[:n])


def _talk(talk: Sequence[bytes], n: int, rng: np.random.Generator, start: int = 0) -> np.ndarray:
    """Speech clips one after another (from ``start``, cycling) to ``n`` samples."""
    out, filled, i = np.zeros(n), 0, start
    while filled < n:
        clip = np.frombuffer(talk[i % len(talk)], dtype="<i2").astype(np.float64)
        take = min(len(clip), n - filled)
        out[filled : filled + take] = clip[:take]
        filled += take + int(rng.integers(0, RATE // 4))
        i += 1
    return out


def noise(kind: str, n: int, rng: np.random.Generator, talk: Sequence[bytes] = ()) -> np.ndarray:
    """``n`` samples of a noise of :data:`NOISES` (or white), unit RMS. ``babble`` and ``tv``
    need ``talk``: speech clips without the wake word."""
    if kind in ("babble", "tv") and not talk:
        raise ValueError(f"{kind} noise needs speech clips")
    if kind == "babble":  # five voices at once
        starts = rng.integers(0, len(talk), 5)
        return unit(np.sum([_talk(talk, n, rng, int(s)) for s in starts], axis=0))
    if kind == "tv":  # someone talking over music
        return unit(_talk(talk, n, rng, int(rng.integers(0, len(talk)))) + 0.5 * chords(n, rng))
    if kind == "music":
        return chords(n, rng)
    return _colored(kind, n, rng)


def level(pcm: bytes) -> float:
    """The RMS of the speech's loud parts (over |x| > 500), as an SNR is measured."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    loud = x[np.abs(x) > 500]
    return float(np.sqrt(np.mean(loud**2))) if len(loud) else 1000.0


def mix(pcm: bytes, bed: np.ndarray, snr_db: float, *, speech_level: float | None = None) -> bytes:
    """``bed`` (unit RMS, at least as long) under ``pcm``, ``snr_db`` below the speech."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    loud = speech_level if speech_level is not None else level(pcm)
    mixed = x + bed[: len(x)] * loud / 10 ** (snr_db / 20)
    return np.clip(mixed, -32768, 32767).astype("<i2").tobytes()


def scaled(pcm: bytes, db: float) -> bytes:
    """``pcm`` ``db`` louder (negative: quieter), clipped."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64) * 10 ** (db / 20)
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def wer(reference: str, heard: str) -> float:
    """Word error rate: edits (substitutions, insertions, deletions) per reference word."""
    ref, hyp = _words(reference), _words(heard)
    row = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        diag, row[0] = row[0], i
        for j in range(1, len(hyp) + 1):
            diag, row[j] = (
                row[j],
                min(row[j] + 1, row[j - 1] + 1, diag + (ref[i - 1] != hyp[j - 1])),
            )
    return row[len(hyp)] / max(len(ref), 1)
