"""The voice without models: fakes that implement the real interfaces (microphone,
recognizer, TTS, speaker), gpiozero's MockFactory for the button and LEDs."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import math
import threading
import wave
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory

from assistant.config import Config, Voice
from assistant.hardware import Indicators, PushButton
from assistant.speech.audio import FRAME_S, MicLost, WavMicrophone, read_wav, resample
from assistant.speech.ears import Ears, Heard
from assistant.speech.mouth import SLICE_S, Mouth
from assistant.speech.stt import done
from assistant.speech.vad import Segmenter
from assistant.voice import TurnResult
from assistant.voiceloop import VoiceLoop, match_wake
from tests.fakes import Clock, FakeTTS, NullSpeaker

RATE = 16000
FRAME = 2 * round(RATE * FRAME_S)


def sync(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on a fresh event loop (no pytest plugin needed)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def tone(seconds: float, amplitude: int = 8000) -> bytes:
    n = round(RATE * seconds)
    return b"".join(
        int(amplitude * math.sin(2 * math.pi * 220 * i / RATE)).to_bytes(2, "little", signed=True)
        for i in range(n)
    )


def frames(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + FRAME] for i in range(0, len(pcm), FRAME)]


def utterance() -> list[bytes]:
    """0.6 s of "speech", then 0.7 s of silence (ends it at the 0.5 s trailing silence)."""
    return frames(tone(0.6) + bytes(2 * round(RATE * 0.7)))


class ScriptedRecognizer:
    """A streaming recognizer that "hears" the next scripted text in each utterance."""

    rate = RATE
    streaming = True
    path = Path("scripted")

    def __init__(self, texts: list[str]) -> None:
        self.texts = list(texts)
        self.heard: list[str] = []
        self._got = 0

    def accept(self, pcm: bytes) -> str:
        self._got += len(pcm)
        return self.texts[0] if self.texts and self._got > FRAME * 5 else ""

    def final(self) -> str:
        text = self.texts.pop(0) if self.texts else ""
        self.heard.append(text)
        self._got = 0
        return text

    def reset(self) -> None:
        self._got = 0

    def sibling(self) -> ScriptedRecognizer:
        return ScriptedRecognizer(self.texts)

    def guess(self) -> Future[str]:
        return done(self.accept(b""))


class FakeVoice:
    """Implements what VoiceLoop uses of Voice; answers when released."""

    def __init__(self) -> None:
        self.questions: list[str] = []
        self.history: list[tuple[str, str]] = []
        self.last_turn_at = 1000.0
        self.on_first_audio: Any = None
        self.release = asyncio.Event()
        self.interrupted = 0
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1
        self.history = []

    def interrupt(self) -> None:
        self.interrupted += 1
        self.release.set()

    async def answer(self, heard: Heard, question: str, *, streaming: bool = True) -> TurnResult:
        self.questions.append(question)
        if self.on_first_audio:
            self.on_first_audio(0.0)
        await self.release.wait()
        self.history.append(("user", question))
        return TurnResult(heard.text, "ok", "ok", 0, 0, 0, 0, 0, 0, 0)


def rig(texts: list[str], **voice: Any) -> tuple[VoiceLoop, FakeVoice, Clock, ScriptedRecognizer]:
    """A voice loop on scripted transcripts; it wakes on the phrase unless told otherwise."""
    voice = {"wake": "phrase", **voice}
    config = Config()
    config = dataclasses.replace(config, voice=dataclasses.replace(config.voice, **voice))
    clock = Clock()
    recognizer = ScriptedRecognizer(texts)
    ears = Ears(recognizer, Segmenter(trailing_silence_s=0.5), clock=clock)
    fake = FakeVoice()
    loop = VoiceLoop(config, mic=None, ears=ears, voice=fake, clock=clock)  # type: ignore[arg-type]
    return loop, fake, clock, recognizer


async def speak(loop: VoiceLoop, clock: Clock, pcm_frames: list[bytes]) -> None:
    for pcm in pcm_frames:
        clock.now += FRAME_S
        await loop._frame(pcm)


async def settle(loop: VoiceLoop) -> None:
    if loop._answering is not None:
        await loop._answering


# -- wake --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "rest"),
    [
        ("hey robot what time is it", "what time is it"),
        ("Hey, Robot! What time is it?", "What time is it?"),
        ("hey robo, lights on", "lights on"),
        ("hey robot", ""),
        ("what time is it", None),
        ("hey", None),
        ("they rob it", None),
    ],
)
def test_match_wake(text: str, rest: str | None) -> None:
    assert match_wake(text, "hey robot") == rest


@sync
async def test_the_wake_phrase_opens_a_question_and_a_follow_up_window() -> None:
    loop, voice, clock, _ = rig(
        ["what time is it", "hey robot what time is it", "and tomorrow", "is it raining"]
    )
    voice.release.set()
    await speak(loop, clock, utterance())  # no wake phrase: ignored
    assert voice.questions == []
    await speak(loop, clock, utterance())
    await settle(loop)
    assert voice.questions == ["what time is it"]
    await speak(loop, clock, utterance())  # within follow_up_s: no phrase needed
    await settle(loop)
    assert voice.questions == ["what time is it", "and tomorrow"]
    clock.now += loop.config.voice.follow_up_s + 1
    await speak(loop, clock, utterance())  # the window has closed
    assert voice.questions == ["what time is it", "and tomorrow"]


@sync
async def test_the_wake_phrase_alone_arms_the_next_utterance() -> None:
    loop, voice, clock, _ = rig(["hey robot", "turn on the lights"])
    voice.release.set()
    await speak(loop, clock, utterance())
    assert voice.questions == []
    await speak(loop, clock, utterance())
    await settle(loop)
    assert voice.questions == ["turn on the lights"]


@sync
async def test_always_listening_takes_every_utterance() -> None:
    loop, voice, clock, _ = rig(["hello there", "how are you"], wake="always")
    voice.release.set()
    for _ in range(2):
        await speak(loop, clock, utterance())
        await settle(loop)
    assert voice.questions == ["hello there", "how are you"]


@sync
async def test_the_conversation_resets_after_the_idle_timeout() -> None:
    loop, voice, clock, _ = rig(["hey robot hi", "hey robot again"], idle_reset_s=60.0)
    voice.release.set()
    await speak(loop, clock, utterance())
    await settle(loop)
    assert voice.history and voice.resets == 0
    voice.last_turn_at = clock.now
    clock.now += 61
    await speak(loop, clock, utterance())
    await settle(loop)
    assert voice.resets == 1 and voice.history == [("user", "again")]


class FakeWake:
    """A wake-word detector that "hears" the word once ``say()`` was called; counts frames."""

    name = "okay_nabu"

    def __init__(self) -> None:
        self.fed = 0
        self._fire = False

    def say(self) -> None:
        self._fire = True

    def feed(self, pcm: bytes) -> float | None:
        self.fed += 1
        if self._fire:
            self._fire = False
            return self.fed * FRAME_S
        return None


def word_rig(texts: list[str], **voice: Any) -> tuple[VoiceLoop, FakeVoice, Clock, Any, FakeWake]:
    loop, fake, clock, recognizer = rig(texts, wake="word", **voice)
    loop.wake = wake = FakeWake()
    return loop, fake, clock, recognizer, wake


@sync
async def test_a_wake_word_arms_the_recognizer_which_is_idle_until_then() -> None:
    loop, voice, clock, recognizer, wake = word_rig(["what time is it", "and tomorrow"])
    voice.release.set()
    await speak(loop, clock, utterance())  # no wake word: the recognizer hears nothing
    assert voice.questions == [] and recognizer.heard == [] and wake.fed > 0
    wake.say()
    await speak(loop, clock, frames(bytes(FRAME)))  # "okay nabu"
    await speak(loop, clock, utterance())
    await settle(loop)
    assert voice.questions == ["what time is it"]  # the whole utterance is the question
    await speak(loop, clock, utterance())  # the follow-up window: no wake word needed
    await settle(loop)
    assert voice.questions == ["what time is it", "and tomorrow"]
    clock.now += loop.config.voice.follow_up_s + 1
    fed = len(recognizer.heard)
    await speak(loop, clock, utterance())  # the window has closed: the model listens again
    assert len(recognizer.heard) == fed and voice.questions == ["what time is it", "and tomorrow"]


@sync
async def test_the_wake_word_barges_in_while_speaking() -> None:
    loop, voice, clock, recognizer, wake = word_rig(["tell me a story"], barge_in=True)
    wake.say()
    await speak(loop, clock, frames(bytes(FRAME)) + utterance())
    assert loop.speaking
    heard = len(recognizer.heard)
    await speak(loop, clock, utterance())  # someone talks over it: no wake word, no barge-in
    assert voice.interrupted == 0
    wake.say()
    await speak(loop, clock, frames(bytes(FRAME)))
    assert voice.interrupted == 1 and len(recognizer.heard) == heard  # nothing transcribed
    await settle(loop)


@sync
async def test_a_barge_in_listens_at_once_for_the_question_that_follows() -> None:
    """ "Okay Nabu" over the answer stops it, and the question said right after it (before
    the interrupted answer has wound down) is heard whole and answered."""
    loop, voice, clock, recognizer, wake = word_rig(
        ["tell me a story", "what time is it"], barge_in=True
    )
    wake.say()
    await speak(loop, clock, frames(bytes(FRAME)) + utterance())
    assert loop.speaking and recognizer.heard == ["tell me a story"]
    wake.say()
    await speak(loop, clock, frames(bytes(FRAME)) + utterance())  # no pause after the word
    assert voice.interrupted == 1
    voice.release.set()
    await settle(loop)
    assert voice.questions == ["tell me a story", "what time is it"]
    assert recognizer.heard == ["tell me a story", "what time is it"]


@sync
async def test_stop_after_a_barge_in_stops_and_asks_nothing() -> None:
    """ "Okay Nabu … stop" over an answer: it stops, and "stop" is not answered; a stop
    word later, outside the window, is an ordinary question."""
    loop, voice, clock, _, wake = word_rig(
        ["tell me a story", "Stop.", "stop"], barge_in=True, follow_up_s=4.0
    )
    wake.say()
    await speak(loop, clock, frames(bytes(FRAME)) + utterance())
    wake.say()
    await speak(loop, clock, frames(bytes(FRAME)) + utterance())
    voice.release.set()
    await settle(loop)
    assert voice.interrupted == 1 and voice.questions == ["tell me a story"]
    clock.now += 5
    wake.say()
    await speak(loop, clock, frames(bytes(FRAME)) + utterance())
    await settle(loop)
    assert voice.questions == ["tell me a story", "stop"]


@pytest.mark.parametrize(
    ("text", "stop"),
    [("Stop.", True), ("Never mind!", True), ("okay, stop", True), ("stop the music", False)],
)
def test_what_counts_as_just_stop(text: str, stop: bool) -> None:
    from assistant.speech.wake import is_stop

    assert is_stop(text) is stop


@sync
async def test_a_wake_phrase_barge_in_takes_the_question_without_the_phrase() -> None:
    """ "Hey robot, what time is it?" over an answer: the phrase (on the partial result) stops
    it and the rest of the utterance is the next question."""
    loop, voice, clock, _ = rig(
        ["hey robot tell me a story", "hey robot what time is it"], barge_in=True
    )
    await speak(loop, clock, utterance())
    await speak(loop, clock, utterance())  # over the answer
    assert voice.interrupted == 1
    voice.release.set()
    await settle(loop)
    assert voice.questions == ["tell me a story", "what time is it"]


def test_voice_wake_word_must_name_a_model(tmp_path: Path) -> None:
    from assistant.config import load_config
    from assistant.errors import ConfigError

    path = tmp_path / "config.toml"
    path.write_text('[voice]\nwake = "word"\nwake_word = ""\n')
    with pytest.raises(ConfigError, match=r"voice\.wake_word: must name a model"):
        load_config(path)


# -- half duplex and barge-in ------------------------------------------------------------------
@sync
async def test_half_duplex_ignores_the_microphone_while_speaking() -> None:
    loop, voice, clock, recognizer = rig(["hey robot tell me a story", "hey robot stop"])
    await speak(loop, clock, utterance())
    assert loop.speaking
    await speak(loop, clock, utterance())  # its own voice (or anyone's) while it speaks
    assert voice.interrupted == 0 and recognizer.heard == ["hey robot tell me a story"]
    voice.release.set()
    await settle(loop)
    assert voice.questions == ["tell me a story"]


@sync
async def test_barge_in_by_wake_phrase_interrupts_on_the_partial_result() -> None:
    loop, voice, clock, _ = rig(["hey robot tell me a story", "hey robot stop"], barge_in=True)
    await speak(loop, clock, utterance())
    assert loop.speaking
    said = tone(0.6)
    fed = 0
    for pcm in frames(said):
        clock.now += FRAME_S
        await loop._frame(pcm)
        fed += 1
        if voice.interrupted:
            break
    # interrupted as soon as the partial result held the phrase, before the utterance ended
    assert voice.interrupted == 1 and fed < len(frames(said))
    await settle(loop)


@sync
async def test_the_button_listens_and_barges_in() -> None:
    loop, voice, clock, _ = rig(["play music", "what is that"], wake="button", barge_in=True)
    loop._loop = asyncio.get_running_loop()
    factory = MockFactory()
    button = PushButton("GPIO17", loop.press, pin_factory=factory)
    await speak(loop, clock, utterance())
    assert voice.questions == []  # button mode: speech alone does nothing
    factory.pin(17).drive_low()  # pressed (pull-up: low is pressed)
    factory.pin(17).drive_high()
    await asyncio.sleep(0)  # the press crosses into the loop via call_soon_threadsafe
    await speak(loop, clock, utterance())
    await asyncio.sleep(0)  # the answer task starts
    assert voice.questions == ["what is that"] and loop.speaking
    factory.pin(17).drive_low()  # during the answer: barge in
    await asyncio.sleep(0)
    assert voice.interrupted == 1
    await settle(loop)
    button.close()


# -- the microphone: a file, and losing a live one -----------------------------------------------
class FlakyMic:
    """A microphone that is unplugged after some frames and comes back on the second try."""

    rate = RATE

    def __init__(self, before: list[bytes], after: list[bytes]) -> None:
        self.before, self.after = list(before), list(after)
        self.reopens = 0
        self.closed = False

    def open(self) -> None:
        pass

    def read(self, timeout: float = 1.0) -> bytes:
        if self.before:
            return self.before.pop(0)
        if self.reopens < 2:
            raise MicLost("microphone USB: no audio for 3 s")
        return self.after.pop(0) if self.after else b""

    def reopen(self) -> None:
        self.reopens += 1
        if self.reopens < 2:
            raise MicLost("no input device named 'USB'")

    def close(self) -> None:
        self.closed = True


class Shown:
    def __init__(self) -> None:
        self.states: list[str] = []

    def show(self, state: str) -> None:
        self.states.append(state)


@sync
async def test_a_lost_microphone_is_reported_and_reopened_with_backoff() -> None:
    loop, voice, _, _ = rig(["hey robot are you back"])
    voice.release.set()
    loop.mic = FlakyMic(utterance()[:5], utterance())
    loop.backoff_s = 0.001
    loop.indicators = shown = Shown()
    beats: list[int] = []
    loop.heartbeat = lambda: beats.append(1)
    await loop.run(asyncio.Event())
    assert shown.states[:3] == ["listening", "mic lost", "listening"]
    assert loop.mic.reopens == 2 and loop.mic.closed
    assert voice.questions == ["are you back"]  # it hears again after the reopen
    assert len(beats) > 2  # retrying counts as progress for the watchdog


def test_wav_microphone_frames_then_silence_then_the_end(tmp_path: Path) -> None:
    path = tmp_path / "q.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(22050)
        w.writeframes(bytes(4 * 22050))  # 1 s stereo
    mic = WavMicrophone(path, rate=RATE, tail_s=0.5)
    mic.open()
    got = []
    while pcm := mic.read():
        got.append(pcm)
    assert sum(map(len, got)) == pytest.approx(2 * RATE * 1.5, abs=4)
    assert all(len(p) == FRAME for p in got[:-1])


def test_read_wav_errors_name_the_file(tmp_path: Path) -> None:
    from assistant.speech.audio import AudioError

    with pytest.raises(AudioError, match=r"missing\.wav: no such file"):
        read_wav(tmp_path / "missing.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really")
    with pytest.raises(AudioError, match=r"bad\.wav: not a readable WAV file"):
        read_wav(bad)


def test_resample_keeps_duration_and_pitch_shape() -> None:
    pcm = tone(1.0)
    out = resample(pcm, RATE, 22050)
    assert len(out) == 2 * 22050
    back = np.frombuffer(resample(out, 22050, RATE), dtype="<i2").astype(int)
    assert np.abs(back - np.frombuffer(pcm, dtype="<i2")).max() < 300


def test_resample_of_a_long_recording_needs_a_blocks_memory_and_is_the_whole_interpolation() -> (
    None
):
    """A WAV microphone resamples its whole file at open: an hour of 22 kHz audio took
    ~700 MB of float64 temporaries at once (the voice soak's first peak). Block by block
    it is the same samples for a block's memory."""
    import tracemalloc

    rng = np.random.default_rng(3)
    pcm = rng.integers(-32768, 32767, 22050 * 30 + 7, dtype=np.int16).tobytes()
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    n = round(len(x) * RATE / 22050)
    whole = np.interp(np.linspace(0, len(x) - 1, n), np.arange(len(x)), x)
    expected = np.clip(np.rint(whole), -32768, 32767).astype("<i2").tobytes()
    tracemalloc.start()
    try:
        out = resample(pcm, 22050, RATE)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out == expected
    assert peak < 3 * len(out)  # the output (bytearray, bytes) and a block; was 27x


# -- the mouth: streaming overlap and barge-in ----------------------------------------------------
class GatedSpeaker:
    """Each write (one slice) waits for the test to let it play."""

    def __init__(self) -> None:
        self.gate = threading.Semaphore(0)
        self.writing = threading.Semaphore(0)
        self.writes: list[bytes] = []
        self.calls: list[str] = []
        self.stopped = threading.Event()

    def start(self, rate: int) -> None:
        self.calls.append("start")

    def write(self, pcm: bytes) -> None:
        self.writing.release()
        assert self.gate.acquire(timeout=10)
        self.writes.append(pcm)

    def stop(self) -> None:
        self.calls.append("stop")
        self.stopped.set()

    def abort(self) -> None:
        self.calls.append("abort")
        self.stopped.set()


def test_chunk_n_plus_1_is_synthesised_while_chunk_n_plays() -> None:
    tts, speaker = FakeTTS(), GatedSpeaker()
    mouth = Mouth(tts, speaker)
    try:
        u = mouth.start()
        u.add("one two three.")
        assert speaker.writing.acquire(timeout=10)  # chunk 1 is playing (held at the gate)
        u.add("four five.")
        assert tts.event.acquire(timeout=10) and tts.event.acquire(timeout=10)
        assert tts.synthesised == ["one two three.", "four five."]  # while chunk 1 still plays
        u.end()
        for _ in range(100):
            speaker.gate.release()
        assert u.done.wait(10)
        assert speaker.calls == ["start", "stop"]
        assert sum(map(len, speaker.writes)) == 2 * 100 * 5
        assert u.spoken() == "one two three. four five."
    finally:
        mouth.close()


def test_the_heap_is_trimmed_after_each_chunk_once_the_player_has_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What piper freed goes back to the system after each chunk (memory.trim), never
    before the chunk's audio is in the player's hands: the first audio waits for no trim."""
    tts, speaker = FakeTTS(), GatedSpeaker()
    mouth = Mouth(tts, speaker)
    handed: list[str] = []
    put = mouth._sounds.put

    def hand(item: Any) -> None:
        if item is not None and item[1] is not None:
            handed.append(item[1].text)
        put(item)

    monkeypatch.setattr(mouth._sounds, "put", hand)
    trims: list[list[str]] = []
    monkeypatch.setattr("assistant.speech.mouth.trim", lambda: trims.append(list(handed)))
    try:
        u = mouth.start()
        u.add("one two three.")
        u.add("four five.")
        u.end()
        for _ in range(100):
            speaker.gate.release()
        assert u.done.wait(10)
        assert trims == [["one two three."], ["one two three.", "four five."]]
    finally:
        mouth.close()


def test_barge_in_stops_within_one_slice_and_keeps_what_was_heard() -> None:
    tts, speaker = FakeTTS(), GatedSpeaker()
    mouth = Mouth(tts, speaker)
    try:
        u = mouth.start()
        words = " ".join(f"w{i}" for i in range(20))  # 2 s of audio: 40 slices of 50 ms
        u.add(words + ".")
        u.add("never said.")
        for _ in range(10):  # 10 slices (0.5 s) play
            assert speaker.writing.acquire(timeout=10)
            speaker.gate.release()
        assert speaker.writing.acquire(timeout=10)  # the 11th slice is being written
        u.stop()
        speaker.gate.release()
        assert speaker.stopped.wait(10) and u.done.wait(10)
        assert len(speaker.writes) == 11  # nothing after the slice in flight
        assert speaker.calls == ["start", "abort"]  # the buffer is dropped, not drained
        assert 11 * 2 * round(1000 * SLICE_S) == sum(map(len, speaker.writes))
        assert u.spoken() == " ".join(f"w{i}" for i in range(6)) + " …"  # 11/40 of 20 words
    finally:
        mouth.close()


# -- GPIO ----------------------------------------------------------------------------------------
def test_leds_show_the_state_and_are_off_when_not_fitted() -> None:
    factory = MockFactory()
    settings = dataclasses.replace(
        Voice(), led_listening_pin="GPIO5", led_thinking_pin="GPIO6", led_error_pin="GPIO13"
    )
    leds = Indicators(settings, pin_factory=factory)
    leds.show("listening")
    assert [factory.pin(n).state for n in (5, 6, 13)] == [1, 0, 0]
    leds.show("thinking")
    assert [factory.pin(n).state for n in (5, 6, 13)] == [0, 1, 0]
    leds.show("speaking")  # no speaking LED fitted: all off
    assert [factory.pin(n).state for n in (5, 6, 13)] == [0, 0, 0]
    leds.show("mic lost")
    assert [factory.pin(n).state for n in (5, 6, 13)] == [0, 0, 1]
    leds.close()
    assert Indicators(Voice()).leds == {}  # no pins configured: gpiozero is not even used


# -- ears ----------------------------------------------------------------------------------------
def test_ears_report_the_end_of_speech_and_the_transcript() -> None:
    clock = Clock()
    recognizer = ScriptedRecognizer(["hello"])
    ears = Ears(recognizer, Segmenter(trailing_silence_s=0.5), clock=clock)
    heard = None
    last_voiced = 0.0
    for pcm in frames(bytes(2 * 4800)) + utterance():
        clock.now += FRAME_S
        if any(pcm):
            last_voiced = clock.now
        heard = ears.feed(pcm) or heard
    assert heard is not None and heard.text == "hello"
    assert heard.speech_end == pytest.approx(last_voiced, abs=FRAME_S)
    assert heard.stt_final_s == pytest.approx(0.5, abs=2 * FRAME_S)
    assert heard.audio_s == pytest.approx(0.6 + 0.5 + 0.3, abs=0.15)  # with pre-roll


def test_devices_are_chosen_by_name_and_an_unknown_name_lists_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from assistant.speech import audio

    devices = [
        {"index": 0, "name": "bcm2835 Headphones", "inputs": 0, "outputs": 2, "rate": 44100},
        {"index": 3, "name": "USB PnP Sound Device: Audio (hw:2,0)", "inputs": 1,
         "outputs": 2, "rate": 48000},
    ]  # fmt: skip
    monkeypatch.setattr(audio, "list_devices", lambda: devices)
    assert audio.find_device("usb pnp", "input") == 3  # the index may change; the name not
    assert audio.find_device("", "input") is None  # the system default
    with pytest.raises(audio.AudioError) as error:
        audio.find_device("ReSpeaker", "input")
    assert str(error.value) == (
        "speech.input_device 'ReSpeaker' not found; input devices: "
        "'USB PnP Sound Device: Audio (hw:2,0)'"
    )


@sync
async def test_a_failed_answer_keeps_the_loop_listening() -> None:
    from assistant.thermal.admission import Busy

    loop, voice, clock, _ = rig(["hey robot hello", "hey robot again"])

    async def too_hot(heard: Heard, question: str, *, streaming: bool = True) -> TurnResult:
        raise Busy("too_hot", 30, "SoC at 86.0 °C")

    voice.answer = too_hot  # type: ignore[method-assign]
    await speak(loop, clock, utterance())
    await settle(loop)
    assert loop.state == "listening" and "86.0 °C" in loop.problem
    voice.answer = FakeVoice.answer.__get__(voice)  # type: ignore[method-assign]
    voice.release.set()
    clock.now += 1
    await speak(loop, clock, utterance())
    await settle(loop)
    assert voice.questions == ["again"]


def test_an_api_say_does_not_cut_off_a_voice_answer() -> None:
    tts, speaker = FakeTTS(), GatedSpeaker()
    mouth = Mouth(tts, speaker)
    try:
        answer = mouth.start()
        answer.add("one two three.")
        assert speaker.writing.acquire(timeout=10)  # the voice answer is playing
        assert mouth.say("an API answer.") is False
        answer.end()
        for _ in range(100):
            speaker.gate.release()
        assert answer.done.wait(10) and not answer.stopped
        assert mouth.say("an API answer.") is True  # once the voice is done
    finally:
        for _ in range(100):
            speaker.gate.release()
        mouth.close()


# -- actions in a voice turn ------------------------------------------------------------------
def _voice_with(words: list[str], call: str, tmp_path: Path) -> tuple[Any, FakeTTS, Path]:
    from assistant.actions.actor import Actor
    from assistant.brain import Brain
    from assistant.config import Action, Thermal
    from assistant.thermal.admission import Admission
    from assistant.turn import Turns
    from assistant.voice import Voice as VoiceTurn
    from tests.fakes import FakeEngine

    marker = tmp_path / "ran"
    action = Action(
        name="light_on",
        description="Turn on the light in a room",
        parameters={
            "type": "object",
            "properties": {"room": {"type": "string", "enum": ["kitchen", "hall"]}},
        },
        command=("/usr/bin/touch", str(marker)),
        say="The {room} light is on.",
    )
    tts = FakeTTS()
    brain = Brain(Admission(Thermal(sensor_path="")), FakeEngine(words, call=call))
    turns = Turns(brain, Actor([action]), Config)
    voice = VoiceTurn(Config(), turns, Mouth(tts, NullSpeaker()))
    return voice, tts, marker


@sync
async def test_a_voice_turn_runs_the_called_action_and_says_what_happened(tmp_path: Path) -> None:
    call = '{"name": "light_on", "arguments": {"room": "kitchen"}}'
    voice, tts, marker = _voice_with([], call, tmp_path)
    heard = Heard("Turn on the kitchen light.", 0.0, 0.0, 1.0, 0.1)
    result = await voice.answer(heard, "Turn on the kitchen light.")
    voice.mouth.close()
    assert marker.exists()  # the command really ran
    assert result.answer == result.spoken == "The kitchen light is on."
    assert tts.synthesised == ["The kitchen light is on."]  # the JSON was never spoken
    assert voice.history[0] == ("user", "Turn on the kitchen light.")
    assert voice.history[1][1].startswith("<tool_call>\n")  # the call, in Qwen's format
    assert voice.history[-1] == ("assistant", "The kitchen light is on.")
    assert voice.brain.turns[-1].outcome == "tool_call"


@sync
async def test_a_voice_claim_without_a_call_is_not_said(tmp_path: Path) -> None:
    voice, tts, marker = _voice_with(["OK, I'll turn on ", "the light. ", "Bye."], "", tmp_path)
    heard = Heard("Light please", 0.0, 0.0, 1.0, 0.1)
    result = await voice.answer(heard, "Light please")
    voice.mouth.close()
    assert not marker.exists()
    assert result.spoken == "Sorry, I can't do that."
    assert "I'll" not in " ".join(tts.synthesised)


@sync
async def test_the_heap_is_trimmed_once_an_answer_has_been_spoken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The recognizer's freed buffers go back to the system as the answer starts, piper's
    once it has been spoken (the 100-turn soak's blocks: 1124-1195 MB without, 1070-1102
    MB with the second)."""
    voice, tts, _marker = _voice_with(["The sky is blue. ", "It scatters light."], "", tmp_path)
    spoken_when_trimmed: list[list[str]] = []
    monkeypatch.setattr(
        "assistant.voice.trim", lambda: spoken_when_trimmed.append(list(tts.synthesised))
    )
    await voice.answer(Heard("Why is the sky blue?", 0.0, 0.0, 1.0, 0.1), "Why is the sky blue?")
    voice.mouth.close()
    assert len(spoken_when_trimmed) == 2
    assert spoken_when_trimmed[-1] == ["The sky is blue.", "It scatters light."]


def test_the_wake_examples_of_docs_voice_md_load(tmp_path: Path) -> None:
    from assistant.config import load_config

    text = (Path(__file__).parent.parent / "docs" / "voice.md").read_text()
    path = tmp_path / "config.toml"
    for title, want in (
        ("### The wake word (the default)", ("word", "okay_nabu", "hey robot")),
        (
            '### A wake phrase of your own: `voice.wake = "phrase"`',
            ("phrase", "okay_nabu", "hey robot"),
        ),
    ):
        example = text.split(title, 1)[1].split("```toml\n")[1]
        path.write_text(example.split("```")[0])
        voice = load_config(path).voice
        assert (voice.wake, voice.wake_word, voice.wake_phrase) == want
    assert load_config(None).voice.wake == "word"  # the default the first example says


def test_silero_stands_aside_for_the_energy_vad_when_its_model_is_missing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import sys

    from assistant.speech.vad import SileroSegmenter, make_segmenter

    assert isinstance(make_segmenter("silero", 0.5), SileroSegmenter)
    assert type(make_segmenter("energy", 0.5)) is Segmenter
    monkeypatch.setitem(sys.modules, "faster_whisper", None)  # not installed (a Vosk-only Pi)
    segmenter = make_segmenter("silero", 0.7)
    assert type(segmenter) is Segmenter and segmenter.end_frames == round(0.7 / FRAME_S)
    assert "the Silero VAD model comes with faster-whisper" in caplog.text
    assert "using the energy VAD" in caplog.text


def test_silero_hears_no_speech_in_silence_or_a_steady_tone() -> None:
    from assistant.speech.vad import SileroSegmenter

    segmenter = SileroSegmenter(trailing_silence_s=0.5)
    for pcm in frames(bytes(2 * RATE) + tone(2.0)):  # 1 s of silence, 2 s of a 220 Hz hum
        assert segmenter.feed(pcm).event == ""
    assert segmenter.probability < 0.5


def test_the_wake_word_engines_are_chosen_by_name() -> None:
    from assistant.errors import ModelError
    from assistant.speech.wake import MicroWake, OpenWake, make_wake

    assert isinstance(make_wake("microwakeword", "okay_nabu"), MicroWake)
    oww = make_wake("openwakeword", "hey_rhasspy")
    assert isinstance(oww, OpenWake) and oww.phrase == "hey rhasspy"
    assert oww.feed(bytes(2 * RATE)) is None  # a second of silence
    with pytest.raises(ModelError, match="'hey_siri': no such openWakeWord model"):
        make_wake("openwakeword", "hey_siri")
    with pytest.raises(ModelError, match="'hey_siri': no such microWakeWord model"):
        make_wake("microwakeword", "hey_siri")
