"""What this device offers over Wyoming, and the ``info`` event that says so.

:class:`Parts` holds the pieces the voice loop already has (the recognizer's loaded model,
the piper voice, the wake phrase, the :class:`~assistant.wyoming.agent.Agent` in front of
the Brain): ``describe`` advertises only what loaded. A part that failed to load is named in
:attr:`Parts.missing` and its events get an ``error`` saying why.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wyoming.info import (
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
from .agent import Agent

__all__ = ["Parts", "describe"]

PROJECT = Attribution(name="qwen-assistant", url="https://github.com/qwen-assistant/qwen-assistant")


@dataclass
class Parts:
    """The device's speech and language parts, shared by every Wyoming connection."""

    agent: Agent | None = None
    recognizer: Any = None  # speech.stt.Recognizer (each stream takes a sibling)
    stt_model: str = ""  # the model directory's name
    tts: Any = None  # speech.tts.PiperTTS, loaded
    wake_phrase: str = ""  # "" = no wake word (no recognizer)
    model_id: str = ""  # the LLM, for the handle program
    home_control: bool = False  # [[actions]] are configured
    #: why a part is missing: {"asr": "…", "tts": "…", …}
    missing: dict[str, str] = field(default_factory=dict)
    #: recognition and synthesis run here, off the event loop
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(2, thread_name_prefix="wyoming")
    )

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def _voice_language(voice: Path) -> str:
    """piper's voice config says its language ("en_US"); Home Assistant wants "en_US" or "en"."""
    try:
        config = json.loads(Path(f"{voice}.json").read_text(encoding="utf-8"))
        code = config.get("language", {}).get("code") or config.get("espeak", {}).get("voice")
    except (OSError, ValueError, AttributeError):
        code = None
    return str(code or "en").replace("-", "_")


def describe(parts: Parts) -> Info:
    """The ``info`` event's content: only what is loaded is advertised."""
    version = __version__
    info = Info()
    if parts.recognizer is not None:
        model = AsrModel(
            name=parts.stt_model or "speech-to-text",
            attribution=PROJECT,
            installed=True,
            description=f"{type(parts.recognizer).__name__.removesuffix('Recognizer')} "
            f"{parts.stt_model}".strip(),
            version=None,
            languages=["en"],
        )
        info.asr.append(
            AsrProgram(
                name="qwen-assistant-stt",
                attribution=PROJECT,
                installed=True,
                description="qwen-assistant speech-to-text",
                version=version,
                models=[model],
            )
        )
    if parts.wake_phrase:
        from ..speech.wake import wake_name

        info.wake.append(
            WakeProgram(
                name="qwen-assistant-wake",
                attribution=PROJECT,
                installed=True,
                description="qwen-assistant wake phrase (found by the speech-to-text model)",
                version=version,
                models=[
                    WakeModel(
                        name=wake_name(parts.wake_phrase),
                        attribution=PROJECT,
                        installed=True,
                        description=f"the wake phrase {parts.wake_phrase!r}",
                        version=None,
                        languages=["en"],
                        phrase=parts.wake_phrase,
                    )
                ],
            )
        )
    if parts.tts is not None:
        path = Path(parts.tts.voice_path)
        name = path.name.removesuffix(".onnx")
        info.tts.append(
            TtsProgram(
                name="qwen-assistant-tts",
                attribution=PROJECT,
                installed=True,
                description="qwen-assistant text-to-speech (piper)",
                version=version,
                voices=[
                    TtsVoice(
                        name=name,
                        attribution=PROJECT,
                        installed=True,
                        description=f"piper voice {name}",
                        version=None,
                        languages=[_voice_language(path)],
                    )
                ],
                supports_synthesize_streaming=True,
            )
        )
    if parts.agent is not None:
        info.handle.append(
            HandleProgram(
                name="qwen-assistant",
                attribution=PROJECT,
                installed=True,
                description="qwen-assistant conversation agent (Qwen on llama.cpp)",
                version=version,
                models=[
                    HandleModel(
                        name=parts.model_id or "qwen",
                        attribution=PROJECT,
                        installed=True,
                        description="the assistant's language model",
                        version=None,
                        languages=["en"],
                    )
                ],
                supports_home_control=parts.home_control,
            )
        )
    return info
