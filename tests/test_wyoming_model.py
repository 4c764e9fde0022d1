"""`qwen-assistant run` with the default config plus ``[wyoming] enabled = true``, used as
Home Assistant uses it: wyoming's AsyncTcpClient as STT, TTS (plain and streaming), wake
word and conversation agent, on the models `qwen-assistant models fetch` installed (no
explicit paths), with two clients at once and hostile ones while the HTTP API serves on."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.event import Event
from wyoming.handle import Handled
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop
from wyoming.wake import Detect

from tests.hearing import heard, nothing_more
from tests.test_service import Process, free_port
from tests.test_wyoming import until as wyoming_until

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parent.parent


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Process, int, str]]:
    tmp = tmp_path_factory.mktemp("wyoming")
    port, api = free_port(), free_port()
    config = tmp / "config.toml"
    # what docs/homeassistant.md asks a user to add, on ports of its own, and greedy
    # answers (the default temperature 0.7 makes "Paris" likely, not certain)
    config.write_text(
        f'[wyoming]\nenabled = true\nuri = "tcp://127.0.0.1:{port}"\n[api]\nport = {api}\n'
        "[llm]\ntemperature = 0.0\n"
    )
    with Process(config, tmp) as proc:
        proc.wait_for("wyoming listening on", timeout=120)
        proc.wait_for("ready:", timeout=120)
        yield proc, port, f"http://127.0.0.1:{api}"
        # the figures docs/homeassistant.md quotes (shown by `pytest -s`)
        print("".join(line for line in proc.log if "transcribed" in line or "wyoming: '" in line))


async def until(c: AsyncTcpClient, *types: str) -> list[Event]:
    return await wyoming_until(c, *types, timeout=120)  # a model may take its time


async def synthesize(port: int, text: str) -> tuple[bytes, int]:
    async with AsyncTcpClient("127.0.0.1", port) as c:
        await c.write_event(Synthesize(text=text).event())
        events = await until(c, "audio-stop")
    assert events[0].type == "audio-start"
    return b"".join(e.payload or b"" for e in events), int(events[0].data["rate"])


async def stream_audio(c: AsyncTcpClient, pcm: bytes, rate: int) -> None:
    await c.write_event(AudioStart(rate=rate, width=2, channels=1).event())
    for i in range(0, len(pcm), 4096):
        await c.write_event(
            AudioChunk(rate=rate, width=2, channels=1, audio=pcm[i : i + 4096]).event()
        )
    await c.write_event(AudioStop().event())


async def transcribe(port: int, pcm: bytes, rate: int) -> str:
    async with AsyncTcpClient("127.0.0.1", port) as c:
        await c.write_event(Transcribe(language="en").event())
        await stream_audio(c, pcm, rate)
        return Transcript.from_event((await until(c, "transcript"))[-1]).text


async def ask(port: int, text: str, conversation: str) -> str:
    async with AsyncTcpClient("127.0.0.1", port) as c:
        context = {"conversation_id": conversation}
        await c.write_event(Transcript(text=text, context=context).event())
        handled = Handled.from_event((await until(c, "handled"))[-1])
    assert handled.context == context
    return handled.text or ""


async def test_describe_names_the_installed_models(service: tuple[Process, int, str]) -> None:
    _, port, _ = service
    async with AsyncTcpClient("127.0.0.1", port) as c:
        await c.write_event(Describe().event())
        info = Info.from_event((await until(c, "info"))[-1])
    assert [m.name for p in info.asr for m in p.models] == ["whisper-tiny.en"]
    assert [v.name for p in info.tts for v in p.voices] == ["en_US-joe-medium"]
    wake = [m.name for p in info.wake for m in p.models]
    assert wake == ["okay_nabu", "hey_jarvis", "hey_mycroft", "alexa", "hey_robot"]
    assert info.handle and info.tts[0].supports_synthesize_streaming


async def test_speech_synthesized_here_is_transcribed_back(
    service: tuple[Process, int, str],
) -> None:
    _, port, _ = service
    question = "What is the capital of France?"
    pcm, rate = await synthesize(port, question)
    assert len(pcm) / 2 / rate > 1.0
    assert heard(question, await transcribe(port, pcm, rate)) >= 0.8


async def test_streaming_synthesis_is_heard_whole_and_once(
    service: tuple[Process, int, str],
) -> None:
    _, port, _ = service
    text = "The kitchen light is on. The door is locked."
    async with AsyncTcpClient("127.0.0.1", port) as c:
        await c.write_event(SynthesizeStart().event())
        for word in text.split(" "):
            await c.write_event(SynthesizeChunk(text=word + " ").event())
        await c.write_event(Synthesize(text=text).event())  # HA's compatibility copy
        await c.write_event(SynthesizeStop().event())
        events = await until(c, "synthesize-stopped")
    rate = int(events[0].data["rate"])
    pcm = b"".join(e.payload or b"" for e in events if e.type == "audio-chunk")
    transcript = await transcribe(port, pcm, rate)
    for sentence in ("The kitchen light is on.", "The door is locked."):
        assert heard(sentence, transcript) >= 0.75, transcript
    # once: the compatibility Synthesize was not spoken too
    assert nothing_more(text, transcript), transcript


def steady_speech(text: str) -> tuple[bytes, int]:
    """The installed voice without piper's random variation: the same audio every run
    (whisper tiny hears a varied "Hey robot." as "A robot." now and then)."""
    from assistant.config import load_config
    from assistant.speech.tts import PiperTTS

    tts = PiperTTS.from_config(load_config(None))
    tts.load()
    return b"".join(tts.synthesize(text, steady=True)), tts.sample_rate


async def test_the_wake_phrase_is_detected_and_other_speech_is_not(
    service: tuple[Process, int, str],
) -> None:
    _, port, _ = service
    for text, name, expected in (
        ("Hey, robot! What time is it?", "hey_robot", "detection"),
        ("What time is it?", "hey_robot", "not-detected"),
        ("Okay Nabu, what is the capital of France?", "okay_nabu", "detection"),
        ("Hey Jarvis, what time is it?", "hey_jarvis", "detection"),
        ("What is the capital of France?", "okay_nabu", "not-detected"),
    ):
        pcm, rate = steady_speech(text)
        async with AsyncTcpClient("127.0.0.1", port) as c:
            await c.write_event(Detect(names=[name]).event())
            await stream_audio(c, pcm, rate)
            event = (await until(c, "detection", "not-detected"))[-1]
        assert event.type == expected, text
        if expected == "detection":
            assert event.data["name"] == name
            # (the phrase is matched once its utterance ends: up to the closing silence)
            assert 0 < event.data["timestamp"] < (len(pcm) / 2 / rate + 1) * 1000


async def test_two_clients_are_answered_at_once_with_their_own_history(
    service: tuple[Process, int, str],
) -> None:
    _, port, api = service
    paris, berlin = await asyncio.gather(
        ask(port, "What is the capital of France?", "one"),
        ask(port, "What is the capital of Germany?", "two"),
    )
    assert "Paris" in paris
    assert "Berlin" in berlin
    async with httpx.AsyncClient() as http:
        status = (await http.get(f"{api}/status")).json()
    kinds = [t["kind"] for t in status["turns"]]
    assert kinds.count("wyoming") >= 2
    assert status["wyoming"]["url"] == f"tcp://127.0.0.1:{port}"


async def test_a_hostile_client_cannot_take_the_service_down(
    service: tuple[Process, int, str],
) -> None:
    _, port, api = service
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(json.dumps({"type": "audio-chunk", "payload_length": 10**9}).encode() + b"\n")
    await writer.drain()
    header = json.loads(await reader.readline())
    assert header["type"] == "error"
    await reader.readexactly(header["data_length"])
    assert await reader.read() == b""  # closed
    writer.close()
    # audio forever: cut at wyoming.max_audio_s (30 s) with an error, then closed
    async with AsyncTcpClient("127.0.0.1", port) as c:
        await c.write_event(Transcribe().event())
        await c.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        chunk = AudioChunk(rate=16000, width=2, channels=1, audio=bytes(32000)).event()
        for _ in range(31):
            await c.write_event(chunk)
        error = (await until(c, "error"))[-1]
        assert error.data["code"] == "too_long"
    # and a client that leaves mid-answer
    async with AsyncTcpClient("127.0.0.1", port) as c:
        await c.write_event(Transcript(text="Tell me a long story about a robot.").event())
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{api}/health")).status_code == 200
    assert "Paris" in await ask(port, "What is the capital of France?", "after")


def test_status_shows_where_wyoming_listens(service: tuple[Process, int, str]) -> None:
    from tests.test_cli import run

    proc, port, _ = service
    runtime = Path(str(cast(list[str], proc.proc.args)[-1])).parent  # the config sits in it
    out = run("status", env={"RUNTIME_DIRECTORY": str(runtime)})
    assert out.returncode == 0, out.stderr
    (row,) = [line for line in out.stdout.splitlines() if line.strip().startswith("wyoming")]
    assert f"tcp://127.0.0.1:{port}, " in row
    config = runtime / "config.toml"
    out = run("doctor", "--config", str(config))
    (row,) = [line for line in out.stdout.splitlines() if " wyoming " in line]
    assert row.startswith("OK") and "the running service answers: stt whisper-tiny.en" in row


async def discover(port: int, timeout: float = 60) -> str:
    """The address a ``_wyoming._tcp`` announcement for ``port`` gives, as Home Assistant's
    discovery finds it (an mDNS browser on this machine)."""
    from zeroconf import ServiceStateChange, Zeroconf
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

    names: asyncio.Queue[str] = asyncio.Queue()

    def seen(zeroconf: Zeroconf, service_type: str, name: str, state_change: Any) -> None:
        if state_change is ServiceStateChange.Added:
            names.put_nowait(name)

    browser_zc = AsyncZeroconf()
    browser = AsyncServiceBrowser(browser_zc.zeroconf, ["_wyoming._tcp.local."], handlers=[seen])
    try:
        async with asyncio.timeout(timeout):
            while True:  # other services on the network may announce themselves too
                name = await names.get()
                info = await browser_zc.async_get_service_info("_wyoming._tcp.local.", name, 3000)
                if info is not None and info.port == port:
                    (address,) = info.parsed_addresses()
                    return str(address)
    finally:
        await browser.async_cancel()
        await browser_zc.async_close()


async def test_zeroconf_announces_the_service_home_assistant_can_reach(tmp_path: Path) -> None:
    """What HA's Wyoming integration discovers: _wyoming._tcp with an address and port that
    answer Describe. Two devices with one host name (two Pis called "raspberrypi") are
    both announced: the second under another name."""
    ports = [free_port(), free_port()]
    procs = []
    with contextlib.ExitStack() as stack:
        for i, port in enumerate(ports):
            (tmp_path / str(i)).mkdir()
            config = tmp_path / str(i) / "config.toml"
            config.write_text(
                f'[wyoming]\nenabled = true\nuri = "tcp://0.0.0.0:{port}"\nallow_lan = true\n'
                f"zeroconf = true\n[api]\nport = {free_port()}\n[voice]\nenabled = false\n"
            )
            procs.append(stack.enter_context(Process(config, tmp_path / str(i))))
        loop = asyncio.get_running_loop()
        names = [await loop.run_in_executor(None, p.wait_for, "announced as") for p in procs]
        assert len({line.split("announced as ")[1].split(" on ")[0] for line in names}) == 2
        for port in ports:
            address = await discover(port)
            async with AsyncTcpClient(address, port) as c:
                await c.write_event(Describe().event())
                assert Info.from_event((await until(c, "info"))[-1]).handle


def test_the_documented_commands_work_with_the_documented_config(tmp_path: Path) -> None:
    """docs/homeassistant.md: add its [wyoming] table to the config (nothing else), run the
    service, then its two commands exactly as written, which find the service as they
    would on the Pi (the config file, the runtime directory)."""
    import os
    import subprocess
    import sys

    from tests.test_cli import documented_commands

    text = (ROOT / "docs/homeassistant.md").read_text()
    table = text.split("```toml\n", 1)[1].split("```", 1)[0]
    assert table == "[wyoming]\nenabled = true\n"
    config = tmp_path / "config.toml"
    config.write_text(table)
    commands = documented_commands(text)
    assert [c[1] for c in commands] == ["status", "doctor"]
    env = os.environ | {"QWEN_ASSISTANT_CONFIG": str(config), "RUNTIME_DIRECTORY": str(tmp_path)}
    with Process(config, tmp_path) as proc:
        line = proc.wait_for("wyoming listening on tcp://127.0.0.1:10700", timeout=120)
        logged = text.split("it offers:\n`", 1)[1].split("`", 1)[0]
        assert logged in line  # the log line the page shows
        proc.wait_for("ready:", timeout=120)
        exe = Path(sys.executable).parent / "qwen-assistant"
        done = {
            words[1]: subprocess.run(
                [str(exe), *words[1:]],
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=300,
            )
            for words in commands
        }
    status, doctor = done["status"], done["doctor"]
    assert status.returncode == 0 and "Traceback" not in status.stderr, status.stderr
    assert "  wyoming      tcp://127.0.0.1:10700, " in status.stdout
    assert "Traceback" not in doctor.stderr
    example = text.split("offers, for example\n`", 1)[1].split("`", 1)[0]
    assert example in doctor.stdout.splitlines(), doctor.stdout
    # this machine has no sound card: those rows fail here, and nothing else does
    failed = [line for line in doctor.stdout.splitlines() if line.startswith("FAIL")]
    assert all(" audio " in line for line in failed), failed
    assert doctor.returncode == (1 if failed else 0)


async def test_the_voice_loop_answers_while_wyoming_clients_come_and_go(tmp_path: Path) -> None:
    """The device's own microphone (a WAV) and Home Assistant at once, on one recognizer:
    a hostile client and a question over Wyoming do not stop the spoken question."""
    from assistant.speech.audio import WavSpeaker

    pcm, rate = steady_speech("Hey robot, what is the capital of France?")
    question, answer = tmp_path / "q.wav", tmp_path / "a.wav"
    wav = WavSpeaker(question)
    wav.start(rate)
    wav.write(bytes(rate) + pcm + bytes(4 * rate))
    wav.stop()
    port, api = free_port(), free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[wyoming]\nenabled = true\nuri = "tcp://127.0.0.1:{port}"\n[api]\nport = {api}\n'
        '[llm]\ntemperature = 0.0\n[voice]\nwake = "phrase"\n'
    )
    args = ["--listen-from", str(question), "--speak-to", str(answer)]
    with Process(config, tmp_path, args=args) as proc:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, proc.wait_for, "wyoming listening on", 120)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"not a wyoming event\n")
        await writer.drain()
        assert json.loads(await reader.readline())["type"] == "error"
        writer.close()
        assert "Paris" in await ask(port, "What is the capital of France?", "ha")
        voiced = await loop.run_in_executor(None, proc.wait_for, "s to first audio", 120)
        assert "capital of France" in voiced
        async with httpx.AsyncClient() as http:
            turns = (await http.get(f"http://127.0.0.1:{api}/status")).json()["turns"]
    assert {t["kind"] for t in turns} == {"voice", "wyoming"}
    assert answer.stat().st_size > 44  # the spoken answer
