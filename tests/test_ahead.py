"""Answer at the pause: the ears' guess, adaptive endpointing, and answers prepared ahead on
the house's real Voice, Turns, Brain and Actor (a scripted engine, a fake voice): nothing
is played, run, kept or shown for a guess until the person finished saying it."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from assistant.ahead import Ahead
from assistant.api.metrics import Metrics, render
from assistant.speech.audio import FRAME_S, WavMicrophone, WavSpeaker
from assistant.speech.ears import Ears, Guess, Heard
from assistant.speech.endpoint import looks_complete, same_words
from assistant.speech.vad import Segmenter
from assistant.turn import Speculated, TurnEvent
from assistant.voiceloop import VoiceLoop
from tests.fakes import Clock, NullSpeaker
from tests.test_doors import House, build_house
from tests.test_voice import RATE, GatedSpeaker, ScriptedRecognizer, frames, tone

LIGHT_ON = "Turn on the kitchen light."
CAPITAL = "What is the capital of France?"


# -- what sounds finished ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "done"),
    [
        ("What time is it?", True),
        ("Turn on the kitchen light.", True),
        ("Stop.", True),
        ("Turn on the", False),
        ("Set a timer for", False),
        ("What's the weather in", False),
        ("Tell me about, um", False),
        ("I want to go to the…", False),
        ("", False),
    ],
)
def test_looks_complete(text: str, done: bool) -> None:
    assert looks_complete(text) is done


def test_looks_complete_in_mandarin() -> None:
    assert looks_complete("今天天气怎么样？", "zh")
    assert not looks_complete("打开厨房的", "zh")


def test_same_words_ignores_case_and_punctuation_only() -> None:
    assert same_words("What time is it?", "what time is it")
    assert not same_words("What's the weather", "What's the weather in Paris?")


# -- adaptive endpointing ------------------------------------------------------------------------
class Partial(ScriptedRecognizer):
    """Its partial text (the guess) is ``guess``; its final text the scripted one."""

    def __init__(self, guess: str, final: str) -> None:
        super().__init__([final])
        self.said = guess

    def accept(self, pcm: bytes) -> str:
        super().accept(pcm)
        return self.said


def heard_after(guess: str, silence_s: float) -> tuple[Heard | None, float]:
    """0.6 s of speech then ``silence_s`` of silence through ears that end a finished
    request after 0.5 s and one that trails off after 1.0 s: (what was heard, the silence
    it took to end)."""
    clock = Clock()
    ears = Ears(
        Partial(guess, guess),
        Segmenter(trailing_silence_s=0.5),
        clock=clock,
        end_silence_s=(0.5, 1.0),
    )
    for pcm in frames(tone(0.6) + bytes(2 * round(RATE * silence_s))):
        clock.now += FRAME_S
        heard = ears.feed(pcm)
        if heard is not None:
            return heard, clock.now - heard.speech_end
    return None, 0.0


def test_a_finished_request_ends_after_the_short_silence() -> None:
    heard, took = heard_after("What time is it?", 1.5)
    assert heard is not None and heard.text == "What time is it?"
    assert 0.45 <= took <= 0.6


def test_a_request_that_trails_off_waits_for_the_long_silence() -> None:
    heard, took = heard_after("Turn on the", 1.5)
    assert heard is not None
    assert 0.95 <= took <= 1.1
    assert heard_after("Turn on the", 0.8) == (None, 0.0)  # 0.8 s: still listening


def test_the_guess_is_dropped_when_the_person_goes_on() -> None:
    clock = Clock()
    ears = Ears(Partial("Turn on", "Turn on the light"), Segmenter(), clock=clock)
    guesses = []
    for pcm in frames(tone(0.6) + bytes(2 * round(RATE * 0.3)) + tone(0.3)):
        clock.now += FRAME_S
        ears.feed(pcm)
        guesses.append(ears.guess)
    assert any(g is not None and g.text == "Turn on" for g in guesses)  # at the pause
    assert ears.guess is None  # they went on


# -- answers prepared ahead, on the house's real turn -----------------------------------------
@pytest.fixture
def house(tmp_path: Path) -> Iterator[House]:
    yield from build_house(tmp_path)


class Recording(NullSpeaker):
    def __init__(self) -> None:
        self.written = 0

    def write(self, pcm: bytes) -> None:
        self.written += len(pcm)


def guessed(text: str, speech_end: float = 100.0) -> Guess:
    future: Future[str] = Future()
    future.set_result(text)
    return Guess(future, speech_end, speech_end + 0.15)


async def until(condition: Any, timeout: float = 5.0) -> None:
    """Await ``condition()`` (the engine and the mouth work on threads of their own)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.001)


async def prepared(house: House, text: str) -> tuple[Ahead, list[TurnEvent], Recording]:
    """An answer to ``text`` prepared ahead, its model's work finished and its first
    sentence synthesised, the events the house was told meanwhile."""
    told: list[TurnEvent] = []
    house.turns.listeners.append(told.append)
    speaker = Recording()
    house.voice.mouth.speaker = speaker
    ahead = Ahead(house.voice)
    ahead.consider(guessed(text))
    assert ahead.preparing
    await until(lambda: house.engine.asked and not house.brain.admission.running)
    utterance = house.voice.mouth.current
    if text == CAPITAL:  # its one sentence synthesised: it would be playing now if it could
        await until(lambda: utterance is not None and any(c.pcm for c in utterance.chunks))
    return ahead, told, speaker


async def test_a_prepared_answer_plays_and_is_kept_only_once_let_go(house: House) -> None:
    ahead, told, speaker = await prepared(house, CAPITAL)
    assert told == [] and speaker.written == 0  # held: nothing shown, nothing played
    assert house.voice.history == [] and list(house.brain.turns) == []
    heard = Heard(CAPITAL, 100.0, 100.5, 2.0, 0.2)
    task = ahead.take(heard, CAPITAL.lower().rstrip("?"))  # the same words
    assert task is not None
    result = await task
    assert result is not None and result.ahead and result.spoken == "Paris is the capital."
    assert speaker.written > 0
    assert [type(e).__name__ for e in told][:3] == ["Speculated", "Started", "Admitted"]
    assert isinstance(told[0], Speculated) and told[0].used and told[0].tokens == 4
    assert house.voice.history == [("user", CAPITAL), ("assistant", "Paris is the capital.")]
    assert len(house.brain.turns) == 1
    assert ahead.stats.used == 1 and ahead.stats.dropped == 0


async def test_a_call_prepared_ahead_runs_only_when_the_request_was_finished(
    house: House,
) -> None:
    ahead, _, _ = await prepared(house, LIGHT_ON)
    assert not house.ran.exists()  # the model called the action; it waits for the endpoint
    task = ahead.take(Heard(LIGHT_ON, 100.0, 100.5, 2.0, 0.2), LIGHT_ON)
    assert task is not None
    result = await task
    assert house.ran.exists()
    assert result is not None and result.spoken == "The kitchen light is on."


async def test_a_changed_question_drops_the_prepared_answer_without_a_trace(
    house: House,
) -> None:
    metrics = Metrics()
    house.turns.listeners.append(metrics.turn)
    ahead, told, speaker = await prepared(house, LIGHT_ON)
    # the person said more: "Turn on the kitchen light … no, what is the capital of France?"
    task = ahead._task
    assert task is not None
    assert ahead.take(Heard(CAPITAL, 100.0, 101.0, 3.0, 0.3), CAPITAL) is None
    assert await task is None  # the dropped answer wound down
    assert not house.ran.exists() and speaker.written == 0
    assert house.voice.history == [] and list(house.brain.turns) == []
    assert len(told) == 1 and isinstance(told[0], Speculated) and not told[0].used
    assert ahead.stats.dropped == 1
    text = render(metrics, house.state.snapshot())
    assert 'answers_ahead_total{result="dropped"} 1' in text
    assert 'answers_ahead_total{result="used"} 0' in text


async def test_the_person_going_on_drops_it_and_a_new_pause_prepares_again(house: House) -> None:
    ahead, _, _ = await prepared(house, LIGHT_ON)
    ahead.consider(None)  # the ears heard speech again
    assert ahead.stats.dropped == 1 and ahead._task is None
    ahead.consider(guessed(CAPITAL, 101.0))
    assert ahead.stats.started == 2 and ahead.stats.dropped == 1
    ahead.drop("test over")


async def test_nothing_is_prepared_while_the_governor_says_no(house: House) -> None:
    ahead = Ahead(house.voice, allowed=lambda: False)
    ahead.consider(guessed(CAPITAL))
    assert not ahead.preparing and ahead.stats.skipped == 1
    assert ahead.take(Heard(CAPITAL, 100.0, 100.5, 2.0, 0.2), CAPITAL) is None


async def test_what_the_api_is_saying_is_not_stopped_for_a_guess(house: House) -> None:
    speaker = GatedSpeaker()
    house.voice.mouth.speaker = speaker
    assert house.voice.mouth.say("The kitchen timer is done.")
    assert await asyncio.to_thread(speaker.writing.acquire, True, 10)  # it is playing
    ahead = Ahead(house.voice)
    ahead.consider(guessed(CAPITAL))
    assert not ahead.preparing and ahead.stats.skipped == 1
    for _ in range(200):  # let it finish
        speaker.gate.release()


async def test_a_trailing_off_guess_is_not_answered(house: House) -> None:
    ahead = Ahead(house.voice)
    ahead.consider(guessed("Turn on the"))
    assert not ahead.preparing and ahead.stats.skipped == 1


async def test_the_voice_loop_answers_from_the_pause(house: House, tmp_path: Path) -> None:
    """The whole path: a WAV microphone, the ears' guess at the pause, the answer prepared
    and let go at the endpoint, spoken once."""
    wav = tmp_path / "question.wav"
    speaker = WavSpeaker(wav)
    speaker.start(RATE)
    speaker.write(tone(0.6) + bytes(2 * RATE))
    speaker.stop()
    config = dataclasses.replace(
        house.config, voice=dataclasses.replace(house.config.voice, wake="always")
    )
    ears = Ears(ScriptedRecognizer([CAPITAL]), Segmenter(), end_silence_s=(0.5, 1.0))
    ahead = Ahead(house.voice)
    loop = VoiceLoop(config, WavMicrophone(wav, rate=RATE, tail_s=0.2), ears, house.voice)
    loop.ahead = ahead
    await loop.run(asyncio.Event())
    assert loop._answering is not None
    result: Any = loop._answering.result()
    assert result.ahead and result.spoken == "Paris is the capital."
    assert ahead.stats.started == ahead.stats.used == 1
    assert house.voice.history == [("user", CAPITAL), ("assistant", "Paris is the capital.")]
