"""`qwen-assistant bench voice`: spoken questions through the service's own listening loop,
answered the serial way (after the silence that ends them) and ahead (from the first pause,
voice.answer_ahead), side by side, per stage; and how often each end-of-speech setting cuts
off a person who pauses in the middle of a sentence.

The questions are spoken by piper (the same audio on every run) into a WAV microphone paced
like a sound card. Some have a pause in the middle: one whose first half reads as a finished
question ("What's the weather … in Paris tomorrow?": an answer prepared at the pause must be
dropped), one whose first half trails off ("Tell me a fact about … the moon.": the long
silence must wait for it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import resource
import statistics
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from .config import Config
from .listen import VoiceRig
from .speech.audio import FRAME_S, WavSpeaker
from .speech.endpoint import words
from .speech.tts import PiperTTS
from .turn import Speculated, TurnEvent
from .voice import TurnResult

__all__ = ["BENCH_QUESTIONS", "PAUSED", "SETTINGS", "bench_voice", "speak_to_wav"]

#: everyday questions a kiosk hears; answers of one to three sentences (the system prompt)
BENCH_QUESTIONS = (
    "Why is the sky blue?",
    "How do bees make honey?",
    "What should I pack for a day at the beach?",
)
#: questions said with a pause (seconds of silence) in the middle
PAUSED: tuple[tuple[str, float, str], ...] = (
    ("What's the weather", 0.4, "in Paris tomorrow?"),
    ("Tell me a fact about", 0.7, "the moon."),
    ("How far is it from London", 0.35, "to Edinburgh by train?"),
)
#: (speech.trailing_silence_s, speech.trailing_silence_max_s) measured for cut-offs
SETTINGS = ((0.5, 0.5), (0.5, 1.0), (0.3, 1.0), (0.3, 0.5))


def _trimmed(pcm: bytes, floor: int = 200) -> bytes:
    """Piper's audio without its leading and trailing silence (so a pause is what it says)."""
    x = np.frombuffer(pcm, dtype="<i2")
    loud = np.flatnonzero(np.abs(x.astype(np.int32)) > floor)
    return x[loud[0] : loud[-1] + 1].tobytes() if len(loud) else b""


def speak_to_wav(tts: PiperTTS, said: str | tuple[str, float, str], path: Path) -> None:
    """A spoken question: 0.3 s of silence, then piper's voice (steady: the same question
    is the same audio on every run, so runs compare); a (first, pause_s, rest) triple is
    said with that pause in the middle."""
    parts = (said,) if isinstance(said, str) else said
    speaker = WavSpeaker(path)
    speaker.start(tts.sample_rate)
    speaker.write(bytes(2 * round(tts.sample_rate * 0.3)))
    for part in parts:
        if isinstance(part, float):
            speaker.write(bytes(2 * round(tts.sample_rate * part)))
        else:
            speaker.write(_trimmed(b"".join(tts.synthesize(part, steady=True))))
    speaker.stop()


def text_of(said: str | tuple[str, float, str]) -> str:
    return said if isinstance(said, str) else f"{said[0]} {said[2]}"


def finished(heard: str, said: str | tuple[str, float, str]) -> bool:
    """``heard`` has the end of what was said (most of the words after a pause; the last
    two words of a question said in one go): the person was not cut off."""
    tail = words(said[2] if isinstance(said, tuple) else said)[-2:] if said else []
    got = set(words(heard))
    return sum(w in got for w in tail) * 2 >= len(tail)


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3) if values else 0.0


def _mode(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One mode's medians per stage (from the end of speech) and its cut-offs."""
    answered = [r for r in rows if r["first_audio_s"] is not None]
    return {
        "stt_final_s": _median([r["stt_final_s"] for r in answered]),
        "first_token_s": _median([r["first_token_s"] for r in answered]),
        "first_audio_s": _median([r["first_audio_s"] for r in answered]),
        "cut_offs": sum(not r["finished"] for r in rows),
        "turns": len(rows),
    }


async def bench_voice(
    config: Config,
    *,
    model: str | None = None,
    stt_engine: str | None = "whisper",
    stt_model: str | None = None,
    questions: tuple[str, ...] = BENCH_QUESTIONS,
    paused: tuple[tuple[str, float, str], ...] = PAUSED,
    settings: tuple[tuple[float, float], ...] = SETTINGS,
) -> dict[str, Any]:
    """Each question through the listening loop twice, serial and ahead (alternating which
    goes first, so the prompt cache favours neither), then the paused ones heard with each
    end-of-speech setting."""
    # temperature 0: both modes speak the same answer to the same question
    config = dataclasses.replace(config, llm=dataclasses.replace(config.llm, temperature=0.0))
    rig = VoiceRig(config, model=model, stt_engine=stt_engine, stt_model=stt_model)
    await rig.load()
    if rig.tts is None:
        raise RuntimeError("load() did not load the voice")
    told: list[TurnEvent] = []
    rig.turns.listeners.append(told.append)
    rows: list[dict[str, Any]] = []
    cut_offs: list[dict[str, Any]] = []
    rtf: dict[str, list[float]] = {"stt": [], "tts": []}
    said_all: list[str | tuple[str, float, str]] = [*questions, *paused]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            wavs = [Path(tmp) / f"q{i}.wav" for i in range(len(said_all))]
            for said, wav in zip(said_all, wavs, strict=True):
                speak_to_wav(rig.tts, said, wav)
            for i, (said, wav) in enumerate(zip(said_all, wavs, strict=True)):
                for ahead in (True, False) if i % 2 == 0 else (False, True):
                    del told[:]
                    result, stats = await rig.loop_turn(wav, Path(tmp) / "a.wav", ahead=ahead)
                    rows.append(_row(said, ahead, result, stats, told))
                    if result is not None:
                        rtf["stt"].append(result.stt_rtf)
                        rtf["tts"].append(result.tts_rtf)
            loop = asyncio.get_running_loop()
            for short, long in settings:
                speech = dataclasses.replace(
                    config.speech, trailing_silence_s=short, trailing_silence_max_s=long
                )
                heard_with = dataclasses.replace(config, speech=speech)
                cut = 0
                for said, wav in zip(paused, wavs[len(questions) :], strict=True):
                    hear = functools.partial(rig.hear, wav, config=heard_with)
                    cut += not finished((await loop.run_in_executor(None, hear)).text, said)
                cut_offs.append({"trailing_silence_s": short, "trailing_silence_max_s": long,
                                 "cut_off": cut, "of": len(paused)})  # fmt: skip
    finally:
        rig.close()
    model_path = rig.brain.engine.model_path if rig.brain.engine else ""
    head = {
        "turns": len(rows) // 2,
        "stt_engine": stt_engine or config.speech.stt_engine,
        "model": Path(str(model_path)).name,
        "trailing_silence_s": config.speech.trailing_silence_s,
        "trailing_silence_max_s": config.speech.trailing_silence_max_s,
    }
    return {**head, **_report(rows, cut_offs, rtf)}


def _row(
    said: str | tuple[str, float, str],
    ahead: bool,
    result: TurnResult | None,
    stats: Any,
    told: list[TurnEvent],
) -> dict[str, Any]:
    dropped = [e for e in told if isinstance(e, Speculated) and not e.used]
    return {
        "question": text_of(said),
        "pause_s": said[1] if isinstance(said, tuple) else 0.0,
        "mode": "ahead" if ahead else "serial",
        "heard": result.transcript if result else "",
        "finished": result is not None and finished(result.transcript, said),
        "stt_final_s": round(result.stt_final_s, 3) if result else None,
        "first_token_s": round(result.first_token_s, 3) if result else None,
        "first_audio_s": round(result.first_audio_s, 3) if result else None,
        "answered_ahead": bool(result and result.ahead),
        "prepared": stats.started,
        "guess_s": round(stats.guess_s, 3) if stats.guess_s is not None else None,
        "dropped": len(dropped),
        "wasted_tokens": sum(e.tokens for e in dropped),
        "answer_chars": len(result.answer) if result else 0,
    }


def _report(
    rows: list[dict[str, Any]],
    cut_offs: list[dict[str, Any]],
    rtf: dict[str, list[float]],
) -> dict[str, Any]:
    serial = [r for r in rows if r["mode"] == "serial"]
    ahead = [r for r in rows if r["mode"] == "ahead"]
    figures = {"serial": _mode(serial), "ahead": _mode(ahead)}
    s, a = figures["serial"]["first_audio_s"], figures["ahead"]["first_audio_s"]
    figures["ahead"].update(
        used_share=round(sum(r["answered_ahead"] for r in ahead) / len(ahead), 3) if ahead else 0,
        dropped_per_turn=round(sum(r["dropped"] for r in ahead) / len(ahead), 3) if ahead else 0,
        wasted_tokens_per_turn=round(sum(r["wasted_tokens"] for r in ahead) / len(ahead), 1)
        if ahead
        else 0,
    )
    # the same question both ways, where both spoke the same answer (the prompt cache can
    # change a greedy answer between its first and second asking): ahead minus serial
    pairs = [
        (x["first_audio_s"], y["first_audio_s"])
        for x in ahead
        for y in serial
        if x["question"] == y["question"] and x["answer_chars"] == y["answer_chars"]
        and x["first_audio_s"] is not None and y["first_audio_s"] is not None
    ]  # fmt: skip
    return {
        **figures,
        "same_answer_pairs": len(pairs),
        "ahead_minus_serial_s": _median([x - y for x, y in pairs]) if pairs else None,
        "ttfa_ratio": round(a / s, 3) if s else None,
        "cut_offs": cut_offs,
        "stt_rtf": _median(rtf["stt"]),
        "tts_rtf": _median(rtf["tts"]),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "frame_s": FRAME_S,
        "per_turn": rows,
    }
