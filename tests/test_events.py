"""The event stream (/v1/events) and the kiosk page's routes: every door's turn in order, a
snapshot on connect, a stalled reader dropped while turns go on, the API's door (key,
cookie, Host) and no secret in any event."""

from __future__ import annotations

import asyncio
import dataclasses
import html
import http.server
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant.api.server import ServerThread
from assistant.config import Http
from assistant.events import EventHub
from assistant.turn import Conversation, TurnRequest
from tests.fakes import FakeEngine, serve_http
from tests.test_api import make_config, make_state
from tests.test_doors import DOORS, Doors, House, actions, house  # noqa: F401 - the fixture
from tests.test_wyoming import client, serving

KEY = "s3cret-key-for-the-test"


def kinds(events: list[dict[str, Any]], turn: int) -> list[str]:
    """The types of one turn's events, a run of pieces as one."""
    out: list[str] = []
    for e in events:
        if e.get("turn") == turn and not (e["type"] == "piece" and out and out[-1] == "piece"):
            out.append(e["type"])
    return out


# -- the hub ------------------------------------------------------------------------------
async def test_a_reader_that_falls_behind_is_dropped_and_publishing_never_waits() -> None:
    hub = EventHub(backlog=4)
    slow, fast = hub.subscribe(), hub.subscribe()
    got: list[int] = []

    async def read() -> None:
        async for event in fast:
            got.append(event["id"])

    reader = asyncio.ensure_future(read())
    for n in range(10):  # the slow one reads nothing
        hub.publish("device", n=n)
        await asyncio.sleep(0)  # the loop hands each event over (call_soon_threadsafe)
    assert slow.dropped and not fast.dropped and hub.subscribers == 1
    # it keeps what it had but the oldest, then its stream ends
    assert [(await slow.get() or {}).get("id") for _ in range(3)] == [2, 3, 4]
    assert await slow.get() is None  # then its stream ends
    hub.close()
    await reader
    assert got == list(range(1, 11))


async def test_the_snapshot_knows_the_last_turns_and_the_one_in_progress() -> None:
    hub = EventHub()
    hub.publish("turn", turn=1, door="voice", text="Hello?")
    hub.publish("piece", turn=1, door="voice", text="Hi")
    hub.publish("done", turn=1, door="voice", text="Hi there.", outcome="stop")
    hub.publish("turn", turn=2, door="api", text="What time is it?")
    hub.publish("piece", turn=2, door="api", text="It is")
    assert hub.recent() == [
        {"turn": 1, "door": "voice", "text": "Hello?", "answer": "Hi there.", "state": "stop"},
        {"turn": 2, "door": "api", "text": "What time is it?", "answer": "It is",
         "state": "answering"},
    ]  # fmt: skip


# -- every door's turn, in order ------------------------------------------------------------
async def test_every_doors_turn_is_told_in_order(house: House) -> None:  # noqa: F811
    sub = house.state.events.subscribe()
    async with serving(house.wyoming_parts, house.config) as server, client(server) as c:
        doors = Doors(house, c)
        for door in DOORS:
            await doors.ask(door, "What is the capital of France?")
        await doors.ask("cli", "Turn on the kitchen light.")
    house.state.events.close()
    events = [e async for e in sub]
    turns = sorted({e["turn"] for e in events if "turn" in e})
    assert [kinds(events, t) for t in turns[: len(DOORS)]] == [
        ["turn", "admitted", "piece", "done"]
    ] * len(DOORS)
    assert kinds(events, turns[-1]) == ["turn", "admitted", "outcome", "done"]  # the action
    assert [e["door"] for e in events if e["type"] == "done"] == [
        "voice", "api", "api", "wyoming", "cli", "cli"
    ]  # fmt: skip
    done = [e for e in events if e["type"] == "done"]
    assert {e["text"] for e in done[:-1]} == {"Paris is the capital."}
    assert done[-1]["text"] == "The kitchen light is on." and done[-1]["tokens"] == 7
    assert [e["state"] for e in events if e["type"] == "voice"][:1] == ["listening"]


# -- over HTTP: the API's door ----------------------------------------------------------------
def serve(tmp_path: Path, **api: Any) -> tuple[ServerThread, Any]:
    config = make_config(**api)
    state = make_state(config, FakeEngine(["Paris", " is", " the", " capital."]))
    return ServerThread(_app(state), config.api), state


def _app(state: Any) -> Any:
    from assistant.api.app import create_app

    return create_app(state)


def read_events(url: str, n: int, **kwargs: Any) -> list[dict[str, Any]]:
    """The first ``n`` events of the stream (``kwargs``: the request's headers, cookies)."""
    events: list[dict[str, Any]] = []
    with httpx.stream("GET", f"{url}/v1/events", timeout=10, **kwargs) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if len(events) == n:
                    break
    return events


def test_a_client_gets_a_snapshot_then_the_turns_as_they_happen(tmp_path: Path) -> None:
    thread, _state = serve(tmp_path)
    try:
        url = thread.url
        snapshot, *_ = read_events(url, 1)
        assert snapshot["type"] == "snapshot" and snapshot["status"]["ready"] is True
        assert snapshot["turns"] == []
        body = {"messages": [{"role": "user", "content": "Capital of France?"}]}
        httpx.post(f"{url}/v1/chat/completions", json=body, timeout=10).raise_for_status()
        snapshot, *_ = read_events(url, 1)
        assert snapshot["turns"][-1]["answer"] == "Paris is the capital."
    finally:
        thread.close()


def test_the_event_stream_keeps_the_apis_door(tmp_path: Path) -> None:
    thread, _state = serve(tmp_path, api_key=KEY)
    try:
        url = thread.url
        assert httpx.get(f"{url}/v1/events", timeout=10).status_code == 401
        wrong = {"qwen_assistant_key": "nope"}
        assert httpx.get(f"{url}/v1/events", cookies=wrong, timeout=10).status_code == 401
        assert read_events(url, 1, cookies={"qwen_assistant_key": KEY})[0]["type"] == "snapshot"
        assert read_events(url, 1, headers={"Authorization": f"Bearer {KEY}"})
        # the cookie opens the event stream only: not the API
        status = httpx.get(f"{url}/status", cookies={"qwen_assistant_key": KEY}, timeout=10)
        assert status.status_code == 401
        foreign = httpx.get(
            f"{url}/v1/events", headers={"Host": "evil.example", "Authorization": f"Bearer {KEY}"}
        )
        assert foreign.status_code == 403
        page = httpx.get(f"{url}/", timeout=10)  # the page holds no secret: it asks for the key
        assert page.status_code == 200 and KEY not in page.text
    finally:
        thread.close()


class _Ok(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


async def test_no_secret_is_in_any_event(house: House, tmp_path: Path) -> None:  # noqa: F811
    token = tmp_path / "token"
    token.write_text("tok-123-secret")
    sub = house.state.events.subscribe()
    with serve_http(_Ok) as url:
        http = Http(f"{url}/light", "POST", (("X-Secret", "hdr-456-secret"),),
                    {"entity_id": "light.{room}", "auth": "{token}"}, str(token))  # fmt: skip
        light = dataclasses.replace(actions(tmp_path)[0], command=(), http=http)
        house.turns.actor.update([light])
        request = TurnRequest("cli", "Turn on the kitchen light.", Conversation("cli:test"))
        turn = await house.turns.start(request)
        async for _ in turn:
            pass
        turn.end()
    assert turn.decision is not None and turn.decision.outcome == "ran"
    house.state.events.publish("device", **_device(house))
    house.state.events.close()
    text = json.dumps([e async for e in sub])
    assert "The kitchen light is on." in text
    for secret in ("tok-123-secret", str(token), "hdr-456-secret", "X-Secret", url):
        assert secret not in text


def _device(home: House) -> dict[str, Any]:
    from assistant.events import device

    return device(home.state.snapshot())


# -- the page -------------------------------------------------------------------------------
def test_the_page_and_its_assets_are_served_and_kiosk_off_hides_them(tmp_path: Path) -> None:
    thread, state = serve(tmp_path)
    try:
        url = thread.url
        page = httpx.get(f"{url}/", timeout=10)
        assert page.status_code == 200 and "<title>Assistant</title>" in page.text
        assert "Say “okay nabu”" in page.text and "$" not in page.text.split("<script>")[0]
        for name, media in (("kiosk.js", "text/javascript"), ("kiosk.css", "text/css")):
            asset = httpx.get(f"{url}/kiosk/{name}", timeout=10)
            assert asset.status_code == 200 and asset.headers["content-type"].startswith(media)
        assert httpx.get(f"{url}/kiosk/../app.py", timeout=10).status_code == 404
        import dataclasses

        state.config = dataclasses.replace(
            state.config, kiosk=dataclasses.replace(state.config.kiosk, enabled=False)
        )
        assert httpx.get(f"{url}/", timeout=10).status_code == 404
        assert httpx.get(f"{url}/kiosk/kiosk.js", timeout=10).status_code == 404
    finally:
        thread.close()


def test_the_talk_button_needs_a_voice_loop(tmp_path: Path) -> None:
    thread, _state = serve(tmp_path)
    try:
        answer = httpx.post(f"{thread.url}/v1/voice/listen", timeout=10)
        assert answer.status_code == 409 and "not listening" in answer.json()["error"]["message"]
    finally:
        thread.close()


@pytest.mark.parametrize("title", ["</title><script>alert(1)</script>", "A & B"])
def test_the_title_is_text_not_markup(title: str) -> None:
    import dataclasses

    from assistant import kiosk
    from assistant.config import Config

    config = Config()
    config = dataclasses.replace(config, kiosk=dataclasses.replace(config.kiosk, title=title))
    page = kiosk.page(config, can_speak=False)
    assert f"<title>{html.escape(title)}</title>" in page
    assert "<script>alert" not in page


# -- the documented robot controller ----------------------------------------------------------
def _doc_blocks(kind: str) -> list[str]:
    text = (Path(__file__).parent.parent / "docs" / "api.md").read_text()
    section = text.split("## The event stream (`GET /v1/events`)", 1)[1].split("\n## ", 1)[0]
    return [b.split("```", 1)[0] for b in section.split(f"```{kind}\n")[1:]]


def test_the_documented_event_stream_commands_follow_a_turn(tmp_path: Path) -> None:
    """docs/api.md's `curl -N` and its httpx loop, as written, against the API on its
    default port: the snapshot comes first; a turn's answer is printed by the loop."""
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", 8088)) == 0:
            pytest.skip("port 8088 is taken here: the documented commands use it")
    (curl,) = _doc_blocks("sh")
    (loop,) = _doc_blocks("python")
    assert curl.strip() == "curl -N http://127.0.0.1:8088/v1/events"
    thread, _state = serve(tmp_path, port=8088)
    procs = []
    try:
        follow = subprocess.Popen(curl.split(), stdout=subprocess.PIPE, text=True)
        procs.append(follow)
        assert follow.stdout is not None
        first = follow.stdout.readline()
        assert first.startswith("data: ") and json.loads(first[6:])["type"] == "snapshot"
        robot = subprocess.Popen(
            [sys.executable, "-u", "-c", loop], stdout=subprocess.PIPE, text=True
        )
        procs.append(robot)
        body = {"messages": [{"role": "user", "content": "Capital of France?"}]}
        printed = threading.Event()

        def ask() -> None:  # turns until the loop, once connected, has printed one
            while not printed.is_set():
                httpx.post(f"{thread.url}/v1/chat/completions", json=body, timeout=10)

        asking = threading.Thread(target=ask, daemon=True)
        asking.start()
        assert robot.stdout is not None
        line = robot.stdout.readline()
        printed.set()
        asking.join(10)
        assert line == "api answered: Paris is the capital.\n"
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
        thread.close()
