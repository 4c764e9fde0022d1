"""What this device offers over Wyoming, and the ``info`` event that says so.

:class:`Parts` holds the pieces the voice loop already has (the recognizer's loaded model,
the piper voice, the wake phrase, the :class:`~assistant.wyoming.agent.Agent` in front of
the Brain): ``describe`` advertises only what loaded. A part that failed to load is named in
:attr:`Parts.missing` and its events get an ``error`` saying why.
"""

from __future__ import annotations

import functools
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from wyoming.info import (
    Artifact,
    AsrModel,
    AsrProgram,
    Attribution,
    HandleModel,
    HandleProgram,
    Info,
    TtsProgram,
    TtsVoice,
    WakeModel,
    WakeProgram,
)

from .. import __version__
from ..api.metrics import Metrics
from ..speech.stt import Recognizer
from ..speech.tts import TTS
from .agent import Agent

__all__ = ["Parts", "describe"]

T = TypeVar("T", bound=Artifact)

PROJECT = Attribution(name="qwen-assistant", url="https://github.com/qwen-assistant/qwen-assistant")


@dataclass
class Parts:
    """The device's speech and language parts, shared by every Wyoming connection."""

    agent: Agent | None = None
    recognizer: Recognizer | None = None  # each stream takes a sibling
    stt_model: str = ""  # the model directory's name
    tts: TTS | None = None  # loaded
    wake_phrase: str = ""  # "" = no wake phrase (no recognizer)
    #: the bundled microWakeWord models, name → phrase ({} without pymicro-wakeword)
    wake_words: dict[str, str] = field(default_factory=dict)
    model_id: str = ""  # the LLM, for the handle program
    language: str = "en"  # speech.language: what the recognizer, the phrase and Qwen speak
    home_control: bool = False  # [[actions]] are configured
    metrics: Metrics | None = None  # Wyoming requests are counted with the API's
    #: why a part is missing: {"asr": "…", "tts": "…", …}
    missing: dict[str, str] = field(default_factory=dict)
    #: why the service is stopping ("" while it serves): events get an error saying so
    closing: str = ""
    #: recognition and synthesis run here, off the event loop
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="wyoming")
    )

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


@functools.lru_cache(maxsize=8)
def _voice_language(voice: Path) -> str:
    """piper's voice config says its language ("en_US"); Home Assistant wants "en_US" or "en"."""
    try:
        config = json.loads(Path(f"{voice}.json").read_text(encoding="utf-8"))
        code = config.get("language", {}).get("code") or config.get("espeak", {}).get("voice")
    except (OSError, ValueError, AttributeError):
        code = None
    return str(code or "en").replace("-", "_")


def _ours(kind: type[T], name: str, description: str, version: str | None, **fields: Any) -> T:
    """An installed artifact of this project (a program or a model)."""
    return kind(
        name=name,
        attribution=PROJECT,
        installed=True,
        description=description,
        version=version,
        **fields,
    )


def describe(parts: Parts) -> Info:
    """The ``info`` event's content: only what is loaded is advertised."""
    version = __version__
    info = Info()
    if parts.recognizer is not None:
        engine = type(parts.recognizer).__name__.removesuffix("Recognizer")
        model = _ours(
            AsrModel, parts.stt_model or "speech-to-text", f"{engine} {parts.stt_model}".strip(),
            None, languages=[parts.language],
        )  # fmt: skip
        info.asr.append(
            _ours(
                AsrProgram,
                "qwen-assistant-stt",
                "qwen-assistant speech-to-text",
                version,
                models=[model],
            )
        )
    wake_models = [
        _ours(
            WakeModel,
            name,
            f"microWakeWord {name} (Apache-2.0, esphome)",
            None,
            languages=["en"],
            phrase=phrase,
        )
        for name, phrase in parts.wake_words.items()
    ]
    if parts.wake_phrase:
        from ..speech.wake import wake_name

        phrase = parts.wake_phrase
        wake_models.append(
            _ours(
                WakeModel,
                wake_name(phrase),
                f"the wake phrase {phrase!r} (speech-to-text)",
                None,
                languages=[parts.language],
                phrase=phrase,
            )
        )
    if wake_models:
        description = "qwen-assistant wake words: microWakeWord, and the configured phrase"
        info.wake.append(
            _ours(WakeProgram, "qwen-assistant-wake", description, version, models=wake_models)
        )
    if parts.tts is not None:
        path = Path(parts.tts.voice_path)
        name = path.name.removesuffix(".onnx")
        voice = _ours(
            TtsVoice, name, f"piper voice {name}", None, languages=[_voice_language(path)]
        )
        info.tts.append(
            _ours(
                TtsProgram,
                "qwen-assistant-tts",
                "qwen-assistant text-to-speech (piper)",
                version,
                voices=[voice],
                supports_synthesize_streaming=True,
            )
        )
    if parts.agent is not None:
        handle_model = _ours(
            HandleModel, parts.model_id or "qwen", "the assistant's language model", None,
            languages=[parts.language],
        )  # fmt: skip
        description = "qwen-assistant conversation agent (Qwen on llama.cpp)"
        info.handle.append(
            _ours(
                HandleProgram,
                "qwen-assistant",
                description,
                version,
                models=[handle_model],
                supports_home_control=parts.home_control,
            )
        )
    return info
