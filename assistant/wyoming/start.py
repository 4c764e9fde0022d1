"""The service's Wyoming server, started on the parts it already has (loading what it
lacks): a part that cannot load is left out with one warning, a uri that cannot be bound
is logged, and the rest of the service serves on."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Config
from ..errors import AssistantError

if TYPE_CHECKING:
    from ..api.state import ApiState
    from . import info
    from .server import WyomingServer

__all__ = ["start_wyoming"]

log = logging.getLogger(__name__)


async def start_wyoming(
    config: Callable[[], Config],
    state: ApiState,
    load: Callable[[Callable[[], Any]], Awaitable[Any]],
) -> tuple[info.Parts, WyomingServer | None]:
    """The Wyoming server on the parts the service has (``load`` runs what it lacks on
    the loader thread): its parts, and the server (None, logged, when it cannot bind)."""
    from ..speech.stt import make_recognizer
    from ..speech.tts import PiperTTS
    from ..speech.wake import builtin_words
    from .agent import Agent
    from .handler import Handler
    from .info import Parts as WyomingParts
    from .server import WyomingServer

    settings = config()
    parts = WyomingParts(
        agent=Agent(config, state.turns),
        model_id=state.model_id,
        home_control=bool(settings.actions),
        metrics=state.metrics,
        language=settings.speech.language,
    )
    if state.voice is not None:
        parts.recognizer = state.voice.ears.recognizer
    else:
        try:
            parts.recognizer = await load(functools.partial(make_recognizer, settings))
        except (AssistantError, OSError) as exc:
            log.warning("wyoming: no speech-to-text or wake phrase: %s", exc)
            parts.missing["asr"] = parts.missing["wake"] = str(exc)
    if parts.recognizer is not None:
        parts.stt_model = Path(str(parts.recognizer.path)).name
        parts.wake_phrase = settings.voice.wake_phrase.strip()
    parts.wake_words = builtin_words()  # microWakeWord needs no speech-to-text
    if state.mouth is not None:
        parts.tts = state.mouth.tts
    else:
        tts = PiperTTS.from_config(settings)
        try:
            await load(tts.load)
            parts.tts = tts
        except (AssistantError, OSError) as exc:
            log.warning("wyoming: no text-to-speech: %s", exc)
            parts.missing["tts"] = str(exc)
    server = WyomingServer(
        settings.wyoming, functools.partial(Handler, parts, settings.wyoming.max_audio_s)
    )
    try:
        await server.start()
    except AssistantError as exc:
        log.error("wyoming off (the API and voice still serve): %s", exc)
        state.wyoming_off = str(exc)
        return parts, None
    offered = [k for k in ("asr", "tts", "handle") if k not in parts.missing]
    if parts.wake_words or parts.wake_phrase:
        offered.append("wake " + ", ".join([*parts.wake_words, parts.wake_phrase]).rstrip(", "))
    log.info("wyoming listening on %s (%s)", server.url, ", ".join(offered))
    return parts, server
