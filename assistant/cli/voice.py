"""``listen``, ``say``, ``transcribe`` and ``audio devices``: speech from the command line."""

from __future__ import annotations

import argparse
import json
from typing import Any

from ._base import Add, Group, load

__all__ = ["register"]


def register(top: Any, add: Add, group: Group) -> None:
    def stt_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--engine", choices=("vosk", "whisper"), help="default: speech.stt_engine")
        p.add_argument("--stt-model", metavar="DIR", help="default: speech.stt_model")

    listen = add(
        top,
        "listen",
        "One voice turn from a WAV file: transcript, answer (spoken to a WAV), timings.",
        cmd_listen,
        "Run one full voice turn without a microphone: the question in --input is heard "
        "(paced like a live microphone unless --fast), transcribed, answered by the LLM and "
        "spoken sentence by sentence into --output. Prints the transcript, the answer and "
        "the timings from the end of speech: final transcript, first token, first audio, total.",
    )
    listen.add_argument("--input", "-i", required=True, metavar="QUESTION.wav")
    listen.add_argument("--output", "-o", required=True, metavar="ANSWER.wav")
    listen.add_argument("--model", metavar="GGUF", help="the LLM (default: llm.model)")
    stt_options(listen)
    listen.add_argument("--json", action="store_true", help="print one JSON object")
    listen.add_argument(
        "--fast", action="store_true", help="read the WAV as fast as possible (no pacing)"
    )
    say = add(top, "say", "Speak a text with piper, to a WAV file or the sound card.", cmd_say)
    say.add_argument("text", nargs="+", help="what to say")
    say.add_argument("--output", "-o", metavar="OUT.wav", help="write here instead of playing")
    transcribe = add(
        top, "transcribe", "Print what is said in a WAV file (speech-to-text).", cmd_transcribe
    )
    transcribe.add_argument("file", metavar="FILE.wav")
    stt_options(transcribe)
    wake = add(
        top,
        "wake",
        "Print where wake words are heard in a WAV file.",
        cmd_wake,
        "Run wake-word detectors over a recording (a microphone's, or speech made with `say`) "
        "and print each detection with its time. Test a microphone, a room or a custom "
        "microWakeWord model before a device listens for it.",
    )
    wake.add_argument("file", metavar="FILE.wav")
    wake.add_argument(
        "--word",
        action="append",
        metavar="NAME",
        help="a bundled microWakeWord model (okay_nabu, hey_jarvis, hey_mycroft, alexa), the "
        ".json of a custom one, or 'phrase' (voice.wake_phrase, by speech-to-text); "
        "repeat for several; default: every bundled model",
    )
    wake.add_argument(
        "--engine",
        choices=("microwakeword", "openwakeword"),
        help="the engine of the named models (default: voice.wake_engine)",
    )
    wake.add_argument("--json", action="store_true", help="print one JSON object")
    audio = group("audio", "Sound devices.", "action")
    add(
        audio,
        "devices",
        "List the sound devices (names for speech.input_device / output_device).",
        cmd_audio_devices,
    )


def cmd_listen(args: argparse.Namespace) -> int:
    import asyncio

    from ..listen import VoiceRig

    rig = VoiceRig(load(args), model=args.model, stt_engine=args.engine, stt_model=args.stt_model)

    async def one() -> Any:
        await rig.load()
        try:
            return await rig.turn(args.input, args.output, realtime=not args.fast)
        finally:
            rig.close()

    r = asyncio.run(one())
    keys = ("transcript", "answer", "stt_final_s", "first_token_s", "first_audio_s", "total_s")
    if args.json:
        out = {k: getattr(r, k) for k in keys} | {"stt_rtf": r.stt_rtf, "tts_rtf": r.tts_rtf}
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}))
    else:
        print(f"you said:  {r.transcript}\nanswer:    {r.answer}\nspoken to: {args.output}")
        print(
            f"timings from the end of speech: final transcript {r.stt_final_s:.2f} s · "
            f"first token {r.first_token_s:.2f} s · first audio {r.first_audio_s:.2f} s · "
            f"total {r.total_s:.2f} s (STT RTF {r.stt_rtf:.2f}, TTS RTF {r.tts_rtf:.2f})"
        )
    return 0


def cmd_say(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import EX_CANTCREAT, EX_UNAVAILABLE, EX_USAGE, AssistantError
    from ..language import readable
    from ..speech.audio import SoundDeviceSpeaker, WavSpeaker
    from ..speech.mouth import Mouth
    from ..speech.sentences import speakable
    from ..speech.tts import PiperTTS

    text = " ".join(args.text).strip()
    if not speakable(text).strip():
        raise AssistantError("say: the text is empty; give it something to say", exit_code=EX_USAGE)
    output = Path(args.output) if args.output else None
    if output is not None:  # before piper loads: a path that cannot be written is one line
        try:
            existed = output.exists()
            with output.open("ab"):
                pass
        except OSError as exc:
            raise AssistantError(
                f"{output}: cannot write there ({exc.strerror or exc}); choose another -o path",
                exit_code=EX_CANTCREAT,
            ) from None
        if not existed:
            output.unlink()
    config = load(args)
    tts = PiperTTS.from_config(config)
    tts.load()
    if not readable(text, tts.language):
        raise AssistantError(
            f"say: the piper voice {tts.voice_path.name} ({tts.language}) cannot read this "
            'text; for Mandarin set speech.language = "zh" and run `qwen-assistant models fetch`',
            exit_code=EX_USAGE,
        )
    speaker: Any = WavSpeaker(output) if output else SoundDeviceSpeaker(config.speech.output_device)
    mouth = Mouth(tts, speaker)
    try:
        utterance = mouth.start()
        utterance.add(text)
        utterance.end()
        utterance.done.wait()
        failed = utterance.stopped or not utterance.audio_s  # the mouth logged why
    finally:
        mouth.close()  # (stops the current utterance: read `stopped` before)
    if failed:
        if output:
            raise AssistantError(f"say: nothing was written to {output}", exit_code=EX_CANTCREAT)
        raise AssistantError(
            "say: nothing was played (no sound output device?); try -o OUT.wav",
            exit_code=EX_UNAVAILABLE,
        )
    if output:
        print(f"wrote {output} ({utterance.audio_s:.1f} s of audio)")
    return 0


def cmd_wake(args: argparse.Namespace) -> int:
    import time

    from ..errors import EX_USAGE, AssistantError
    from ..speech.audio import read_wav
    from ..speech.stt import RATE, make_recognizer
    from ..speech.wake import BUILTIN, OPEN_BUILTIN, PhraseWake, detections, make_wake

    config = load(args)
    engine = args.engine or config.voice.wake_engine
    models = OPEN_BUILTIN if engine == "openwakeword" else BUILTIN
    names = args.word or list(models)
    detectors: list[Any] = []
    for name in names:
        if name == "phrase":
            detectors.append(PhraseWake(make_recognizer(config), config.voice.wake_phrase))
        elif name in models or (name.endswith(".json") and engine == "microwakeword"):
            detectors.append(make_wake(engine, name))
        else:
            known = ", ".join([*models, "phrase", "a microWakeWord model's .json"])
            raise AssistantError(f"wake: --word {name!r}: not one of {known}", exit_code=EX_USAGE)
    pcm, _ = read_wav(args.file, RATE)
    began = time.perf_counter()
    found = sorted(
        ({"name": d.name, "at_s": round(at, 2)} for d in detectors for at in detections(d, pcm)),
        key=lambda hit: hit["at_s"],
    )
    audio_s = len(pcm) / 2 / RATE
    rtf = (time.perf_counter() - began) / audio_s if audio_s else 0.0
    if args.json:
        print(json.dumps({"detections": found, "audio_s": round(audio_s, 2), "rtf": round(rtf, 4)}))
        return 0
    for hit in found:
        print(f"{hit['at_s']:7.2f} s  {hit['name']}")
    print(
        f"{len(found) or 'no'} detection{'s' if len(found) != 1 else ''} in {audio_s:.1f} s "
        f"of audio ({', '.join(d.name for d in detectors)}; RTF {rtf:.3f})"
    )
    return 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    from ..speech.audio import read_wav
    from ..speech.ears import transcribe_pcm
    from ..speech.stt import make_recognizer

    recognizer = make_recognizer(load(args), engine=args.engine, model=args.stt_model)
    pcm, _ = read_wav(args.file, recognizer.rate)
    print(transcribe_pcm(recognizer, pcm))
    return 0


def cmd_audio_devices(args: argparse.Namespace) -> int:
    from ..speech.audio import list_devices

    devices = list_devices()
    if not devices:
        print("no sound devices (PortAudio found none)")
    for d in devices:
        kinds = ", ".join(k for k, n in (("input", d["inputs"]), ("output", d["outputs"])) if n)
        print(f"{d['index']:>3}  {d['name']}  ({kinds}; {d['rate']} Hz)")
    return 0
