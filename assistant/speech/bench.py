"""``qwen-assistant bench wake``: the wake words and the audio front end in a noisy home.

The clips are :mod:`~assistant.speech.wakeclips`'s: positives (each word said by piper and
espeak-ng voices, near and across the room, clean and at 10 dB and 5 dB over the noises
of a home) and an hour of negatives (talk, television, babble, music, noise). A fresh
detector and front end hear each positive; the negatives are one stream.

Every bundled word is measured with every front end of :data:`FRONT_ENDS` (noise
suppression, automatic gain; (0, 0) is the raw audio) and every cut-off of :data:`SWEEP`
from one pass (the model's scores are kept). The recognizer's word error rate on the
questions is measured raw and through each front end, clean and at both SNRs, heard as the
voice loop hears (its voice-activity detector), so what each consumer hears is chosen from
figures. Barge-in: the configured word, said near the device, heard alone and over the
device's own voice at :data:`PLAYBACK_DB`, with and without an echo canceller
(:mod:`~assistant.speech.echo`). CPU is process time (all
threads), as the heat budget sees it: the wake word's, the front end's, and the transcript
matcher's (``voice.wake = "phrase"``: the recognizer on everything) over
``matcher_minutes``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..config import Config
from .ears import Ears, transcribe_pcm
from .frontend import FrontEnd
from .stt import RATE, Recognizer, make_recognizer
from .testaudio import NOISES, SPEEDS, Speaker, level, mix, noise, speakers, unit, wer
from .tts import PiperTTS
from .vad import make_segmenter
from .wake import (
    BUILTIN,
    CHUNK,
    OPEN_BUILTIN,
    MicroWake,
    OpenWake,
    PhraseWake,
    Refractory,
    detections,
    make_wake,
)
from .wakeclips import LEAD_S, SNRS, TEMPLATES, device_voice, negatives, playback, positives

__all__ = ["FRONT_ENDS", "TARGETS", "TEMPLATES", "bench_wake", "render", "size"]

#: (noise_suppression, auto_gain_dbfs) points measured; (0, 0) is the raw audio
FRONT_ENDS = ((0, 0), (1, 0), (2, 0), (4, 0), (2, 15))
#: the device's voice at the microphone, dB over the person's speech, while it answers
PLAYBACK_DB = (-10.0, 0.0, 10.0)
ECHO_LAG = 800  # samples: the speaker's sound reaches the microphone 50 ms late
#: seconds the device has been speaking when the person says the word over it: the echo
#: canceller, which the audio system runs all the time, has heard that much of the answer
AEC_WARM_S = 6.0
#: stretches of the device's answers each clip is said over (more trials, a steadier ratio)
STRETCHES = 3
#: the issue's targets
TARGETS = {
    "false_reject_rate": 0.05,
    "false_reject_rate_5db": 0.10,
    "false_accepts_per_hour": 0.5,
    "idle_cpu_ratio": 0.1,
    "barge_in_ratio": 0.9,
}
#: the cut-offs the sweep tries
SWEEP = tuple(round(0.3 + 0.05 * i, 2) for i in range(14))  # 0.3 … 0.95


def _key(point: tuple[int, int]) -> str:
    return f"ns{point[0]} gain{point[1]}" if any(point) else "raw"


def _trace(detector: MicroWake | OpenWake, pcm: bytes) -> tuple[list[tuple[float, float]], float]:
    """(seconds, score) at the end of each chunk that scored, and the process CPU it took."""
    began, out = time.process_time(), []
    for i in range(0, len(pcm), CHUNK):
        chunk = pcm[i : i + CHUNK]
        best = max(detector.scores(chunk), default=None)
        if best is not None:
            out.append(((i + len(chunk)) / 2 / RATE, best))
    return out, time.process_time() - began


def _peak(engine: str, word: str, cut: float, front: FrontEnd, pcm: bytes) -> float:
    """The highest score a fresh detector for ``word`` gives ``pcm`` through ``front``."""
    trace, _ = _trace(make_wake(engine, word, cut), front.clean(pcm))
    return max((score for _, score in trace), default=0.0)


def _firings(trace: list[tuple[float, float]], threshold: float) -> int:
    """Detections a trace gives at ``threshold``, with the detector's refractory time."""
    gate = Refractory()
    return sum(score > threshold and gate.fire(at) for at, score in trace)


def _recognizer(
    config: Config,
    recognizer: Recognizer,
    voices: list[Speaker],
    talk: list[bytes],
    *,
    rng: Any,
    step: Any,
) -> list[dict[str, Any]]:
    """The recognizer's word error rate on the questions, per front end and condition."""
    clips: list[tuple[str, bytes, float, dict[float, np.ndarray]]] = []
    for voice in voices:
        for _, question in TEMPLATES:
            if question:
                speech = voice.say(question, 1)
                clip = bytes(2 * int(LEAD_S * RATE)) + speech + bytes(RATE)
                beds = {
                    snr: noise(NOISES[len(clips) % len(NOISES)], len(clip) // 2, rng, talk)
                    for snr in SNRS
                }
                clips.append((question, clip, level(speech), beds))
    rows = []
    for point in FRONT_ENDS:
        row: dict[str, Any] = {"front_end": _key(point)}
        for snr in (None, *SNRS):
            errors = []
            for question, clip, loud, beds in clips:
                pcm = clip if snr is None else mix(clip, beds[snr], snr, speech_level=loud)
                # heard as the voice loop hears: its voice-activity detector, a fresh front end
                vad = make_segmenter(config.speech.vad, config.speech.trailing_silence_s)
                ears = Ears(recognizer, vad, front_end=FrontEnd(*point))
                errors.append(wer(question, transcribe_pcm(recognizer, pcm, ears=ears)))
            row["wer_" + ("clean" if snr is None else f"{snr:g}db")] = round(
                float(np.mean(errors)), 4
            )
        rows.append(row)
        step("recognizer")
    return rows


def _barge_in(
    engine: str,
    word: str,
    cut: float,
    said: list[tuple[str, str, bytes]],
    *,
    front: tuple[int, int],
    talk: list[bytes],
    voices: list[Speaker],
) -> dict[str, Any]:
    """The word said near the device, clean: the share heard alone, and over the device's
    own voice at each of :data:`PLAYBACK_DB` (its echo 50 ms late with a short room tail),
    as the microphone hears it and through the echo canceller; each over the share heard
    alone (the ratio the issue targets). The device has been speaking for
    :data:`AEC_WARM_S` when the clip starts; the wake word hears the clip."""
    from .echo import EchoCanceller, available

    near = [pcm for what, cond, pcm in said if cond == "clean" and not what.endswith(" far")]

    def heard(pcm: bytes) -> bool:
        return _peak(engine, word, cut, FrontEnd(*front), pcm) > cut

    alone = sum(heard(pcm) for pcm in near) / len(near)
    out: dict[str, Any] = {"positives": len(near), "hit_rate": round(alone, 4)}
    tail = np.exp(-np.arange(ECHO_LAG) / 150) * 0.1
    tail[0] = 1.0
    cancels = available()
    track = device_voice(talk, voices)
    hits = dict.fromkeys(PLAYBACK_DB, 0)
    cancelled = dict.fromkeys(PLAYBACK_DB, 0)
    before = 2 * int(AEC_WARM_S * RATE)  # bytes of the answer before the clip
    trials = [(i, pcm, k) for i, pcm in enumerate(near) for k in range(STRETCHES)]
    for i, pcm, k in trials:
        n = (before + len(pcm)) // 2
        shift = 4_000 * i + k * len(track) // STRETCHES
        played = playback(track, n + ECHO_LAG, start=shift)
        echo = unit(np.convolve(np.concatenate([np.zeros(ECHO_LAG), played[:n]]), tail)[:n])
        loud = level(pcm[2 * int(LEAD_S * RATE) :])
        ref = np.clip(played[:n] * 8000, -32768, 32767).astype("<i2").tobytes()
        for db in PLAYBACK_DB:
            mic = mix(bytes(before) + pcm, echo, -db, speech_level=loud)
            hits[db] += heard(mic[before:])
            if cancels:
                cancelled[db] += heard(EchoCanceller().cancel(mic, ref)[before:])
    out["trials"] = len(trials)
    for db in PLAYBACK_DB:
        for name, got in (("", hits[db]), ("_cancelled", cancelled[db] if cancels else None)):
            rate = None if got is None else got / len(trials)
            out[f"hit_rate_playback{name}_{db:+g}db"] = None if rate is None else round(rate, 4)
            ratio = rate / alone if rate is not None and alone else None
            out[f"ratio_playback{name}_{db:+g}db"] = None if ratio is None else round(ratio, 4)
    return out


def _row(
    peaks: list[tuple[str, str, float]], trace: list[tuple[float, float]], cut: float, hours: float
) -> dict[str, Any]:
    """False rejects (overall and per condition) and false accepts at cut-off ``cut``."""
    out: dict[str, Any] = {"threshold": cut}
    missed = [(what, cond) for what, cond, peak in peaks if peak <= cut]
    out["false_reject_rate"] = round(len(missed) / len(peaks), 4)
    for cond in ("clean", *(f"{snr:g} dB" for snr in SNRS)):
        total = sum(c == cond for _, c, _ in peaks)
        name = "false_reject_rate_" + cond.replace(" ", "").lower()
        out[name] = round(sum(c == cond for _, c in missed) / total, 4)
    out["false_accepts_per_hour"] = round(_firings(trace, cut) / hours, 3)
    return out


def _meets(row: dict[str, Any]) -> bool:
    return bool(
        row["false_reject_rate"] <= TARGETS["false_reject_rate"]
        and row["false_reject_rate_5db"] <= TARGETS["false_reject_rate_5db"]
        and row["false_accepts_per_hour"] <= TARGETS["false_accepts_per_hour"]
    )


def _measure(
    peaks: list[tuple[str, str, float]], trace: list[tuple[float, float]], cut: float, hours: float
) -> dict[str, Any]:
    """The figures at the model's cut-off, the sweep, and the cut-off that meets every
    target with the fewest rejects (the highest such on a tie; None when none does)."""
    sweep = [_row(peaks, trace, c, hours) for c in SWEEP]
    meets = [row for row in sweep if _meets(row)]
    best = min(meets, key=lambda r: (r["false_reject_rate"], -r["threshold"]), default=None)
    at = _row(peaks, trace, cut, hours)
    at["false_accepts"] = _firings(trace, cut)
    at["missed"] = [what for what, _, peak in peaks if peak <= cut]
    voices = dict.fromkeys(what.split(":")[0] for what, _, _ in peaks)
    at["false_reject_rate_by_voice"] = {
        v: round(sum(m.startswith(f"{v}:") for m in at["missed"]) / (len(peaks) / len(voices)), 4)
        for v in voices
    }
    return {**at, "sweep": sweep, "suggested_threshold": best["threshold"] if best else None}


def size(words: int, minutes: float, voices: int) -> int:
    """The progress bar's steps: syntheses, front ends and the matcher."""
    positives = words * voices * len(TEMPLATES) * len(SPEEDS)
    return positives + round(minutes * 60 * 3 / 4 / 3) + 2 * len(FRONT_ENDS) + 1


def bench_wake(
    config: Config,
    *,
    word: str = "",
    engine: str = "",
    minutes: float = 60.0,
    matcher_minutes: float = 5.0,
    n_voices: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """``word``: one word, or "" for every bundled word (the configured one first)."""
    from .testaudio import ESPEAK_VOICES

    vc, sc = config.voice, config.speech
    engine = engine or vc.wake_engine
    bundled = OPEN_BUILTIN if engine == "openwakeword" else BUILTIN
    words = [word] if word else [vc.wake_word, *(w for w in bundled if w != vc.wake_word)]
    rng = np.random.default_rng(7)
    step = progress or (lambda _what: None)
    tts = PiperTTS.from_config(config)
    tts.load()
    # ``n_voices``: the piper voice and the first espeak-ng voices, that many (0: all)
    voices = speakers(tts, ESPEAK_VOICES[: n_voices - 1] if n_voices else ESPEAK_VOICES)
    home, talk = negatives(voices, minutes, rng, step)
    hours = len(home) / 2 / RATE / 3600
    said = {}
    for w in words:
        phrase = bundled.get(w, w)
        say = " ".join(p.capitalize() for p in phrase.split())
        said[w] = positives(voices, say, talk, rng, step)
    first = words[0]  # the configured word, or the one asked for
    cuts = {
        w: make_wake(engine, w, vc.wake_threshold if w == vc.wake_word else 0.0).threshold
        for w in words
    }
    configured = (sc.noise_suppression, sc.auto_gain_dbfs)
    wake_front = configured if sc.wake_hears == "clean" else (0, 0)
    wake_point = _key(wake_front)
    table: list[dict[str, Any]] = []
    front_rtf: dict[str, float] = {}
    wake_rtf = 0.0
    for point in FRONT_ENDS:
        front = FrontEnd(*point)
        began = time.process_time()
        heard = front.clean(home)
        front_rtf[_key(point)] = round((time.process_time() - began) / (hours * 3600), 5)
        for w in words:
            peaks = []
            for what, cond, pcm in said[w]:
                peaks.append((what, cond, _peak(engine, w, cuts[w], front, pcm)))
            trace, cpu = _trace(make_wake(engine, w, cuts[w]), heard)
            if point == (0, 0) and w == first:
                wake_rtf = cpu / (hours * 3600)
            table.append(
                {"word": w, "front_end": _key(point), **_measure(peaks, trace, cuts[w], hours)}
            )
        del heard
        step("front end")
    barge_in = _barge_in(
        engine, first, cuts[first], said[first], front=wake_front, talk=talk, voices=voices
    )
    recognizer = make_recognizer(config)  # loaded once: the matcher takes a sibling state
    recognizer_rows = _recognizer(config, recognizer, voices, talk, rng=rng, step=step)
    sample = home[: int(matcher_minutes * 60 * RATE) * 2]
    began = time.process_time()
    detections(PhraseWake(recognizer, vc.wake_phrase), sample)
    matcher_rtf = (time.process_time() - began) / (len(sample) / 2 / RATE)
    step("transcript matcher")
    mine = next(r for r in table if r["word"] == first and r["front_end"] == wake_point)
    idle = wake_rtf + front_rtf.get(_key(configured), 0.0)
    return {
        "word": first,
        "engine": engine,
        "front_end": FrontEnd(*configured).describe(),
        "wake_hears": sc.wake_hears,
        "voices": [v.name for v in voices],
        "positives": len(said[first]),
        **{k: v for k, v in mine.items() if k not in ("word", "front_end")},
        "negatives_minutes": round(hours * 60, 1),
        "wake_rtf": round(wake_rtf, 5),
        "front_end_rtf": front_rtf,
        "matcher_minutes": round(len(sample) / 2 / RATE / 60, 1),
        "matcher_rtf": round(matcher_rtf, 4),
        # listening for the wake word (model and front end) over transcribing everything
        "idle_cpu_ratio": round(idle / matcher_rtf, 4) if matcher_rtf else None,
        "targets": TARGETS,
        "words": [
            {
                k: v
                for k, v in r.items()
                if k not in ("missed", "sweep", "false_reject_rate_by_voice")
            }
            for r in table
        ],
        "recognizer": recognizer_rows,
        "barge_in": barge_in,
    }


def render(result: dict[str, Any]) -> str:
    skip = (
        "missed", "sweep", "words", "recognizer", "front_end_rtf", "false_reject_rate_by_voice",
        "barge_in",
    )  # fmt: skip
    lines = [f"{key:<24} {value}" for key, value in result.items() if key not in skip]
    lines.append(
        "front end CPU per second of audio: "
        + ", ".join(f"{k} {v}" for k, v in result["front_end_rtf"].items())
    )
    lines += [f"  missed: {m}" for m in result["missed"]]
    by_voice = result["false_reject_rate_by_voice"]
    lines.append("false rejects by voice: " + ", ".join(f"{v} {r}" for v, r in by_voice.items()))
    lines.append("\nthreshold  rejects  clean   10dB    5dB     false_accepts_per_hour")
    lines += [
        f"{r['threshold']:<10} {r['false_reject_rate']:<8} {r['false_reject_rate_clean']:<7} "
        f"{r['false_reject_rate_10db']:<7} {r['false_reject_rate_5db']:<7} "
        f"{r['false_accepts_per_hour']}"
        for r in result["sweep"]
    ]
    lines.append(
        "\nword          front end      cut-off  rejects  10dB    5dB     FA/h    suggested"
    )
    lines += [
        f"{r['word']:<13} {r['front_end']:<14} {r['threshold']:<8} {r['false_reject_rate']:<8} "
        f"{r['false_reject_rate_10db']:<7} {r['false_reject_rate_5db']:<7} "
        f"{r['false_accepts_per_hour']:<7} {r['suggested_threshold']}"
        for r in result["words"]
    ]
    lines.append("\nbarge-in: " + ", ".join(f"{k} {v}" for k, v in result["barge_in"].items()))
    lines.append("\nrecognizer    front end      WER clean  10dB    5dB")
    lines += [
        f"{'':<13} {r['front_end']:<14} {r['wer_clean']:<10} {r['wer_10db']:<7} {r['wer_5db']}"
        for r in result["recognizer"]
    ]
    return "\n".join(lines)
