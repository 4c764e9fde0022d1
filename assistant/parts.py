"""The house's parts, built in one place.

:class:`Parts` is the house for one command: ``ask``, ``chat``, ``listen`` and ``bench
voice`` build the governor (with its levers), the Brain, the Actor and the turn runner here,
so a question takes the same path whichever command asks it. A command beside the service
never drives the fan or the clock cap (``drive_fan=False``). The service (``run``) builds its
own in its start order, with the builders below for what only it has: the mouth
(:func:`build_mouth`), the listening loop (:func:`build_voice`) and the Wyoming server
(:func:`assistant.wyoming.start.start_wyoming`).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from .actions.actor import Actor
from .brain import Brain
from .config import Config
from .errors import AssistantError
from .thermal.governor import Governor
from .turn import Turns

if TYPE_CHECKING:
    from .llm.engine import Engine
    from .llm.ports import TextEngine
    from .speech.ears import Ears
    from .speech.mouth import Mouth
    from .speech.stt import Recognizer
    from .voiceloop import VoiceLoop

__all__ = ["Parts", "build_mouth", "build_voice", "unpaced", "voice_loop"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def unpaced(config: Config) -> Config:
    """``config`` without the thermal rate limit between requests: a bench or a rig runs
    its turns back to back (the heat checks and levers still act)."""
    thermal = dataclasses.replace(config.thermal, rate_per_min=600.0, burst=100, queue_size=100)
    return dataclasses.replace(config, thermal=thermal)


class Parts:
    """Built in order, closed in reverse (a context manager); :meth:`load` loads the model."""

    def __init__(
        self,
        config: Config,
        *,
        model: str | None = None,
        drive_fan: bool = False,
        actor: Actor | None = None,
    ) -> None:
        self.config = config
        self.model = model
        self.governor = Governor.from_config(config, drive_fan=drive_fan)
        self.governor.tick()
        self.brain = Brain(self.governor.admission)
        self.actor = actor if actor is not None else Actor(config.actions)
        self.turns = Turns(self.brain, self.actor, lambda: self.config)
        #: the engine make_engine() loaded (its backend and GGUF info)
        self.engine: Engine | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def check_open(self) -> None:
        """Raise :class:`~assistant.thermal.admission.Busy` now if it is too hot to answer
        (before the model loads for nothing)."""
        self.governor.admission.check_open()

    def make_engine(self) -> Engine:
        """The engine, loaded, the governor's levers on it, the actions' system prompt in
        its KV cache (the prompt every turn starts with)."""
        from .llm.engine import Engine

        engine = Engine.from_config(self.config, self.model, intensity=self.governor.intensity)
        engine.load()
        engine.warm_system(self.actor.system_prompt(self.config.llm.system_prompt))
        self.engine = engine
        return engine

    async def load(self, make_engine: Callable[[], TextEngine] | None = None) -> None:
        """Load the model on the Brain's inference thread; the governor starts ticking."""
        await self.brain.load(make_engine or self.make_engine)
        if self._ticker is None:
            self._ticker = threading.Thread(
                target=self.governor.run, args=(self._stop,), name="governor", daemon=True
            )
            self._ticker.start()

    def close(self) -> None:
        self._stop.set()
        self.brain.close()

    def __enter__(self) -> Parts:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def build_mouth(config: Config, speak_to: str | None = None) -> tuple[Mouth | None, str]:
    """piper and the speaker (``speak_to``: a WAV file instead), or None and why not."""
    from .speech.audio import SoundDeviceSpeaker, WavSpeaker
    from .speech.mouth import Mouth
    from .speech.tts import PiperTTS

    try:
        tts = PiperTTS.from_config(config)
        tts.load()
    except (AssistantError, OSError) as exc:  # a model file it cannot read, too
        log.warning("speech output off: %s", exc)
        return None, f"no speech output: {exc}"
    speaker: Any = (
        WavSpeaker(speak_to) if speak_to else SoundDeviceSpeaker(config.speech.output_device)
    )
    return Mouth(tts, speaker), ""


def make_ears(config: Config, recognizer: Recognizer) -> Ears:
    """What hears the microphone: the configured front end, voice-activity detector and
    ``recognizer`` (the service's loop and ``bench voice`` alike). A front end that cannot
    run is a :class:`~assistant.errors.ModelError` naming the setting."""
    from .speech.ears import Ears
    from .speech.frontend import make_front_end
    from .speech.vad import make_segmenter

    speech = config.speech
    front_end = make_front_end(speech, recognizer.rate)
    segmenter = make_segmenter(speech.vad, speech.trailing_silence_s)
    ends = (speech.trailing_silence_s, speech.trailing_silence_max_s)
    return Ears(
        recognizer,
        segmenter,
        front_end=front_end,
        end_silence_s=ends,
        language=speech.language,
        speculate_s=speech.pause_s,
    )


def voice_loop(
    config: Config,
    turns: Turns,
    mouth: Mouth,
    mic: Any,
    ears: Ears,
    *,
    indicators: Any = None,
    wake: Any = None,
    spare: Callable[[], bool] = lambda: True,
) -> VoiceLoop:
    """The voice on ``turns`` and its listening loop on ``mic`` and ``ears``, answering ahead
    when voice.answer_ahead says so (the service's, and `bench voice`'s rig's)."""
    from .ahead import Ahead
    from .voice import Voice
    from .voiceloop import VoiceLoop

    speaker = Voice(config, turns, mouth)
    ahead = None
    if config.voice.answer_ahead:
        ahead = Ahead(speaker, allowed=spare, language=config.speech.language)
    return VoiceLoop(config, mic, ears, speaker, indicators=indicators, wake=wake, ahead=ahead)


def build_voice(
    config: Config,
    turns: Turns,
    mouth: Mouth,
    listen_from: str | None = None,
    gpio: list[Any] | None = None,
    *,
    spare: Callable[[], bool] = lambda: True,
) -> tuple[VoiceLoop | None, str]:
    """The listening loop: microphone (opened now; ``listen_from``: a WAV file), recognizer,
    wake word, LEDs and button (added to ``gpio``, closed at stop), the voice on ``turns``;
    or None and why not (the service then serves text only). ``spare``: may work be spent
    on answers prepared ahead now (the governor's :meth:`~.Governor.spare`)."""
    from .hardware import Indicators, PushButton
    from .speech.audio import SoundDeviceMicrophone, WavMicrophone
    from .speech.stt import make_recognizer

    gpio = gpio if gpio is not None else []
    try:
        recognizer = make_recognizer(config)
    except (AssistantError, OSError) as exc:
        log.error("voice off (the API still serves text): %s", exc)
        return None, str(exc)
    mic: Any = (
        WavMicrophone(listen_from, rate=recognizer.rate, realtime=True)
        if listen_from
        else SoundDeviceMicrophone(config.speech.input_device, rate=recognizer.rate)
    )
    try:
        ears = make_ears(config, recognizer)
    except AssistantError as exc:
        log.error("voice off (the API still serves text): %s", exc)
        return None, str(exc)
    if ears.front_end is not None:
        log.info("audio front end: %s", ears.front_end.describe())
    wake = None
    if config.voice.wake == "word":
        from .speech.wake import make_wake

        vc = config.voice
        try:
            wake = make_wake(vc.wake_engine, vc.wake_word, vc.wake_threshold)
        except AssistantError as exc:
            log.error("voice off (the API still serves text): voice.wake_word: %s", exc)
            return None, f"voice.wake_word: {exc}"
    indicators = None
    try:
        indicators = Indicators(config.voice)
    except AssistantError as exc:
        log.warning("status LEDs off: %s", exc)
    if indicators is not None and indicators.leds:
        gpio.append(indicators)
    voice = voice_loop(
        config, turns, mouth, mic, ears, indicators=indicators, wake=wake, spare=spare
    )
    if config.voice.button_pin:
        try:
            gpio.append(PushButton(config.voice.button_pin, voice.press))
        except AssistantError as exc:
            log.warning("push-to-talk button off: %s", exc)
    voice.open_microphone()
    return voice, ""
