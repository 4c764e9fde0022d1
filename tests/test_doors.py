"""Every door takes the same turn: voice, the HTTP API (device mode, streamed and not),
Wyoming ``handle`` and the CLI's ``ask``/``chat``, on one real Brain, Actor and turn runner
(as the service shares them) with one scripted engine.

Each scripted turn goes through every door; what each door shows, the turn record it leaves,
the metrics and the conversation's history must agree up to the door's own format.
"""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from wyoming.asr import Transcript

from assistant.actions.actor import CANNOT, Actor
from assistant.api.app import ApiState, create_app
from assistant.api.server import ServerThread
from assistant.brain import Brain, NotReady
from assistant.cli.text import _print_turn
from assistant.config import API, Action, Config, Thermal
from assistant.speech.audio import WavMicrophone, WavSpeaker
from assistant.speech.ears import Ears
from assistant.speech.mouth import Mouth
from assistant.speech.vad import Segmenter
from assistant.thermal.admission import Busy
from assistant.thermal.governor import Governor
from assistant.turn import Conversation, TurnRequest, Turns
from assistant.voice import Voice
from assistant.voiceloop import VoiceLoop
from assistant.wyoming.agent import Agent
from tests.fakes import FakeEngine, FakeTTS, NullSpeaker
from tests.test_voice import RATE, ScriptedRecognizer, tone
from tests.test_wyoming import client, make_parts, serving, until

LIGHT = '{"name": "light_on", "arguments": {"room": "kitchen"}}'
UNLOCK = '{"name": "unlock_door", "arguments": {}}'
#: the request → (the model's words, the call it ends with)
SCRIPT = {
    "What is the capital of France?": (["Paris", " is", " the", " capital."], ""),
    # a model copying an earlier outcome: claims what nothing ran
    "Turn on the hall light.": (["Done!", " The", " hall", " light", " is", " now", " on."], ""),
    "Turn on the kitchen light.": ([], LIGHT),
    "Unlock the front door.": ([], UNLOCK),
    "Yes.": (["Yes", " to", " what?"], ""),
}
#: a plain question the model answers with a call it was not asked for; without the actions
#: (the second answer) it answers it
PLAIN = {"What is two plus two?": ["Four."]}
DOORS = ("voice", "api", "api-stream", "wyoming", "cli")


class ScriptedEngine(FakeEngine):
    """Answers each prompt by the last scripted request it contains."""

    def __init__(self) -> None:
        super().__init__([])
        self.asked: list[str] = []

    def generate(self, tokens: list[int], *, cancel: Any = None, **overrides: Any) -> Any:
        encode = self.chat_format.encode

        def last(text: str) -> int:
            needle, n = encode(text), len(encode(text))
            hits = [i for i in range(len(tokens) - n + 1) if tokens[i : i + n] == needle]
            return hits[-1] if hits else -1

        request = max([*SCRIPT, *PLAIN], key=last)
        self.asked.append(request)
        if request in PLAIN:
            constrained = overrides.get("constraint") is not None
            self.words, self.call = ([], LIGHT) if constrained else (PLAIN[request], "")
        else:
            self.words, self.call = SCRIPT[request]
        return super().generate(tokens, cancel=cancel, **overrides)


@dataclasses.dataclass
class House:
    """The service's sharing: one Brain, one Actor, one turn runner behind every door."""

    config: Config
    turns: Turns
    state: ApiState
    voice: Voice
    api: ServerThread
    wyoming_parts: Any
    ran: Path
    unlocked: Path
    engine: ScriptedEngine

    @property
    def brain(self) -> Brain:
        return self.turns.brain


def actions(tmp: Path) -> list[Action]:
    light = Action(
        name="light_on",
        description="Turn on the light in a room",
        parameters={
            "type": "object",
            "properties": {"room": {"type": "string", "enum": ["kitchen", "hall"]}},
            "required": ["room"],
        },
        command=("/usr/bin/touch", str(tmp / "ran")),
        say="The {room} light is on.",
    )
    unlock = Action(
        name="unlock_door",
        description="Unlock the front door",
        command=("/usr/bin/touch", str(tmp / "unlocked")),
        say="The front door is unlocked.",
        confirm=True,
    )
    return [light, unlock]


@pytest.fixture
def house(tmp_path: Path) -> Iterator[House]:
    yield from build_house(tmp_path)


def build_house(tmp_path: Path) -> Iterator[House]:
    """The house for one test (its fixture's body; other test files build it too)."""
    thermal = Thermal(sensor_path="", rate_per_min=600.0, burst=100)
    api = API(host="127.0.0.1", port=0, unix_socket="", allow_actions=True)
    config = Config(thermal=thermal, api=api)
    governor = Governor.from_config(config, drive_fan=False)
    engine = ScriptedEngine()
    brain = Brain(governor.admission, engine)
    turns = Turns(brain, Actor(actions(tmp_path)), lambda: config)
    state = ApiState(config, brain, governor, model_id="m", runner=turns)
    voice = Voice(config, turns, Mouth(FakeTTS(), NullSpeaker()))
    wyoming_parts = make_parts(config, engine, agent=Agent(lambda: config, turns))
    server = ServerThread(create_app(state), config.api)
    try:
        yield House(
            config,
            turns,
            state,
            voice,
            server,
            wyoming_parts,
            tmp_path / "ran",
            tmp_path / "unlocked",
            engine,
        )
    finally:
        server.close()
        voice.mouth.close()
        brain.close()


class Doors:
    """Asks through each door the way its client would, and returns what the person got."""

    def __init__(self, house: House, wyoming: Any) -> None:
        self.house = house
        self.connection = wyoming
        self.confirmation: dict[str, str] = {}  # API door → the id its last question gave
        self.chat = Conversation("cli:chat")

    async def ask(self, door: str, text: str) -> str:
        answer: str = await getattr(self, door.replace("-", "_"))(text)
        return answer

    async def voice(self, text: str) -> str:
        """The question spoken into a WAV microphone: 0.6 s of "speech" the scripted
        recognizer hears as ``text``, then silence; the voice loop (no wake word needed)
        answers it through the house's Voice and its mouth."""
        house = self.house
        wav = house.ran.with_name("question.wav")
        speaker = WavSpeaker(wav)
        speaker.start(RATE)
        speaker.write(tone(0.6) + bytes(2 * RATE))
        speaker.stop()
        config = dataclasses.replace(
            house.config, voice=dataclasses.replace(house.config.voice, wake="always")
        )
        ears = Ears(ScriptedRecognizer([text]), Segmenter(trailing_silence_s=0.5))
        mic = WavMicrophone(wav, rate=RATE, tail_s=0.2)
        loop = VoiceLoop(config, mic, ears, house.voice)
        loop.on_event = house.state.events.publish  # as the service wires it
        await loop.run(asyncio.Event())  # to the end of the file and of the answer
        answered = loop._answering
        result = answered.result() if answered is not None else None
        if result is None:  # not answered: the loop logged why and listens on
            raise Refused(0, loop.problem)
        return result.spoken

    async def api(self, text: str, stream: bool = False) -> str:
        body: dict[str, Any] = {"messages": [{"role": "user", "content": text}], "stream": stream}
        door = "api-stream" if stream else "api"
        if confirmation := self.confirmation.pop(door, ""):
            body["confirmation"] = confirmation
        url = f"{self.house.api.url}/v1/chat/completions"
        response = await asyncio.to_thread(httpx.post, url, json=body, timeout=10)
        if response.status_code != 200:
            raise Refused(response.status_code, response.headers.get("Retry-After"))
        if not stream:
            answer = response.json()
            if "confirmation" in answer:
                self.confirmation[door] = answer["confirmation"]
            return str(answer["choices"][0]["message"]["content"])
        text_out = ""
        for line in response.text.splitlines():
            if line.startswith("data: {"):
                data = json.loads(line[6:])
                if "confirmation" in data:
                    self.confirmation[door] = data["confirmation"]
                for choice in data.get("choices", ()):
                    text_out += choice["delta"].get("content") or ""
        return text_out

    async def api_stream(self, text: str) -> str:
        return await self.api(text, stream=True)

    async def wyoming(self, text: str) -> str:
        context = {"conversation_id": "ha-1"}
        await self.connection.write_event(Transcript(text=text, context=context).event())
        event = (await until(self.connection, "handled", "not-handled", "error"))[-1]
        if event.type == "error":
            raise Refused(503, event.data.get("code"))
        return str(event.data["text"])

    async def cli(self, text: str) -> str:
        out, saved = io.StringIO(), sys.stdout
        sys.stdout = out
        try:
            await _print_turn(self.house.turns, TurnRequest("cli", text, self.chat), False)
        finally:
            sys.stdout = saved
        return out.getvalue().strip()


class Refused(Exception):
    def __init__(self, status: int, detail: Any) -> None:
        super().__init__(status, detail)
        self.status, self.detail = status, detail


async def test_every_door_takes_the_same_turn(house: House) -> None:
    async with serving(house.wyoming_parts, house.config) as server, client(server) as c:
        doors = Doors(house, c)
        said: dict[str, dict[str, str]] = {}
        for text in SCRIPT:
            if text in ("Unlock the front door.", "Yes."):
                continue
            said[text] = {door: await doors.ask(door, text) for door in DOORS}
        records = list(house.brain.turns)
    # what the person got is the same, whichever door
    assert {d: said["What is the capital of France?"][d] for d in DOORS} == dict.fromkeys(
        DOORS, "Paris is the capital."
    )
    assert set(said["Turn on the hall light."].values()) == {CANNOT}  # guarded on every door
    assert set(said["Turn on the kitchen light."].values()) == {"The kitchen light is on."}
    # one record per door per turn, the same outcome and tokens up to the door's name (the
    # guard stops a claim's engine between tokens: how many it made by then is a race)
    by_door: dict[str, list[tuple[str, int]]] = {}
    for r in records:
        by_door.setdefault(r.kind, []).append((r.outcome, r.completion_tokens))
    api = by_door.pop("api")
    by_door["api"], by_door["api-stream"] = api[0::2], api[1::2]
    for turns in by_door.values():  # plain, claim, action
        turns[1] = (turns[1][0], -1)
    assert by_door == {door: [("stop", 4), ("stop", -1), ("tool_call", 7)] for door in DOORS}
    metrics = house.state.metrics
    for door in ("voice", "wyoming", "cli"):
        assert metrics.turns[door, "stop"] == 2 and metrics.turns[door, "tool_call"] == 1
    assert metrics.turns["api", "stop"] == 4 and metrics.turns["api", "tool_call"] == 2
    # the conversations remember the same exchange (the API's client holds its own)
    wyoming_history = house.wyoming_parts.agent._conversations["ha-1"].history
    assert house.voice.history == wyoming_history == doors.chat.history
    assert house.voice.history[:2] == [
        ("user", "What is the capital of France?"),
        ("assistant", "Paris is the capital."),
    ]
    # a cut claim is left out: neither the claim nor the "Sorry" it became (after one, the
    # stand-in answered "Sorry, I can't do that." to every later request, questions too)
    assert len(house.voice.history) == 6, house.voice.history
    assert all(text != CANNOT for _, text in house.voice.history)


async def test_a_question_asked_on_one_door_is_answered_only_there(house: House) -> None:
    async with serving(house.wyoming_parts, house.config) as server, client(server) as c:
        doors = Doors(house, c)
        for door in DOORS:
            asked = await doors.ask(door, "Unlock the front door.")
            assert asked == "Shall I unlock the front door?", door
            for other in DOORS:
                if other != door:  # a "yes" on another door is a new request to the model
                    assert await doors.ask(other, "Yes.") == "Yes to what?", (door, other)
            assert not house.unlocked.exists(), door
            assert await doors.ask(door, "Yes.") == "The front door is unlocked.", door
            assert house.unlocked.exists(), door
            house.unlocked.unlink()
    runs = {d: house.state.metrics.turns[d, "ran"] for d in ("voice", "api", "wyoming", "cli")}
    assert runs == {"voice": 1, "api": 2, "wyoming": 1, "cli": 1}
    # each conversation remembers the request it confirmed, run; not the question
    for history in (house.voice.history, doors.chat.history):
        ran = history.index(("assistant", "The front door is unlocked."))
        assert history[ran - 3] == ("user", "Unlock the front door."), history
        assert ("assistant", "Shall I unlock the front door?") not in history


async def test_a_refusal_is_the_same_on_every_door(house: House) -> None:
    house.brain.admission.stop("83.0 °C is above thermal.critical_c", 30)
    async with serving(house.wyoming_parts, house.config) as server, client(server) as c:
        doors = Doors(house, c)
        for door in DOORS:
            with pytest.raises((Busy, Refused)) as refused:
                await doors.ask(door, "What is the capital of France?")
            if isinstance(refused.value, Refused) and door != "voice":
                # the API's 503 with the governor's Retry-After, Wyoming's error event
                assert refused.value.detail in ("30", "busy_hot"), door
            elif isinstance(refused.value, Refused):  # the voice loop says why, listens on
                assert "thermal.critical_c" in refused.value.detail
            else:  # the CLI's
                assert isinstance(refused.value, Busy)
                assert refused.value.reason == "hot" and refused.value.retry_after == 30
    assert not house.brain.turns  # nothing ran, nothing was remembered
    assert not house.voice.history and not doors.chat.history
    metrics = house.state.metrics
    assert {d: metrics.turns[d, "hot"] for d in ("voice", "api", "wyoming", "cli")} == {
        "voice": 1,
        "api": 2,
        "wyoming": 1,
        "cli": 1,
    }


async def test_a_cut_at_shutdown_is_the_same_on_every_door(house: House) -> None:
    engine, brain = house.engine, house.brain
    events = house.state.events.subscribe()
    seen: set[int] = set()

    async def admitted() -> None:
        """Until a new turn is admitted (its own event, whichever loop runs it); its answer
        starts in the same step of that loop, so a stop sent to that loop finds it running."""
        async for event in events:
            if event["type"] == "admitted" and event["turn"] not in seen:
                seen.add(event["turn"])
                return

    async with serving(house.wyoming_parts, house.config) as server, client(server) as c:
        doors = Doors(house, c)
        for door in DOORS:
            engine.gate = threading.Semaphore(0)  # each token waits to be let through
            asking = asyncio.ensure_future(doors.ask(door, "What is the capital of France?"))
            engine.release()
            await admitted()
            # the stop, on the loop that runs the turn (the API's serves on a thread of its own)
            stopping = brain.drain(0.0, "the service is stopping")
            if door.startswith("api"):
                cut = await asyncio.wrap_future(
                    asyncio.run_coroutine_threadsafe(stopping, house.api.loop)
                )
            else:
                cut = await stopping
            assert cut == 1, door
            try:
                shown = await asking
            except (NotReady, Refused) as exc:  # the API's 503, Wyoming's error event
                shown = f"refused: {exc}"
            assert "capital" not in shown, door  # never passed off as a whole answer
    events.close()
    assert [r.outcome for r in house.brain.turns] == ["shutdown"] * len(DOORS)
    assert not house.wyoming_parts.agent._conversations.get("ha-1", Conversation("")).history


async def test_a_plain_question_the_model_answers_with_a_call_is_answered_on_every_door(
    house: House,
) -> None:
    """Issue 28's "What is two plus two?" → "Sorry, I can't do that.": the call (light_on)
    was not asked for, so the turn answers again without the actions, on every door."""
    async with serving(house.wyoming_parts, house.config) as server, client(server) as c:
        doors = Doors(house, c)
        said = {door: await doors.ask(door, "What is two plus two?") for door in DOORS}
    assert said == dict.fromkeys(DOORS, "Four.")
    assert not house.ran.exists()  # the light was never turned on
    assert [r.outcome for r in house.brain.turns] == ["stop"] * len(DOORS)
    assert house.voice.history == [("user", "What is two plus two?"), ("assistant", "Four.")]
