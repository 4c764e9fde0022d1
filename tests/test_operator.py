"""Operator truth, without a model: the service in this process with a fake engine whose
answers the test paces. A stop lets running answers finish or cuts them visibly, a stop
while loading is prompt, reload reports its outcome, every view of the status agrees, one
service per runtime directory, an honest Retry-After, and the HTTP door's header timeout and
connection cap over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant.api.app import create_app
from assistant.api.server import Server, ServerThread
from assistant.brain import Brain, NotReady
from assistant.config import API, LLM, Config, Thermal, load_config
from assistant.errors import ConfigError
from assistant.service import Service
from assistant.systemd import Notifier
from assistant.thermal.admission import Admission, Busy, Priority
from assistant.thermal.governor import Governor
from tests.fakes import Clock, FakeEngine

QUESTION = {"messages": [{"role": "user", "content": "Count."}], "stream": True}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PORT = free_port()


def config_file(path: Path, *, rate: float = 120.0, grace: float = 5.0, extra: str = "") -> Path:
    path.write_text(
        f'[thermal]\nsensor_path = ""\nrate_per_min = {rate}\nburst = 50\n'
        f"[api]\nport = {PORT}\n[voice]\nenabled = false\n"
        f"[service]\nstatus_interval_s = 60.0\nstop_grace_s = {grace}\n{extra}"
    )
    return path


class Notes(Notifier):
    """systemd's end: every message kept in order."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        super().__init__(self._keep, environ={"NOTIFY_SOCKET": "@test"})

    def _keep(self, message: str) -> bool:
        self.sent.append(message)
        return True

    def last_status(self) -> str:
        for message in reversed(self.sent):
            for field in message.split("\n"):
                if field.startswith("STATUS="):
                    return field[len("STATUS=") :]
        raise AssertionError(f"no STATUS= in {self.sent}")


@contextlib.asynccontextmanager
async def running(
    tmp_path: Path,
    engine: Any,
    *,
    config: Config | None = None,
    make_engine: Callable[[], Any] | None = None,
    wait_ready: bool = True,
) -> AsyncIterator[tuple[Service, asyncio.Task[int]]]:
    config = config or load_config(config_file(tmp_path / "config.toml"))
    service = Service(
        config,
        make_engine=make_engine or (lambda: engine),
        governor=Governor.from_config(config, drive_fan=False),
        notifier=Notes(),
        runtime_dir=str(tmp_path / "run"),
    )
    task = asyncio.create_task(service.run())
    try:
        if wait_ready:
            ready = asyncio.ensure_future(service.serving.wait())
            await asyncio.wait({ready, task}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
            if task.done():
                task.result()  # raise what stopped it
            assert service.serving.is_set()
        yield service, task
    finally:
        if not task.done():
            service.stop()
            await asyncio.wait_for(task, 30)


async def sse_events(response: httpx.Response) -> AsyncIterator[Any]:
    async for line in response.aiter_lines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            yield "[DONE]" if data == "[DONE]" else json.loads(data)


def content(event: Any) -> str:
    if not isinstance(event, dict) or not event.get("choices"):
        return ""
    return str(event["choices"][0]["delta"].get("content") or "")


@contextlib.asynccontextmanager
async def asking(service: Service) -> AsyncIterator[AsyncIterator[Any]]:
    """QUESTION streamed from ``service``'s API: its events as they come."""
    url = service.state.api_url if service.state else ""
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream("POST", f"{url}/v1/chat/completions", json=QUESTION) as response,
    ):
        yield sse_events(response)


# -- graceful stop -------------------------------------------------------------------------


async def test_a_stop_lets_a_running_answer_finish_within_the_grace(tmp_path: Path) -> None:
    engine = FakeEngine(["one ", "two ", "three."], gated=True)
    async with running(tmp_path, engine) as (service, task):
        async with asking(service) as events:
            engine.release(1)
            assert (await anext(events))["choices"][0]["delta"]["role"] == "assistant"
            assert content(await anext(events)) == "one "
            service.stop()  # SIGTERM's handler
            engine.release(2)  # the answer goes on and ends within stop_grace_s (5 s)
            rest = [e async for e in events]
        assert await asyncio.wait_for(task, 30) == 0
    assert "".join(content(e) for e in rest) == "two three."
    assert rest[-2]["choices"][0]["finish_reason"] == "stop" and rest[-1] == "[DONE]"


async def test_status_says_stopping_until_the_drain_is_over(tmp_path: Path) -> None:
    """After SIGTERM the process lived on through the drain while `status` said "not
    running" (or the last "ready"): now it says "stopping" until the process is gone."""
    engine = FakeEngine(["one ", "two."], gated=True)
    config = load_config(config_file(tmp_path / "config.toml", grace=60.0))  # a slow `status`
    async with running(tmp_path, engine, config=config) as (service, task):
        async with asking(service) as events:
            engine.release(1)
            await anext(events)
            assert content(await anext(events)) == "one "
            service.stop()  # SIGTERM's handler; the answer is still running
            code, out, err = await run_cli(
                "status", "--json", "--runtime-dir", str(tmp_path / "run")
            )
            assert code == 0, err
            status = json.loads(out)
            assert status["state"] == "stopping", status["state"]
            assert status["problem"] == "the service is stopping"
            assert status["line"].startswith("stopping · ")
            code, text, _ = await run_cli("status", "--runtime-dir", str(tmp_path / "run"))
            assert "stopping (the service is stopping)" in text
            engine.release(1)
            rest = [e async for e in events]
        assert await asyncio.wait_for(task, 30) == 0
    assert "".join(content(e) for e in rest) == "two."
    code, _, err = await run_cli("status", "--runtime-dir", str(tmp_path / "run"))
    assert code == 3 and "no running service" in err


async def test_a_stop_cuts_an_answer_after_the_grace_and_the_client_sees_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = FakeEngine(["word "] * 50, gated=True)
    config = load_config(config_file(tmp_path / "config.toml", grace=0.2))
    with caplog.at_level(logging.INFO, logger="assistant"):
        async with running(tmp_path, engine, config=config) as (service, task):
            async with asking(service) as events:
                engine.release(2)
                await anext(events)
                assert content(await anext(events)) + content(await anext(events)) == "word " * 2
                service.stop()  # nothing more is released: the grace runs out, the answer is cut
                rest = [e async for e in events]
            assert await asyncio.wait_for(task, 30) == 0
    error = rest[-1]["error"]
    assert error["code"] == "shutdown" and error["type"] == "server_error"
    assert error["message"].startswith("the answer was cut after 2 tokens: the service is stopping")
    assert "[DONE]" not in rest
    assert not any(e.get("choices") and e["choices"][0]["finish_reason"] for e in rest[:-1])
    turn = [r.getMessage() for r in caplog.records if r.getMessage().startswith("turn 1 api:")]
    assert turn and turn[0].startswith(
        "turn 1 api: 'Count.' → shutdown, 5 prompt tokens (0 cached), 2 tokens"
    )
    assert "cut 1 answer(s) still running after 0.2 s" in caplog.text
    assert "Traceback" not in caplog.text and not any(r.exc_info for r in caplog.records)


async def test_a_stopping_brain_admits_nothing() -> None:
    brain = Brain(Admission(Thermal(sensor_path="")), FakeEngine(["x"]))
    brain.closing = "the service is stopping"
    with pytest.raises(NotReady, match="the service is stopping"):
        await brain.admit(Priority.API, 1.0)


async def test_a_stop_while_the_model_loads_returns_within_a_second(tmp_path: Path) -> None:
    entered, release = threading.Event(), threading.Event()

    def slow_load() -> FakeEngine:  # llama.cpp's load cannot be interrupted either
        entered.set()
        release.wait(60)
        return FakeEngine(["late"])

    try:
        async with running(tmp_path, None, make_engine=slow_load, wait_ready=False) as (
            service,
            task,
        ):
            assert await asyncio.get_running_loop().run_in_executor(None, entered.wait, 30)
            begun = time.monotonic()
            service.stop()
            assert await asyncio.wait_for(task, 5) == 0
            assert time.monotonic() - begun < 1.0
            assert service.abandoned
            assert not (tmp_path / "run" / "qwen-assistant.pid").exists()
    finally:
        release.set()


# -- reload and status ---------------------------------------------------------------------


async def run_cli(*args: str) -> tuple[int, str, str]:
    """The CLI in a subprocess, awaited so this process's loop keeps serving meanwhile."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "assistant",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=os.environ | {"COLUMNS": "200"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_reload_waits_for_the_outcome_and_the_rejection_stays_visible(
    tmp_path: Path,
) -> None:
    path = config_file(tmp_path / "config.toml", rate=120.0)
    async with running(tmp_path, FakeEngine(["ok"]), config=load_config(path)) as (service, _):
        runtime = str(tmp_path / "run")
        config_file(path, rate=30.0)
        code, out, err = await run_cli("reload", "--runtime-dir", runtime)
        assert code == 0, err
        assert out.splitlines() == [
            f"reloaded {path} (pid {os.getpid()})",
            "  applied: thermal.rate_per_min 120.0 → 30.0",
        ]

        config_file(path, rate=-5.0)
        code, out, err = await run_cli("reload", "--runtime-dir", runtime)
        assert code == 78 and out == ""
        lines = err.splitlines()
        assert lines[0].startswith(f"{path}:3:1: thermal.rate_per_min:")
        assert lines[-1] == f"qwen-assistant: reload of {path} rejected; the settings in force stay"
        assert service.state is not None
        url = service.state.api_url
        async with httpx.AsyncClient() as client:
            status = (await client.get(f"{url}/status")).json()
        assert status["problem"].startswith(f"reload rejected: {path}:3:1: thermal.rate_per_min")
        assert status["reload"]["generation"] == 2 and not status["reload"]["ok"]
        assert status["admission"]["configured_per_min"] == 30.0
        assert "reload rejected" in Notes.last_status(service.notifier)  # type: ignore[arg-type]

        config_file(path, rate=60.0)
        code, out, _ = await run_cli("reload", "--runtime-dir", runtime)
        assert code == 0 and "thermal.rate_per_min 30.0 → 60.0" in out
        async with httpx.AsyncClient() as client:
            status = (await client.get(f"{url}/status")).json()
        assert status["problem"] == "" and status["reload"]["ok"]


async def test_status_api_status_json_and_the_status_line_agree(tmp_path: Path) -> None:
    async with running(tmp_path, FakeEngine(["ok"])) as (service, _):
        assert service.state is not None
        url = service.state.api_url
        async with httpx.AsyncClient() as client:
            api = (await client.get(f"{url}/status")).json()
        code, out, err = await run_cli("status", "--json", "--runtime-dir", str(tmp_path / "run"))
        assert code == 0, err
        cli = json.loads(out)
        code, text, _ = await run_cli("status", "--runtime-dir", str(tmp_path / "run"))
        line = Notes.last_status(service.notifier)  # type: ignore[arg-type]
    same = (
        "state",
        "problem",
        "voice",
        "voice_off",
        "model",
        "model_sha256",
        "runtime_dir",
        "api",
        "pid",
        "config",
        "reload",
    )
    assert {k: api[k] for k in same} == {k: cli[k] for k in same}
    assert api["voice"] == "off" and api["voice_off"] == "voice.enabled = false"
    assert api["runtime_dir"] == str(tmp_path / "run") and api["model_sha256"] == "f" * 64
    assert cli["line"] == line and line.startswith("ready · no thermal sensor")
    assert "  voice        off (voice.enabled = false)" in text.splitlines()
    assert f"  runtime      {tmp_path / 'run'}" in text.splitlines()


async def test_a_second_service_on_the_same_runtime_directory_exits_75(tmp_path: Path) -> None:
    path = config_file(tmp_path / "config.toml")
    async with running(tmp_path, FakeEngine(["ok"]), config=load_config(path)):
        pidfile = tmp_path / "run" / "qwen-assistant.pid"
        before = pidfile.read_text(), (tmp_path / "run" / "status.json").read_text()
        code, _, err = await run_cli(
            "run", "--config", str(path), "--runtime-dir", str(tmp_path / "run")
        )
        assert code == 75
        assert err.strip() == (
            f"qwen-assistant: another qwen-assistant (pid {os.getpid()}) is running with "
            f"runtime directory {tmp_path / 'run'}; stop it, or give this one its own with "
            "`run --runtime-dir DIR` (or $RUNTIME_DIRECTORY)"
        )
        # the refused one removed nothing of the running one's
        assert pidfile.read_text() == before[0]
        assert (tmp_path / "run" / "status.json").exists()
    assert not pidfile.exists()  # the owner removes its files at stop


# -- an honest Retry-After -----------------------------------------------------------------


async def test_retry_after_follows_the_running_answers_own_progress() -> None:
    clock = Clock()

    def tick() -> None:  # a slow engine: 4 tokens a second
        clock.now += 0.25

    engine = FakeEngine(["w"] * 100, settings=LLM(max_tokens=100), gated=True, tick=tick)
    admission = Admission(Thermal(sensor_path="", rate_per_min=600, burst=50), clock=clock)
    brain = Brain(admission, engine, clock=clock)
    ticket = await brain.admit(Priority.API, 5)
    job = brain.generate(ticket, [1, 2, 3])
    started = clock.now
    engine.release(9)
    pieces = aiter(job)
    for _ in range(9):
        await anext(pieces)
    # 9 tokens in 2.25 s, the first at 0.25 s: 4 tok/s, 91 to go at most → 22.75 s
    assert admission.timed_out().retry_after == 23  # a running mean said 8
    # the route's call (api.queue_timeout_s as the limit): a wait past it is refused at once
    with pytest.raises(Busy) as busy:
        await brain.admit(Priority.API, 10)
    assert busy.value.reason == "queue" and busy.value.retry_after == 23
    assert "the wait for the engine would be about 23 s, longer than 10 s" in str(busy.value)
    waiting = asyncio.ensure_future(brain.admit(Priority.API, 60))  # fits: it queues
    voice = asyncio.ensure_future(brain.admit(Priority.VOICE, 1))  # voice is never refused
    await asyncio.sleep(0)  # one turn of the loop (no waiting): both take their place
    assert admission.snapshot().queue == 1 and not waiting.done()
    admission.release(await voice)  # voice got the slot beyond the engine's one at once
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    engine.release(91)
    async for _ in pieces:
        pass
    await job.done
    assert clock.now - started == pytest.approx(25.0)  # 2.25 s + 22.75 s, as announced


# -- the HTTP door: header timeout, connection cap, a unix socket in use -------------------


def door(**api: Any) -> ServerThread:
    config = Config(
        thermal=Thermal(sensor_path=""),
        api=dataclasses.replace(API(port=0), **api),
    )
    governor = Governor.from_config(config, drive_fan=False)
    from assistant.api.app import ApiState

    state = ApiState(config, Brain(governor.admission, None), governor)
    return ServerThread(create_app(state), config.api)


def test_slow_headers_are_cut_off_after_header_timeout_s() -> None:
    server = door(header_timeout_s=0.5)
    try:
        host, port = server.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as slow:
            slow.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
            begun = time.monotonic()
            assert slow.recv(1024) == b""  # closed by the server, not by our 10 s timeout
            assert 0.4 < time.monotonic() - begun < 5
        # a complete request on a fresh connection is served as before
        assert httpx.get(f"{server.url}/health").status_code == 503  # loading: no model here
    finally:
        server.close()


def test_connections_beyond_max_connections_get_503_and_are_closed() -> None:
    server = door(max_connections=2)
    try:
        with httpx.Client() as a, httpx.Client() as b:  # two kept-alive connections
            assert a.get(f"{server.url}/health").status_code == 503  # the model is loading
            assert b.get(f"{server.url}/health").status_code == 503
            refused = httpx.get(f"{server.url}/health")
            assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
            assert refused.json()["error"]["code"] == "too_many_connections"
            assert "api.max_connections = 2" in refused.json()["error"]["message"]
        third = httpx.get(f"{server.url}/health")  # the two closed: room again
        assert third.json()["status"] == "loading"
    finally:
        server.close()


def test_a_unix_socket_in_use_is_not_taken_over(tmp_path: Path) -> None:
    settings = API(unix_socket=str(tmp_path / "api.sock"))
    config = Config(thermal=Thermal(sensor_path=""), api=settings)
    governor = Governor.from_config(config, drive_fan=False)
    from assistant.api.app import ApiState

    state = ApiState(config, Brain(governor.admission, None), governor)
    first = ServerThread(create_app(state), settings)
    try:
        with pytest.raises(ConfigError, match="in use by another process"):
            Server(create_app(state), settings).bind()
    finally:
        first.close()
    # what a killed service leaves: a socket file nobody listens on, replaced at start
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "api.sock"))
    stale.close()
    second = Server(create_app(state), settings)
    second.bind()
    assert second.sock is not None
    second.sock.close()
    second.close()
