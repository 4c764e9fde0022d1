"""The Wyoming server with the real protocol (wyoming's AsyncTcpClient, what Home Assistant
uses) over a real socket, on fake speech parts and a fake engine behind the real Brain,
admission and actions. The real models: tests/test_wyoming_model.py."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import math
import struct
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.handle import Handled
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop
from wyoming.wake import Detect

from assistant.actions.actor import Actor
from assistant.api.metrics import Metrics, render
from assistant.brain import Brain
from assistant.config import Config, Thermal, Wyoming, load_config
from assistant.errors import ConfigError
from assistant.speech.stt import done
from assistant.status import snapshot
from assistant.thermal.governor import Governor
from assistant.turn import Turns
from assistant.wyoming import connection as connection_module
from assistant.wyoming import server as server_module
from assistant.wyoming.agent import Agent
from assistant.wyoming.handler import Handler
from assistant.wyoming.info import Parts
from assistant.wyoming.server import MAX_PAYLOAD_BYTES, WyomingServer
from tests.fakes import FakeEngine, FakeTTS

RATE = 16000


def tone(seconds: float, rate: int = RATE, channels: int = 1, amplitude: int = 8000) -> bytes:
    """A loud 440 Hz tone (speech to the energy VAD), int16, interleaved channels."""
    samples = []
    for i in range(int(seconds * rate)):
        value = int(amplitude * math.sin(2 * math.pi * 440 * i / rate))
        samples += [value] * channels
    return struct.pack(f"<{len(samples)}h", *samples)


class FakeRecognizer:
    """A streaming recognizer that "hears" ``text`` in any utterance; counts the audio."""

    rate = RATE
    streaming = True
    path = Path("fake-stt-model")

    def __init__(self, text: str, *, partial_after: int = 0) -> None:
        self.text = text
        self.partial_after = partial_after  # bytes of speech before the partial says it
        self.got = 0
        self.siblings: list[FakeRecognizer] = []

    def accept(self, pcm: bytes) -> str:
        self.got += len(pcm)
        return self.text if self.partial_after and self.got >= self.partial_after else ""

    def final(self) -> str:
        return self.text if self.got else ""

    def reset(self) -> None:
        self.got = 0

    def sibling(self) -> FakeRecognizer:
        twin = FakeRecognizer(self.text, partial_after=self.partial_after)
        self.siblings.append(twin)
        return twin

    def guess(self) -> Future[str]:
        return done(self.accept(b""))


def spoken(parts: Parts) -> list[str]:
    """What the fake voice of ``parts`` synthesised."""
    tts = parts.tts
    assert isinstance(tts, FakeTTS)
    return tts.synthesised


def fake_recognizer(parts: Parts) -> FakeRecognizer:
    recognizer = parts.recognizer
    assert isinstance(recognizer, FakeRecognizer)
    return recognizer


def counted(parts: Parts) -> Metrics:
    assert parts.metrics is not None
    return parts.metrics


def make_config(**wyoming: Any) -> Config:
    thermal = Thermal(sensor_path="", rate_per_min=600.0, burst=50)
    return Config(thermal=thermal, wyoming=dataclasses.replace(Wyoming(), **wyoming))


def make_parts(config: Config, engine: Any = None, **changes: Any) -> Parts:
    governor = Governor.from_config(config, drive_fan=False)
    brain = Brain(governor.admission, engine or FakeEngine(["Paris", " is", " the", " capital."]))
    turns = Turns(brain, Actor(config.actions), lambda: config)
    parts = Parts(
        agent=Agent(lambda: config, turns),
        recognizer=FakeRecognizer("hey robot turn on the light"),
        stt_model="fake-stt-model",
        tts=FakeTTS(22050),
        wake_phrase="hey robot",
        model_id="fake-model",
        metrics=Metrics(),
    )
    return dataclasses.replace(parts, **changes)


@contextlib.asynccontextmanager
async def serving(parts: Parts, config: Config | None = None) -> AsyncIterator[WyomingServer]:
    config = config or make_config()
    settings = dataclasses.replace(config.wyoming, uri="tcp://127.0.0.1:0")
    server = WyomingServer(settings, partial(Handler, parts, settings.max_audio_s))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
        parts.close()


def client(server: WyomingServer) -> AsyncTcpClient:
    return AsyncTcpClient("127.0.0.1", server.port)


async def until(c: AsyncTcpClient, *types: str, timeout: float = 10) -> list[Event]:
    """Events up to and including the first of ``types`` (None: the server closed);
    ``timeout``: seconds each event may take (the real models need more)."""
    events: list[Event] = []
    while True:
        event = await asyncio.wait_for(c.read_event(), timeout)
        if event is None:
            raise AssertionError(f"closed after {[e.type for e in events]}")
        events.append(event)
        if event.type in types:
            return events


async def closed(c: AsyncTcpClient) -> list[str]:
    """The event types the server sent before it closed the connection."""
    seen = []
    while (event := await asyncio.wait_for(c.read_event(), 10)) is not None:
        seen.append(event.type)
    return seen


async def send_audio(c: AsyncTcpClient, pcm: bytes, rate: int = RATE, channels: int = 1) -> None:
    await c.write_event(AudioStart(rate=rate, width=2, channels=channels).event())
    step = 2048 * channels
    for i in range(0, len(pcm), step):
        chunk = AudioChunk(rate=rate, width=2, channels=channels, audio=pcm[i : i + step])
        await c.write_event(chunk.event())
    await c.write_event(AudioStop().event())


# -- describe --------------------------------------------------------------------------------
async def test_describe_advertises_what_the_device_has() -> None:
    parts = make_parts(make_config())
    async with serving(parts) as server, client(server) as c:
        await c.write_event(Describe().event())
        info = Info.from_event((await until(c, "info"))[-1])
    assert [m.name for p in info.asr for m in p.models] == ["fake-stt-model"]
    assert [v.name for p in info.tts for v in p.voices] == ["en_US-fake-medium"]
    assert info.tts[0].supports_synthesize_streaming
    assert [(m.name, m.phrase) for p in info.wake for m in p.models] == [("hey_robot", "hey robot")]
    assert [m.name for p in info.handle for m in p.models] == ["fake-model"]
    assert not info.handle[0].supports_home_control  # no [[actions]]


async def test_a_missing_part_is_not_advertised_and_its_events_say_why() -> None:
    parts = make_parts(make_config(), tts=None, missing={"tts": "no such piper voice"})
    async with serving(parts) as server, client(server) as c:
        await c.write_event(Describe().event())
        info = Info.from_event((await until(c, "info"))[-1])
        assert info.tts == [] and info.asr
        await c.write_event(Synthesize(text="Hello.").event())
        error = (await until(c, "error"))[-1]
        assert error.data["code"] == "no_tts"
        assert "no such piper voice" in error.data["text"]
        await c.write_event(Describe().event())  # the connection still serves
        await until(c, "info")


# -- speech to text ----------------------------------------------------------------------------
async def test_transcribe_converts_any_rate_and_channels_to_16_khz_mono() -> None:
    parts = make_parts(make_config())
    async with serving(parts) as server, client(server) as c:
        await c.write_event(Transcribe(language="en").event())
        await send_audio(c, tone(1.0, rate=44100, channels=2), rate=44100, channels=2)
        transcript = Transcript.from_event((await until(c, "transcript"))[-1])
    assert transcript.text == "hey robot turn on the light"
    (heard,) = fake_recognizer(parts).siblings  # a recognizer state of its own, on the same model
    # 1 s of 16 kHz mono int16 (plus the silence that ends the utterance); unconverted
    # 44.1 kHz stereo would be 5.5 times as much
    assert 2 * RATE <= heard.got <= 1.6 * 2 * RATE


async def test_audio_longer_than_max_audio_s_is_an_error_and_the_connection_closes() -> None:
    config = make_config(max_audio_s=1.0)
    parts = make_parts(config)
    async with serving(parts, config) as server:
        async with client(server) as c:
            await c.write_event(Transcribe().event())
            await c.write_event(AudioStart(rate=RATE, width=2, channels=1).event())
            for _ in range(20):  # 2.6 s: "audio forever"
                await c.write_event(
                    AudioChunk(rate=RATE, width=2, channels=1, audio=tone(0.13)).event()
                )
            seen = await closed(c)
        assert seen == ["error"]
        async with client(server) as c:  # the server itself serves on
            await c.write_event(Describe().event())
            await until(c, "info")


# -- text to speech ----------------------------------------------------------------------------
async def test_synthesize_sends_one_sound_in_chunks() -> None:
    parts = make_parts(make_config())
    async with serving(parts) as server, client(server) as c:
        await c.write_event(Synthesize(text="Hello there. How are you?").event())
        events = await until(c, "audio-stop")
    kinds = [e.type for e in events]
    assert kinds[0] == "audio-start" and kinds[-1] == "audio-stop"
    assert set(kinds[1:-1]) == {"audio-chunk"}
    assert events[0].data["rate"] == 22050
    audio = b"".join(e.payload or b"" for e in events)
    assert len(audio) == 2 * sum(FakeTTS.samples(t) for t in spoken(parts))
    assert spoken(parts) == ["Hello there.", "How are you?"]


async def test_streaming_synthesis_speaks_each_sentence_as_it_arrives_and_not_twice() -> None:
    parts = make_parts(make_config())
    async with serving(parts) as server, client(server) as c:
        await c.write_event(SynthesizeStart().event())
        for word in ["The", "first", "sentence", "is", "here.", "And"]:
            await c.write_event(SynthesizeChunk(text=word + " ").event())
        # the first sentence is heard before the text stream ends
        first = await until(c, "audio-chunk")
        assert next(e.type for e in first) == "audio-start"
        assert spoken(parts) == ["The first sentence is here."]
        await c.write_event(SynthesizeChunk(text="the second one.").event())
        # Home Assistant repeats the whole text for servers that do not stream: not spoken
        await c.write_event(
            Synthesize(text="The first sentence is here. And the second one.").event()
        )
        await c.write_event(SynthesizeStop().event())
        rest = await until(c, "synthesize-stopped")
    kinds = [e.type for e in first + rest]
    assert kinds.count("audio-start") == 1 and kinds.count("audio-stop") == 1
    assert kinds[-2:] == ["audio-stop", "synthesize-stopped"]
    assert spoken(parts) == ["The first sentence is here.", "And the second one."]


async def test_a_synthesize_chunk_outside_a_stream_is_an_error_not_a_crash() -> None:
    async with serving(make_parts(make_config())) as server, client(server) as c:
        await c.write_event(SynthesizeChunk(text="hello").event())
        assert (await until(c, "error"))[-1].data["code"] == "bad_event"
        await c.write_event(Synthesize(text="Still here.").event())
        await until(c, "audio-stop")


# -- wake ----------------------------------------------------------------------------------------
async def test_detect_reports_the_wake_phrase_while_the_audio_streams() -> None:
    parts = make_parts(make_config(), recognizer=FakeRecognizer("hey robot", partial_after=8000))
    async with serving(parts) as server, client(server) as c:
        await c.write_event(Detect(names=["hey_robot"]).event())
        await c.write_event(AudioStart(rate=RATE, width=2, channels=1).event())
        for _ in range(10):  # 1.3 s of "speech": the partial transcript matches after 0.25 s
            await c.write_event(
                AudioChunk(rate=RATE, width=2, channels=1, audio=tone(0.13)).event()
            )
        detection = (await until(c, "detection"))[-1]  # before audio-stop
        assert detection.data["name"] == "hey_robot"
        assert 0 < detection.data["timestamp"] < 1300
        await c.write_event(AudioStop().event())
        await c.write_event(Describe().event())
        # no not-detected after a detection
        assert [e.type for e in await until(c, "info")] == ["info"]


async def test_detect_without_the_phrase_is_not_detected() -> None:
    parts = make_parts(make_config(), recognizer=FakeRecognizer("what time is it"))
    async with serving(parts) as server, client(server) as c:
        await c.write_event(Detect().event())
        await send_audio(c, tone(1.0) + bytes(RATE))
        assert [e.type for e in await until(c, "not-detected")] == ["not-detected"]


async def test_detect_of_a_wake_word_the_device_lacks_says_which_it_has() -> None:
    async with serving(make_parts(make_config())) as server, client(server) as c:
        await c.write_event(Detect(names=["okay_nabu"]).event())
        error = (await until(c, "error"))[-1]
        assert error.data["code"] == "unknown_wake_word"
        assert "hey_robot" in error.data["text"]


async def test_the_bundled_wake_word_models_are_offered_and_listen_without_speech_to_text() -> None:
    from assistant.speech.wake import builtin_words

    words = builtin_words()
    assert set(words) == {"okay_nabu", "hey_jarvis", "hey_mycroft", "alexa"}
    parts = make_parts(make_config(), recognizer=None, wake_phrase="", wake_words=words)
    async with serving(parts) as server, client(server) as c:
        await c.write_event(Describe().event())
        info = Info.from_event((await until(c, "info"))[-1])
        offered = {m.name: m.phrase for p in info.wake for m in p.models}
        assert offered == words
        await c.write_event(Detect(names=["okay_nabu"]).event())
        await send_audio(c, tone(1.0) + bytes(RATE))  # a tone is not "okay nabu"
        assert [e.type for e in await until(c, "not-detected")] == ["not-detected"]


async def test_a_client_that_does_not_read_is_dropped_and_the_others_are_served(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A client asked for speech and never read it: its blocked writes held the connection
    past every idle limit (eight such clients held them all); now it is dropped after
    WRITE_S without reading, and a well-behaved client is answered."""
    import logging

    monkeypatch.setattr(connection_module, "WRITE_S", 0.2)
    dropped = asyncio.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "not reading" in record.getMessage():
                dropped.set()

    watch = Watch()
    logging.getLogger("assistant.wyoming.connection").addHandler(watch)
    parts = make_parts(make_config())
    try:
        async with serving(parts) as server, client(server) as hog:
            # ~12 MB of audio: more than the socket buffers hold for a client that never reads
            await hog.write_event(Synthesize(text="a " * 30_000).event())
            await asyncio.wait_for(dropped.wait(), 30)
            async with client(server) as polite:
                await polite.write_event(Describe().event())
                assert [e.type for e in await until(polite, "info")][-1] == "info"
    finally:
        logging.getLogger("assistant.wyoming.connection").removeHandler(watch)


# -- the conversation agent ----------------------------------------------------------------------
async def test_handle_answers_and_keeps_each_conversations_history() -> None:
    parts = make_parts(make_config())
    agent = parts.agent
    assert agent is not None
    async with serving(parts) as server, client(server) as c:
        for conversation in ("kitchen", "kitchen", "hall"):
            context = {"conversation_id": conversation}
            await c.write_event(Transcript(text="Capital of France?", context=context).event())
            handled = Handled.from_event((await until(c, "handled"))[-1])
            assert handled.text == "Paris is the capital."
            assert handled.context == context
    assert counted(parts).wyoming == {("handle", "ok"): 3}
    talks = agent._conversations
    assert len(talks["kitchen"].history) == 4 and len(talks["hall"].history) == 2
    assert [t.kind for t in agent.brain.turns] == ["wyoming"] * 3


async def test_handle_refused_by_admission_is_an_error_with_the_honest_reason() -> None:
    parts = make_parts(make_config())
    assert parts.agent is not None
    parts.agent.brain.admission.stop("83.0 °C is above thermal.critical_c", 30)
    async with serving(parts) as server, client(server) as c:
        await c.write_event(Transcript(text="Capital of France?").event())
        error = (await until(c, "error"))[-1]
    assert error.data["code"] == "busy_hot"
    assert counted(parts).wyoming == {("handle", "busy_hot"): 1}
    governor = Governor.from_config(make_config(), drive_fan=False)
    scrape = render(counted(parts), snapshot(parts.agent.brain, governor))
    assert 'qwen_assistant_wyoming_requests_total{program="handle",outcome="busy_hot"} 1' in scrape
    assert "critical_c" in error.data["text"] and "retry in 30 s" in error.data["text"]
    assert not parts.agent.brain.turns  # nothing ran


def acting(tmp_path: Path, action: str, marker: Path) -> tuple[Config, Parts]:
    """Parts whose model always calls the one configured action, which touches ``marker``
    (``action``: its TOML keys besides the command)."""
    (tmp_path / "config.toml").write_text(
        f"[thermal]\nsensor_path = ''\n[[actions]]\n{action}\n"
        f"command = ['/usr/bin/touch', '{marker}']\n"
    )
    config = load_config(tmp_path / "config.toml")
    call = json.dumps({"name": config.actions[0].name, "arguments": {}})
    parts = make_parts(config, engine=FakeEngine([], call=call))
    assert parts.agent is not None
    parts.agent.actor.update(config.actions)
    return config, parts


async def test_handle_runs_a_configured_action(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    config, parts = acting(
        tmp_path,
        "name = 'light_on'\ndescription = 'Turn on the light'\nsay = 'The light is on.'",
        marker,
    )
    async with serving(parts, config) as server, client(server) as c:
        await c.write_event(
            Transcript(text="Turn on the light", context={"conversation_id": "x"}).event()
        )
        handled = Handled.from_event((await until(c, "handled"))[-1])
    assert handled.text == "The light is on."
    assert marker.exists()


async def test_a_question_without_a_conversation_is_confirmed_only_on_its_connection(
    tmp_path: Path,
) -> None:
    """Two clients that name no conversation: "Shall I unlock the front door?" asked on one
    is not answered by a "yes" on the other (before, they shared one key and it was), only
    by a yes on its own connection; a connection that closes takes its question along."""
    marker = tmp_path / "unlocked"
    config, parts = acting(
        tmp_path,
        "name = 'unlock_door'\ndescription = 'Unlock the front door'\nconfirm = true\n"
        "say = 'The front door is unlocked.'",
        marker,
    )
    assert parts.agent is not None

    async def say(c: AsyncTcpClient, text: str) -> str:
        await c.write_event(Transcript(text=text).event())
        return Handled.from_event((await until(c, "handled"))[-1]).text or ""

    async with serving(parts, config) as server, client(server) as asker:
        assert await say(asker, "Unlock the front door.") == "Shall I unlock the front door?"
        async with client(server) as other:
            assert "unlocked" not in await say(other, "Yes.")
        assert not marker.exists()
        assert await say(asker, "Yes.") == "The front door is unlocked."
        assert marker.exists()
        marker.unlink()
        assert await say(asker, "Unlock the front door.") == "Shall I unlock the front door?"
    assert parts.agent.actor._pending == {}  # the connection closed: its question went with it
    assert not marker.exists()


async def test_a_client_leaving_mid_answer_cancels_it_and_the_server_serves_on() -> None:
    engine = FakeEngine(["a", "b", "c", "d"], gated=True)
    parts = make_parts(make_config(), engine=engine)
    assert parts.agent is not None
    brain = parts.agent.brain
    recorded = asyncio.Event()
    brain.listeners.append(lambda _turn: recorded.set())
    async with serving(parts) as server:
        async with client(server) as c:
            await c.write_event(Transcript(text="Tell me a story").event())
            engine.release(1)
            await asyncio.get_running_loop().run_in_executor(None, engine.started.wait, 5)
        # the client is gone: the answer stops after the token in progress
        await asyncio.wait_for(recorded.wait(), 10)
        assert brain.turns[-1].outcome == "cancelled"
        engine.gate = None
        async with client(server) as c:
            await c.write_event(Transcript(text="Again").event())
            assert Handled.from_event((await until(c, "handled"))[-1]).text == "abcd"


# -- hostile clients -------------------------------------------------------------------------------
async def raw(server: WyomingServer, data: bytes) -> list[str]:
    """Send raw bytes; the event types the server answered before closing."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(data)
    await writer.drain()
    seen = []
    while line := await asyncio.wait_for(reader.readline(), 10):
        header = json.loads(line)
        seen.append(header["type"])
        await reader.readexactly(header.get("data_length") or 0)
    writer.close()
    return seen


@pytest.mark.parametrize(
    "data",
    [
        b"this is not json\n",
        b"[1, 2, 3]\n",
        b'{"data": {}}\n',
        json.dumps({"type": "audio-chunk", "payload_length": MAX_PAYLOAD_BYTES + 1}).encode()
        + b"\n",
        json.dumps({"type": "synthesize", "data_length": 10**9}).encode() + b"\n",
        json.dumps({"type": "synthesize", "data_length": -5}).encode() + b"\n",
        json.dumps({"type": "synthesize", "data_length": 3}).encode() + b"\n[1]",
        b"{" + b" " * (80 * 1024) + b"\n",
    ],
    ids=[
        "not-json",
        "not-object",
        "no-type",
        "huge-payload",
        "huge-data",
        "negative",
        "data-list",
        "long-line",
    ],
)
async def test_bytes_that_are_not_wyoming_get_an_error_and_a_closed_connection(data: bytes) -> None:
    async with serving(make_parts(make_config())) as server:
        assert await raw(server, data) == ["error"]
        async with client(server) as c:
            await c.write_event(Describe().event())
            await until(c, "info")


@pytest.mark.parametrize(
    "event",
    [
        Event("audio-chunk", {"rate": 16000}, b"\0\0"),
        Event("audio-chunk", {"rate": "fast", "width": 2, "channels": 1}, b"\0\0"),
        Event("audio-chunk", {"rate": 16000, "width": 2, "channels": 6}, bytes(12)),
        Event("audio-chunk", {"rate": 16000, "width": 2, "channels": 1}, b"\0"),
        Event("synthesize", {"text": 42}),
        Event("transcript", {"text": "hi", "context": "not an object"}),
        Event("audio-stop"),
    ],
    ids=[
        "no-width",
        "bad-rate",
        "six-channels",
        "half-sample",
        "text-number",
        "context",
        "stop-alone",
    ],
)
async def test_a_malformed_event_gets_an_error_and_the_connection_stays(event: Event) -> None:
    async with serving(make_parts(make_config())) as server, client(server) as c:
        if event.type == "audio-chunk":
            await c.write_event(Transcribe().event())
        await c.write_event(event)
        assert (await until(c, "error"))[-1].data["code"] == "bad_event"
        await c.write_event(Describe().event())
        await until(c, "info")


async def test_connections_beyond_max_connections_are_closed_at_once() -> None:
    config = make_config(max_connections=2)
    async with serving(make_parts(config), config) as server:
        async with client(server) as a, client(server) as b:
            for c in (a, b):  # both are served
                await c.write_event(Describe().event())
                await until(c, "info")
            async with client(server) as third:
                assert await closed(third) == ["error"]
        async with client(server) as c:  # a place is free again
            await c.write_event(Describe().event())
            await until(c, "info")


class GatedTTS(FakeTTS):
    """Each sentence waits for the test's ``go`` before its sound (threading: synthesis
    runs on the executor)."""

    def __init__(self) -> None:
        super().__init__(22050)
        self.go = threading.Semaphore(0)

    def synthesize(self, text: str) -> Iterator[bytes]:
        self.synthesised.append(text)
        self.event.release()
        self.go.acquire(timeout=30)
        yield bytes(2 * self.samples(text))


async def started(tts: FakeTTS) -> None:
    """Until ``tts`` began a synthesis."""
    await asyncio.get_running_loop().run_in_executor(None, tts.event.acquire)


async def test_a_stop_accepts_no_new_connection_and_a_synthesis_ends_with_an_error() -> None:
    """On SIGTERM a synthesis stream ended in a bare EOF and new connections were accepted
    during the drain: now the listening socket closes first, and a running synthesis ends
    at its next sentence with an error saying the service is stopping."""
    tts = GatedTTS()
    parts = make_parts(make_config(), tts=tts)
    async with serving(parts) as server, client(server) as c:
        await c.write_event(Synthesize(text="One sentence. Another one. And a third.").event())
        await started(tts)  # the first sentence is being synthesised
        port = server.port
        server.close()  # the service's stop(): no new connection, every event refused
        parts.closing = "the service is stopping"
        with pytest.raises(ConnectionRefusedError):
            async with AsyncTcpClient("127.0.0.1", port) as late:
                await late.write_event(Describe().event())
        tts.go.release()  # the first sentence is spoken, the second is not begun
        seen = await closed(c)
        assert seen[0] == "audio-start" and "audio-chunk" in seen
        assert seen[-1] == "error" and "audio-stop" not in seen
        assert tts.synthesised == ["One sentence."]  # the second was not begun
    assert counted(parts).wyoming == {("tts", "stopping"): 1}


async def test_a_synthesis_the_stop_cuts_mid_sentence_gets_an_error_not_a_bare_eof() -> None:
    tts = GatedTTS()
    parts = make_parts(make_config(), tts=tts)
    async with serving(parts) as server, client(server) as c:
        await c.write_event(Synthesize(text="A sentence that takes its time.").event())
        await started(tts)
        parts.closing = "the service is stopping"
        await server.stop()  # after the drain: what still runs is cut
        tts.go.release()
        error = (await until(c, "error"))[-1]
        assert error.data["code"] == "stopping"
        assert "the service is stopping" in error.data["text"]
        assert await closed(c) == []


async def test_a_stuck_client_gives_its_connection_to_one_that_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Clients that ask for speech and never read held every connection for WRITE_S (30 s)
    and ``describe`` was refused meanwhile: a connection stuck for STALLED_S now gives its
    place to a client that waits."""
    monkeypatch.setattr(server_module, "STALLED_S", 0.2)
    config = make_config(max_connections=2)
    async with (
        serving(make_parts(config), config) as server,
        client(server) as hog1,
        client(server) as hog2,
    ):
        for hog in (hog1, hog2):  # ~6 MB of audio each: more than the socket buffers hold
            await hog.write_event(Synthesize(text="a " * 30_000).event())
        async with asyncio.timeout(30):  # until both have been stuck for STALLED_S
            while sum(s >= 0.2 for s in server.stuck()) < 2:
                await asyncio.sleep(0.05)
        async with client(server) as polite:
            await polite.write_event(Describe().event())
            assert [e.type for e in await until(polite, "info")] == ["info"]


async def test_a_silent_client_is_disconnected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection_module, "IDLE_S", 0.05)
    async with serving(make_parts(make_config())) as server, client(server) as c:
        assert await closed(c) == []


# -- configuration ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('uri = "tcp://0.0.0.0:10700"', "wyoming.uri: binding '0.0.0.0' lets anyone"),
        ('uri = "http://127.0.0.1:10700"', 'wyoming.uri: must be "tcp://HOST:PORT"'),
        ('uri = "tcp://127.0.0.1"', 'wyoming.uri: must be "tcp://HOST:PORT"'),
        ("zeroconf = true", "wyoming.zeroconf: announces the service to the network"),
        ('uri = "unix:///tmp/w.sock"\nzeroconf = true', "wyoming.zeroconf: announces a TCP port"),
    ],
)
def test_a_risky_or_bad_wyoming_config_is_refused_with_the_key(
    tmp_path: Path, table: str, message: str
) -> None:
    path = tmp_path / "config.toml"
    path.write_text(f"[wyoming]\nenabled = true\n{table}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_a_lan_bind_is_allowed_when_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[wyoming]\nuri = "tcp://0.0.0.0:10700"\nallow_lan = true\nzeroconf = true\n')
    assert load_config(path).wyoming.zeroconf


def test_wyoming_is_off_and_loopback_by_default() -> None:
    config = load_config(None)
    assert not config.wyoming.enabled
    assert config.wyoming.uri == "tcp://127.0.0.1:10700"


def test_doctor_says_whether_the_wyoming_address_is_free() -> None:
    import socket
    import threading

    from assistant.doctor.software import wyoming as _wyoming

    def answer_http(server: socket.socket) -> None:
        conn, _ = server.accept()
        with conn:
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

    with socket.socket() as other:  # another program on the port: it does not speak Wyoming
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        threading.Thread(target=answer_http, args=(other,), daemon=True).start()
        config = make_config(enabled=True, uri=f"tcp://127.0.0.1:{port}")
        (check,) = _wyoming(config)
        assert check.level == "FAIL" and "another program listens there" in check.detail
    (check,) = _wyoming(config)
    assert (check.level, check.detail) == (
        "OK",
        f"tcp://127.0.0.1:{port}: free; `qwen-assistant run` will listen there",
    )


def test_a_wyoming_change_waits_for_a_restart_and_reload_says_so(tmp_path: Path) -> None:
    from assistant.reload import reload_config

    path = tmp_path / "config.toml"
    path.write_text("[thermal]\nsensor_path = ''\n")
    config = load_config(path)
    governor = Governor.from_config(config, drive_fan=False)
    path.write_text("[thermal]\nsensor_path = ''\n[wyoming]\nenabled = true\n")
    outcome = reload_config(config, governor)
    assert outcome.ok and outcome.pending == ("wyoming.enabled",)
    assert not outcome.config.wyoming.enabled  # in force until the restart


async def test_a_client_awaiting_a_slow_answer_is_not_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connection_module, "IDLE_S", 0.05)
    engine = FakeEngine(["slow", " answer"], gated=True)
    parts = make_parts(make_config(), engine=engine)
    async with serving(parts) as server, client(server) as c:
        await c.write_event(Transcript(text="Take your time").event())
        engine.release(1)
        await asyncio.get_running_loop().run_in_executor(None, engine.started.wait, 5)
        # the point is time passing: four idle periods go by while the answer is made
        await asyncio.sleep(0.2)
        engine.release(1)
        assert Handled.from_event((await until(c, "handled"))[-1]).text == "slow answer"


async def test_many_connections_leave_no_open_files_or_tasks_behind() -> None:
    import os

    parts = make_parts(make_config())
    async with serving(parts) as server:
        for _ in range(5):  # warm up
            async with client(server) as c:
                await c.write_event(Describe().event())
                await until(c, "info")
        files = len(os.listdir("/proc/self/fd"))
        tasks = len(asyncio.all_tasks())
        for i in range(150):
            async with client(server) as c:
                if i % 3:
                    await c.write_event(Synthesize(text="Hi.").event())
                    await until(c, "audio-stop")
                else:  # leaving mid-stream
                    await c.write_event(Transcribe().event())
                    await c.write_event(AudioStart(rate=RATE, width=2, channels=1).event())
        while server.connections:  # the last ones are being closed: let them finish
            await asyncio.sleep(0)
        assert len(os.listdir("/proc/self/fd")) <= files
        assert len(asyncio.all_tasks()) <= tasks


def test_describe_names_the_configured_language() -> None:
    """speech.language = "zh": the recognizer, the wake phrase and the agent say Chinese;
    the microWakeWord models stay English (what they were trained on)."""
    from assistant.wyoming.info import Parts, describe

    class VoskRecognizer:  # only its name is read
        pass

    parts = Parts(
        agent=object(),  # type: ignore[arg-type]
        recognizer=VoskRecognizer(),  # type: ignore[arg-type]
        stt_model="vosk-model-small-cn-0.22",
        wake_phrase="你好 机器人",
        wake_words={"okay_nabu": "okay nabu"},
        language="zh",
    )
    info = describe(parts)
    assert info.asr[0].models[0].languages == ["zh"]
    assert info.handle[0].models[0].languages == ["zh"]
    languages = {m.name: m.languages for m in info.wake[0].models}
    assert languages["okay_nabu"] == ["en"] and ["zh"] in languages.values()
    parts.close()


async def test_a_part_that_cannot_be_read_is_left_out_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 28: with Wyoming on and the speech models unreadable, start-up died with a
    PermissionError traceback; the parts are left out, said once each, and Wyoming serves."""
    from assistant.speech import stt, tts
    from assistant.wyoming.start import start_wyoming
    from tests.test_api import make_state

    def unreadable(*_args: Any, **_kwargs: Any) -> Any:
        raise PermissionError(13, "Permission denied", "/models/stt/model.bin")

    monkeypatch.setattr(stt, "make_recognizer", unreadable)
    monkeypatch.setattr(tts.PiperTTS, "from_config", classmethod(lambda _cls, _c: _Unreadable()))
    config = dataclasses.replace(
        make_config(), wyoming=dataclasses.replace(Wyoming(), uri="tcp://127.0.0.1:0")
    )
    state = make_state(config, FakeEngine(["Hi."]))

    async def load(fn: Any) -> Any:
        return fn()

    parts, server = await start_wyoming(lambda: config, state, load)
    try:
        assert server is not None  # it serves what it has: the conversation agent
        assert (
            "Permission denied" in parts.missing["asr"]
            and "Permission denied" in parts.missing["tts"]
        )
        warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len([w for w in warnings if "Permission denied" in w]) == 2
        assert not any(r.exc_info for r in caplog.records)
    finally:
        if server is not None:
            await server.stop()
        parts.close()


class _Unreadable:
    voice_path = Path("/models/tts/voice.onnx")

    def load(self) -> None:
        raise PermissionError(13, "Permission denied", str(self.voice_path))
