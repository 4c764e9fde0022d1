"""The checks of what this machine would run: models, voices, recognizer, llama.cpp,
the [[actions]] and the Wyoming port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import AssistantError
from ..systemd import hidden_from_the_unit
from .check import Check

__all__ = ["actions", "llama", "models", "speech", "voice", "wyoming"]


def models(config: Config) -> Iterator[Check]:
    from ..llm.engine import Engine
    from ..models.store import ModelStore

    try:  # what `run` does: header, size/sha256 against the manifest, load, canary
        engine = Engine.from_config(config)
        engine.load()
    except AssistantError as exc:
        yield Check("FAIL", "model", str(exc))
    else:
        info = engine.info
        engine.close()
        kind = f"{info.architecture}, {info.name}" if info else "GGUF"
        yield Check(
            "OK",
            "model",
            f"{engine.model_path} ({kind}; loads and answers the canary; "
            f"sha256 {engine.sha256[:12]}…)",
        )
        backend = engine.backend
        if backend.fallback:
            yield Check("WARN", "backend", backend.fallback)
        else:
            yield Check("OK", "backend", backend.describe())
    store = ModelStore(config.paths.models_dir)
    try:
        rows = store.entries(verify=True)
    except AssistantError as exc:
        yield Check("WARN", "models", str(exc))
        return
    for row in rows:
        if row.status == "ok":
            yield Check("OK", "sha256", f"{row.name}: {row.path.name} matches {row.sha256[:12]}…")
        else:
            fix = f"run `qwen-assistant models fetch {row.name}` to download it again"
            yield Check("FAIL", "sha256", f"{row.name}: {row.path} {row.status}; {fix}")
    if not rows:
        fix = "run `qwen-assistant models fetch`"
        yield Check("WARN", "models", f"none installed in {store.root}; {fix}")


def voice(config: Config) -> Iterator[Check]:
    from ..speech.tts import resolve_voice

    level = "FAIL" if config.voice.enabled else "WARN"
    fix = "run `qwen-assistant models fetch tts`"
    try:
        voice = resolve_voice(config)
    except AssistantError as exc:
        yield Check(level, "voice", f"{exc}; {fix}")
        return
    if voice.is_file():
        from ..language import LANGUAGES
        from ..models.store import ModelStore

        want = config.speech.language
        have = ModelStore(config.paths.models_dir).language_of(voice)
        if have is not None and have != want:
            yield Check(
                "WARN",
                "voice",
                f"piper voice {voice} speaks {LANGUAGES[have].name} but speech.language is "
                f'"{want}": answers in {LANGUAGES[want].name} are left unspoken; {fix}',
            )
        else:
            yield Check("OK", "voice", f"piper voice {voice} ({LANGUAGES[want].name})")
    else:
        yield Check(level, "voice", f"{voice}: no such piper voice; {fix}")


def speech(config: Config) -> Iterator[Check]:
    """The speech-to-text model loads with the engine that runs it (what the voice loop and
    Wyoming load), and the wake words there are."""
    from ..speech.stt import make_recognizer
    from ..speech.wake import builtin_words

    needed = config.voice.enabled or config.wyoming.enabled
    recognizer = None
    try:
        recognizer = make_recognizer(config)
    except AssistantError as exc:
        yield Check("FAIL" if needed else "WARN", "stt", str(exc))
    else:
        engine = type(recognizer).__name__.removesuffix("Recognizer").lower()
        yield Check("OK", "stt", f"{engine} model {recognizer.path} (loads)")
    if config.speech.vad == "silero":
        from ..speech.vad import silero_model

        try:
            yield Check("OK", "vad", f"Silero VAD {silero_model()}")
        except AssistantError as exc:
            yield Check("WARN", "vad", f"{exc}; the energy VAD stands in")
    else:
        yield Check("OK", "vad", 'the energy VAD (speech.vad = "energy")')
    yield front_end(config, recognizer.rate if recognizer is not None else 16000)
    vc = config.voice
    listens = {
        "phrase": f"the phrase {vc.wake_phrase!r} (by speech-to-text)",
        "word": f"the wake word {vc.wake_word} ({vc.wake_engine})",
        "button": f"the button on {vc.button_pin}",
        "always": "always (no wake word)",
    }[vc.wake]
    words = builtin_words()
    if vc.wake == "word":
        from ..speech.wake import make_wake

        try:
            make_wake(vc.wake_engine, vc.wake_word, vc.wake_threshold)
        except AssistantError as exc:
            yield Check("FAIL" if vc.enabled else "WARN", "wake", f"voice.wake_word: {exc}")
            return
    if words:
        offered = f"; microWakeWord for Wyoming: {', '.join(words)}"
        yield Check("OK", "wake", f"the voice loop wakes on {listens}{offered}")
    else:
        fix = "pip install pymicro-wakeword (scripts/setup.sh does)"
        yield Check(
            "WARN",
            "wake",
            f"the voice loop wakes on {listens}; no microWakeWord for Wyoming; {fix}",
        )


def front_end(config: Config, rate: int) -> Check:
    """The audio front end's settings, who hears it, and its CPU on 2 s of noise."""
    import numpy as np

    from ..speech.frontend import make_front_end

    sc = config.speech
    try:
        front = make_front_end(sc, rate)
    except AssistantError as exc:
        return Check("FAIL" if config.voice.enabled else "WARN", "front end", str(exc))
    if front is None:
        return Check("OK", "front end", "off (speech.noise_suppression = 0, auto_gain_dbfs = 0)")
    noise = np.random.default_rng(0).normal(0, 1000, 2 * rate).astype("<i2").tobytes()
    front.clean(noise)
    hears = "the recognizer" + (" and the wake word" if sc.wake_hears == "clean" else "")
    return Check(
        "OK", "front end", f"speex {front.describe()} for {hears}; {front.rtf:.2%} of a core"
    )


def llama() -> Iterator[Check]:
    try:
        import llama_cpp
    except ImportError as exc:
        yield Check("FAIL", "llama.cpp", f"llama-cpp-python missing ({exc}); run scripts/setup.sh")
        return
    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    flags = [f.strip() for f in info.split("|")]
    features = [f.split(" = ")[0].split(":")[-1].strip() for f in flags if f.endswith("= 1")]
    gpu = bool(llama_cpp.llama_supports_gpu_offload())
    backend = "GPU offload (Vulkan build)" if gpu else "CPU"
    yield Check(
        "OK",
        "llama.cpp",
        f"llama-cpp-python {llama_cpp.__version__}, {backend}; {', '.join(features) or info}",
    )


def actions(config: Config) -> Iterator[Check]:
    """Each [[actions]] table's effect can run here: its program, its token file."""
    if not config.actions:
        yield Check("OK", "actions", "none configured: the assistant says it cannot act")
    for action in config.actions:
        name, http = action.name, action.http
        program = Path(action.command[0]) if action.command else None
        if program is not None and not (program.is_file() and os.access(program, os.X_OK)):
            fix = "install it or fix its command"
            yield Check("FAIL", "actions", f"{name}: {program} is not an executable file; {fix}")
        elif http is not None and http.token_file and not os.access(http.token_file, os.R_OK):
            fix = "create it (mode 0640, group qwen-assistant)"
            yield Check("FAIL", "actions", f"{name}: cannot read {http.token_file}; {fix}")
        elif hidden := hidden_from_the_unit(program or Path(http.token_file if http else "")):
            yield Check(
                "WARN",
                "actions",
                f"{name}: the service's sandbox cannot reach {hidden}; ask and chat can, the "
                "service cannot: move it under /usr/local or /etc/qwen-assistant",
            )
        else:
            target = str(program) if program is not None else http.url if http else ""
            yield Check("OK", "actions", f"{name}: {action.effect} {target}")


def wyoming(config: Config) -> Iterator[Check]:
    """Off, or: the running service answers Describe there, or the address is free for it."""
    import socket
    from urllib.parse import urlsplit

    wy = config.wyoming
    if not wy.enabled:
        yield Check("OK", "wyoming", "off (wyoming.enabled = false; docs/homeassistant.md)")
        return
    unix = wy.uri.startswith("unix://")
    parts = urlsplit(wy.uri)
    ipv6 = ":" in (parts.hostname or "")
    family = socket.AF_UNIX if unix else socket.AF_INET6 if ipv6 else socket.AF_INET
    address: Any = wy.uri[len("unix://") :] if unix else (parts.hostname, parts.port)
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(3)
        try:
            sock.connect(address)
        except OSError:
            pass
        else:
            answer = _describe(sock)
            level = "OK" if answer else "FAIL"
            answer = answer or "another program listens there; free it or change wyoming.uri"
            yield Check(level, "wyoming", f"{wy.uri}: {answer}")
            return
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            if not unix:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(address)
            elif not os.access(Path(address).parent, os.W_OK):
                raise PermissionError(f"cannot create a socket in {Path(address).parent}")
        except OSError as exc:
            fix = "free it or change wyoming.uri"
            yield Check("FAIL", "wyoming", f"{wy.uri}: cannot listen: {exc.strerror or exc}; {fix}")
            return
    yield Check("OK", "wyoming", f"{wy.uri}: free; `qwen-assistant run` will listen there")


def _describe(sock: Any) -> str:
    """What the service on ``sock`` advertises (a Wyoming Describe round trip); "" when
    it does not answer Wyoming."""
    from wyoming.event import read_event, write_event
    from wyoming.info import Describe, Info

    try:
        with sock.makefile("rwb") as stream:
            write_event(Describe().event(), stream)
            event = read_event(stream)
    except OSError:
        return ""
    if event is None or not Info.is_type(event.type):
        return ""
    info = Info.from_event(event)
    offered = [
        f"{kind} {', '.join(names)}"
        for kind, names in (
            ("stt", [m.name for p in info.asr for m in p.models]),
            ("tts", [v.name for p in info.tts for v in p.voices]),
            ("wake", [m.name for p in info.wake for m in p.models]),
            ("agent", [m.name for p in info.handle for m in p.models]),
        )
        if names
    ]
    return "the running service answers: " + ("; ".join(offered) or "nothing offered")
