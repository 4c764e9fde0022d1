"""One voice turn from a WAV file (`qwen-assistant listen`), and the rig `bench voice` uses.

:class:`VoiceRig` loads the three models once (LLM on the brain's inference thread, the
recognizer, the piper voice) and runs turns: a WAV microphone (paced like a sound card by
default, so the end-of-speech figures are what a person would wait) → ears → the voice →
a WAV speaker; :meth:`VoiceRig.loop_turn` runs the service's own listening loop instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from .ahead import AheadStats
from .config import Config
from .errors import AssistantError
from .parts import Parts, make_ears, unpaced, voice_loop
from .speech.audio import WavMicrophone, WavSpeaker
from .speech.ears import Heard
from .speech.mouth import Mouth
from .speech.stt import Recognizer, make_recognizer
from .speech.tts import PiperTTS
from .voice import TurnResult, Voice

__all__ = ["VoiceRig"]


class VoiceRig:
    def __init__(
        self,
        config: Config,
        *,
        model: str | None = None,
        stt_engine: str | None = None,
        stt_model: str | None = None,
    ) -> None:
        self.config = config
        self.model = model
        self.stt_engine = stt_engine
        self.stt_model = stt_model
        # a rig on the command line is not the service: no thermal rate limit between turns,
        # but the governor's heat checks and levers act on its engine as on the service's
        self.parts = Parts(unpaced(config), model=model)
        self.brain, self.turns = self.parts.brain, self.parts.turns
        self.recognizer: Recognizer | None = None
        self.tts: PiperTTS | None = None

    @property
    def ears_model(self) -> Recognizer:
        if self.recognizer is None:
            raise RuntimeError("load() first")
        return self.recognizer

    async def load(self) -> None:
        loop = asyncio.get_running_loop()
        await self.parts.load()
        self.recognizer = await loop.run_in_executor(
            None,
            lambda: make_recognizer(self.config, engine=self.stt_engine, model=self.stt_model),
        )
        self.tts = PiperTTS.from_config(self.config)
        await loop.run_in_executor(None, self.tts.load)
        await loop.run_in_executor(None, self._warm_up)

    def _warm_up(self) -> None:
        """One synthesis and one transcription, so the first turn is not the slow one."""
        from .speech.audio import resample

        if self.tts is not None:
            pcm = b"".join(self.tts.synthesize("Hello there."))
            ears = self.ears_model
            ears.accept(resample(pcm, self.tts.sample_rate, ears.rate))
            ears.final()

    def hear(
        self, wav: str | Path, *, realtime: bool = True, config: Config | None = None
    ) -> Heard:
        """The first utterance in ``wav`` (blocking: runs in a thread); ``config``: hear it
        with these speech settings instead of the rig's."""
        mic = WavMicrophone(wav, rate=self.ears_model.rate, realtime=realtime)
        ears = make_ears(config or self.config, self.ears_model)
        mic.open()
        try:
            while pcm := mic.read():
                heard = ears.feed(pcm)
                if heard is not None and heard.text:
                    return heard
        finally:
            mic.close()
        raise AssistantError(f"{wav}: no speech heard")

    async def turn(
        self, wav: str | Path, out: str | Path, *, streaming: bool = True, realtime: bool = True
    ) -> TurnResult:
        if self.tts is None:
            raise RuntimeError("load() first")
        loop = asyncio.get_running_loop()
        heard = await loop.run_in_executor(None, lambda: self.hear(wav, realtime=realtime))
        mouth = Mouth(self.tts, WavSpeaker(out))
        try:
            result = await Voice(self.config, self.turns, mouth).answer(
                heard, heard.text, streaming=streaming
            )
        finally:
            mouth.close()
        if result is None:  # only an answer prepared ahead is ever dropped
            raise AssertionError("an answer not prepared ahead was dropped")
        return result

    async def loop_turn(
        self, wav: str | Path, out: str | Path, *, ahead: bool
    ) -> tuple[TurnResult | None, AheadStats]:
        """``wav`` through the service's listening loop (no wake word; ``ahead``:
        voice.answer_ahead), paced like a sound card: the first answer, and what was
        prepared ahead. A fresh conversation each time."""
        if self.tts is None:
            raise RuntimeError("load() first")
        vc = dataclasses.replace(self.config.voice, wake="always", answer_ahead=ahead)
        config = dataclasses.replace(self.config, voice=vc)
        mic = WavMicrophone(wav, rate=self.ears_model.rate, realtime=True, tail_s=2.0)
        mouth = Mouth(self.tts, WavSpeaker(out))
        loop = voice_loop(config, self.turns, mouth, mic, make_ears(config, self.ears_model))
        helper = loop.ahead
        answers: list[TurnResult] = []
        loop.on_answer = answers.append
        try:
            await loop.run(asyncio.Event())
        finally:
            mouth.close()
        return (answers[0] if answers else None), (helper.stats if helper else AheadStats())

    def close(self) -> None:
        self.parts.close()
