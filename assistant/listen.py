"""One voice turn from a WAV file (`qwen-assistant listen`), and `qwen-assistant bench voice`.

:class:`VoiceRig` loads the three models once (LLM on the brain's inference thread, the
recognizer, the piper voice) and runs turns: a WAV microphone (paced like a sound card by
default, so the end-of-speech figures are what a person would wait) → ears → the voice →
a WAV speaker.
"""

from __future__ import annotations

import asyncio
import dataclasses
import resource
import statistics
import tempfile
from pathlib import Path
from typing import Any

from .config import Config
from .errors import AssistantError
from .parts import Parts, make_ears, unpaced
from .speech.audio import FRAME_S, WavMicrophone, WavSpeaker
from .speech.ears import Heard
from .speech.mouth import Mouth
from .speech.stt import Recognizer, make_recognizer
from .speech.tts import PiperTTS
from .voice import TurnResult, Voice

__all__ = ["BENCH_QUESTIONS", "VoiceRig", "bench_voice"]

#: everyday questions a kiosk hears; answers of one to three sentences (the system prompt)
BENCH_QUESTIONS = (
    "Why is the sky blue?",
    "How do bees make honey?",
    "What should I pack for a day at the beach?",
)


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

    def hear(self, wav: str | Path, *, realtime: bool = True) -> Heard:
        """The first utterance in ``wav`` (blocking: runs in a thread)."""
        mic = WavMicrophone(wav, rate=self.ears_model.rate, realtime=realtime)
        ears = make_ears(self.config, self.ears_model)
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

    def close(self) -> None:
        self.parts.close()


def _speak_to_wav(tts: PiperTTS, text: str, path: Path, lead_s: float = 0.3) -> None:
    """A spoken question: ``lead_s`` of silence, then piper's voice (steady: the same
    question is the same audio on every run, so runs compare)."""
    speaker = WavSpeaker(path)
    speaker.start(tts.sample_rate)
    speaker.write(bytes(2 * round(tts.sample_rate * lead_s)))
    for pcm in tts.synthesize(text, steady=True):
        speaker.write(pcm)
    speaker.stop()


async def bench_voice(
    config: Config,
    *,
    model: str | None = None,
    stt_engine: str | None = "whisper",
    stt_model: str | None = None,
    questions: tuple[str, ...] = BENCH_QUESTIONS,
) -> dict[str, Any]:
    """Each spoken question answered twice, streaming and sequential (alternating which goes
    first, so the prompt cache favours neither); medians of the time to first audio."""
    # temperature 0: both modes speak the same answer to the same question
    config = dataclasses.replace(config, llm=dataclasses.replace(config.llm, temperature=0.0))
    rig = VoiceRig(config, model=model, stt_engine=stt_engine, stt_model=stt_model)
    await rig.load()
    if rig.tts is None:
        raise RuntimeError("load() did not load the voice")
    streaming: list[float] = []
    sequential: list[float] = []
    stt_rtf: list[float] = []
    tts_rtf: list[float] = []
    per_question: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for i, question in enumerate(questions):
                wav = Path(tmp) / f"q{i}.wav"
                _speak_to_wav(rig.tts, question, wav)
                order = (True, False) if i % 2 == 0 else (False, True)
                row: dict[str, Any] = {"question": question}
                for mode in order:
                    result = await rig.turn(wav, Path(tmp) / "a.wav", streaming=mode)
                    (streaming if mode else sequential).append(result.first_audio_s)
                    stt_rtf.append(result.stt_rtf)
                    tts_rtf.append(result.tts_rtf)
                    key = "streaming" if mode else "sequential"
                    row[f"ttfa_{key}_s"] = round(result.first_audio_s, 3)
                    row["heard"], row["answer_chars"] = result.transcript, len(result.answer)
                    row["stt_final_s"] = round(result.stt_final_s, 3)
                per_question.append(row)
    finally:
        rig.close()
    ttfa_s, ttfa_q = statistics.median(streaming), statistics.median(sequential)
    return {
        "questions": len(questions),
        "stt_engine": stt_engine or config.speech.stt_engine,
        "model": Path(str(rig.brain.engine.model_path)).name if rig.brain.engine else "",
        "ttfa_streaming_s": round(ttfa_s, 3),
        "ttfa_sequential_s": round(ttfa_q, 3),
        "ttfa_ratio": round(ttfa_s / ttfa_q, 3) if ttfa_q else None,
        "stt_rtf": round(statistics.median(stt_rtf), 3),
        "tts_rtf": round(statistics.median(tts_rtf), 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "frame_s": FRAME_S,
        "per_question": per_question,
    }
