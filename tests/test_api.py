"""The HTTP API over real sockets: the door (Host, token, body limits) and the allow-list.

These run without a model (the brain stays "loading"); the model-backed API tests are in
test_api_model.py.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant.api.app import ApiState, create_app
from assistant.api.guard import host_name
from assistant.api.metrics import Histogram
from assistant.api.server import Server, ServerThread
from assistant.brain import Brain, StopMatcher
from assistant.config import API, Config, Thermal, is_loopback, load_config
from assistant.errors import ConfigError, PromptTooLong
from assistant.llm.conversation import ChatML, stateless_prompt
from assistant.thermal.governor import Governor

KEY = "s3cret-token"


def make_config(**api: Any) -> Config:
    thermal = Thermal(sensor_path="", rate_per_min=600.0, burst=50)
    settings = API(host="127.0.0.1", port=0, read_timeout_s=0.5)
    return Config(thermal=thermal, api=dataclasses.replace(settings, **api))


def make_state(config: Config, engine: Any = None, actor: Any = None) -> ApiState:
    governor = Governor.from_config(config, drive_fan=False)
    brain = Brain(governor.admission, engine)
    return ApiState(config, brain, governor, model_id="test-model", actor=actor)


@pytest.fixture
def serve() -> Iterator[Any]:
    started: list[ServerThread] = []

    def start(config: Config, engine: Any = None) -> tuple[ServerThread, ApiState]:
        state = make_state(config, engine)
        thread = ServerThread(create_app(state), config.api)
        started.append(thread)
        return thread, state

    yield start
    for thread in started:
        thread.close()


@pytest.fixture
def loading(serve: Any) -> ServerThread:
    """An API whose model is still loading, without a key."""
    thread: ServerThread = serve(make_config())[0]
    return thread


@pytest.fixture
def keyed(serve: Any) -> ServerThread:
    thread: ServerThread = serve(make_config(api_key=KEY))[0]
    return thread


def raw_request(url: str, data: bytes, *, timeout: float = 5.0) -> bytes:
    """Send bytes as they are and read the whole reply (the server closes or answers)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks) and b"content-length" in b"".join(chunks).lower():
                head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                if len(body) >= length:
                    break
        return b"".join(chunks)


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "Hello"}]} | extra


# -- pure parts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stops", "pieces", "out", "hit"),
    [
        ([], ["a", "b"], ["a", "b"], False),
        (["END"], ["hello ", "E", "N", "D tail"], ["hello ", "", "", ""], True),
        (["END"], ["hello E", "Nx"], ["hello ", "ENx"], False),
        (["\n\n", "###"], ["one\n", "\ntwo"], ["one", ""], True),
        (["stop"], ["st", "op"], ["", ""], True),
        (["ab"], ["xa"], ["x"], False),
    ],
)
def test_stop_matcher_cuts_at_stop_strings_across_pieces(
    stops: list[str], pieces: list[str], out: list[str], hit: bool
) -> None:
    matcher = StopMatcher(stops)
    assert [matcher.feed(p) for p in pieces] == out
    assert matcher.hit is hit


def test_stop_matcher_flushes_a_held_prefix_at_the_end() -> None:
    matcher = StopMatcher(["END"])
    assert matcher.feed("the E") == "the "
    assert matcher.flush() == "E"


def fake_chatml() -> ChatML:
    """A tokenizer with one id per character; control tokens are ids no character has."""
    return ChatML(im_start=-1, im_end=-2, encode=lambda text: [ord(c) for c in text])


def test_stateless_prompt_uses_the_clients_system_prompt_and_drops_oldest_turns() -> None:
    fmt = fake_chatml()
    messages = [("system", "S"), ("user", "q1" * 20), ("assistant", "a1" * 20)]
    messages += [("user", "q2"), ("assistant", "a2"), ("user", "q3")]
    prompt = stateless_prompt(fmt, messages, "default", n_ctx=120, max_tokens=40)
    text = "".join(chr(t) if t > 0 else "|" for t in prompt.tokens)
    assert text.startswith("|system\nS|\n")
    assert "default" not in text
    assert "q1" not in text and "a1" not in text  # the oldest turn did not fit
    assert "|user\nq2|\n|assistant\na2|\n|user\nq3|\n|assistant\n" in text
    assert prompt.dropped_turns == 1
    assert len(prompt.tokens) + 40 <= 120


def test_stateless_prompt_refuses_what_cannot_fit_or_does_not_end_with_the_user() -> None:
    fmt = fake_chatml()
    with pytest.raises(PromptTooLong, match=r"llm\.n_ctx"):
        stateless_prompt(fmt, [("user", "x" * 500)], "", n_ctx=256, max_tokens=32)
    with pytest.raises(ValueError, match="last message"):
        stateless_prompt(fmt, [("user", "q"), ("assistant", "a")], "", n_ctx=256, max_tokens=32)
    with pytest.raises(ValueError, match="last message"):
        stateless_prompt(fmt, [("system", "only a system prompt")], "", 256, 32)


def test_histogram_is_cumulative_in_prometheus_format() -> None:
    hist = Histogram((0.5, 1.0))
    for value in (0.2, 0.7, 3.0):
        hist.observe(value)
    assert hist.lines("t") == [
        't_bucket{le="0.5"} 1',
        't_bucket{le="1"} 2',
        't_bucket{le="+Inf"} 3',
        "t_sum 3.900000",
        "t_count 3",
    ]


@pytest.mark.parametrize(
    ("header", "name"),
    [("localhost:8088", "localhost"), ("[::1]:8088", "::1"), ("EXAMPLE.com", "example.com")],
)
def test_host_name_strips_the_port(header: str, name: str) -> None:
    assert host_name(header) == name


# -- exposure -------------------------------------------------------------------------------


def test_a_non_loopback_bind_without_a_key_is_refused(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and not is_loopback("0.0.0.0")
    assert not is_loopback("127.evil.example")  # a name that looks like 127/8 is not
    with pytest.raises(ConfigError, match="api_key"):
        Server(object(), API(host="0.0.0.0"))
    path = tmp_path / "config.toml"
    path.write_text('[api]\nhost = "0.0.0.0"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "api.host" in info.value.problems[0]


def test_the_default_config_binds_loopback_only() -> None:
    api = load_config(None).api
    assert api.host == "127.0.0.1"
    assert api.api_key == ""


def test_health_says_loading_with_retry_after(loading: ServerThread) -> None:
    reply = httpx.get(f"{loading.url}/health")
    assert reply.status_code == 503
    assert reply.headers["retry-after"] == "5"
    assert reply.json()["status"] == "loading"


def test_a_completion_while_loading_is_503_with_retry_after(loading: ServerThread) -> None:
    reply = httpx.post(f"{loading.url}/v1/chat/completions", json=chat_body())
    assert reply.status_code == 503
    assert reply.headers["retry-after"] == "5"
    assert reply.json()["error"]["code"] == "not_ready"


def test_a_dead_decode_loop_turns_health_and_status_to_error_at_once(serve: Any) -> None:
    """Before, /health stayed 200 and /status "ready" while every completion failed with
    "the model is not loaded", until the watchdog noticed a minute later."""
    from tests.fakes import FakeEngine

    engine = FakeEngine(["Hi."])
    thread, _ = serve(make_config(), engine)
    assert httpx.get(f"{thread.url}/health").status_code == 200
    engine.failure = "the decode loop failed: boom"
    health = httpx.get(f"{thread.url}/health")
    assert health.status_code == 503
    assert health.json() == {"status": "error", "problem": "the decode loop failed: boom"}
    status = httpx.get(f"{thread.url}/status").json()
    assert status["state"] == "error" and status["problem"] == "the decode loop failed: boom"
    reply = httpx.post(f"{thread.url}/v1/chat/completions", json=chat_body())
    assert reply.status_code == 503 and reply.json()["error"]["code"] == "not_ready"
    assert "decode loop failed" in reply.json()["error"]["message"]


def test_a_foreign_host_header_is_403(loading: ServerThread) -> None:
    """DNS rebinding: evil.example resolves to 127.0.0.1, but the browser sends its name."""
    reply = httpx.get(f"{loading.url}/status", headers={"Host": "evil.example"})
    assert reply.status_code == 403
    assert "api.allowed_hosts" in reply.json()["error"]["message"]
    port = loading.url.rsplit(":", 1)[1]
    assert httpx.get(f"{loading.url}/status", headers={"Host": f"localhost:{port}"}).is_success


def test_allowed_hosts_are_configurable(serve: Any) -> None:
    thread, _ = serve(make_config(allowed_hosts=("kiosk.lan",)))
    assert httpx.get(f"{thread.url}/status", headers={"Host": "kiosk.lan:80"}).is_success


def test_no_cors_headers_are_ever_sent(loading: ServerThread) -> None:
    origin = {"Origin": "http://evil.example"}
    preflight = httpx.options(
        f"{loading.url}/v1/chat/completions",
        headers=origin | {"Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    reply = httpx.get(f"{loading.url}/status", headers=origin)
    assert "access-control-allow-origin" not in reply.headers
    assert "access-control-allow-credentials" not in reply.headers


def test_the_token_is_required_except_for_health(keyed: ServerThread) -> None:
    url = keyed.url
    assert httpx.get(f"{url}/status").status_code == 401
    wrong = httpx.get(f"{url}/status", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{url}/status", headers={"Authorization": KEY}).status_code == 401
    ok = httpx.get(f"{url}/status", headers={"Authorization": f"Bearer {KEY}"})
    assert ok.status_code == 200
    assert httpx.get(f"{url}/health").status_code == 503  # open, and honest: loading
    metrics = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {KEY}"}).text
    assert 'qwen_assistant_requests_total{outcome="unauthorized"} 3' in metrics


def test_the_unix_socket_is_group_only(serve: Any, tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    thread, _ = serve(make_config(unix_socket=str(path)))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    assert thread.url == f"unix:{path}"
    transport = httpx.HTTPTransport(uds=str(path))
    with httpx.Client(transport=transport, base_url="http://localhost") as client:
        assert client.get("/health").json()["status"] == "loading"


# -- body abuse and the allow-list -----------------------------------------------------------


def test_a_body_over_the_limit_is_413(serve: Any) -> None:
    thread, _ = serve(make_config(max_body_bytes=2048))
    big = chat_body(user="x" * 4096)
    reply = httpx.post(f"{thread.url}/v1/chat/completions", json=big)
    assert reply.status_code == 413
    assert "api.max_body_bytes" in reply.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"messages": ['
        yield b" " * 4096
        yield b"]}"

    streamed = httpx.post(f"{thread.url}/v1/chat/completions", content=chunks())
    assert streamed.status_code == 413


def test_a_slow_client_times_out_with_408(loading: ServerThread) -> None:
    host = loading.url.removeprefix("http://")
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    reply = raw_request(loading.url, head.encode() + b'{"messages": ')  # and then nothing
    assert reply.startswith(b"HTTP/1.1 408")
    assert b"api.read_timeout_s" in reply


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b'{"messages": [', "not valid JSON"),
        (b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}', "not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b'{"messages": [{"role": "user", "content": "\\ud800"}]}', "UTF-8"),
        (b'{"messages": []}', "messages"),
        (b'{"messages": [{"role": "tool", "content": "x"}]}', "tool_call_id"),
        (b'{"messages": [{"role": "robot", "content": "x"}]}', "role"),
        (b'{"messages": [{"role": "user"}]}', "content"),
        (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": -1}', "max_tokens"),
        (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": 0}', "max_tokens"),
        (b'{"messages": [{"role": "user", "content": "x"}], "max_tokens": "9"}', "max_tokens"),
        (b'{"messages": [{"role": "user", "content": "x"}], "temperature": NaN}', "temperature"),
        (b'{"messages": [{"role": "user", "content": "x"}], "temperature": 1e9}', "temperature"),
        (b'{"messages": [{"role": "user", "content": "x"}], "top_p": 0}', "top_p"),
        (b'{"messages": [{"role": "user", "content": "x"}], "n": 2}', "n"),
        (b'{"messages": [{"role": "user", "content": "x"}], "seed": -1}', "seed"),
        (b'{"messages": [{"role": "user", "content": "x"}], "presence_penalty": 1}', "unknown"),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]}',
            "tools",
        ),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}}',
            "response_format",
        ),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "logprobs": true}',
            "unknown parameter",
        ),
        (
            b'{"messages": [{"role": "user", "content": "x"}], "stop": ["a","b","c","d","e"]}',
            "stop",
        ),
        (b'"just a string"', "body"),
    ],
)
def test_bad_bodies_are_400_in_openais_error_shape(
    loading: ServerThread, body: bytes, fragment: str
) -> None:
    reply = httpx.post(
        f"{loading.url}/v1/chat/completions",
        content=body,
        headers={"Content-Type": "application/json"},
    )
    assert reply.status_code == 400, reply.text
    error = reply.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert fragment in error["message"] or fragment == error["param"], error


def test_unknown_paths_and_methods_are_404_and_405(loading: ServerThread) -> None:
    assert httpx.get(f"{loading.url}/v2/nothing").status_code == 404
    assert httpx.get(f"{loading.url}/v1/chat/completions").status_code == 405


def test_status_and_metrics_render_the_same_snapshot(loading: ServerThread) -> None:
    status = httpx.get(f"{loading.url}/status").json()
    assert status["state"] == "loading"
    assert status["admission"]["configured_per_min"] == 600.0
    metrics = httpx.get(f"{loading.url}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    lines = metrics.text.splitlines()
    assert "qwen_assistant_up 0" in lines
    assert "qwen_assistant_configured_rate_per_minute 600" in lines
    assert "qwen_assistant_temperature_celsius NaN" in lines  # no sensor configured
    # the governor's levers: no thermal control here, so no budget and every lever at full
    assert "qwen_assistant_heat_budget_watts NaN" in lines
    assert "qwen_assistant_clock_cap_mhz NaN" in lines
    assert "qwen_assistant_pacing_ratio 1" in lines
    threads = status["thermal"]["max_threads"]
    assert f"qwen_assistant_decode_threads {threads}" in lines
    assert status["thermal"]["state"] == "off" and status["thermal"]["levers"] == ""
    assert any(
        line.startswith("qwen_assistant_time_to_first_token_seconds_bucket") for line in lines
    )
    for line in lines:  # every sample line is NAME{labels} VALUE
        if not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            assert name.startswith("qwen_assistant_")
            float(value)


def test_the_openapi_schema_documents_the_allow_list(loading: ServerThread) -> None:
    schema = httpx.get(f"{loading.url}/openapi.json").json()
    body = schema["components"]["schemas"]["ChatRequest"]
    assert body["additionalProperties"] is False
    assert "speak" in body["properties"]
    assert json.dumps(schema)  # serialisable for clients and schemathesis


def test_reload_applies_api_keys_live() -> None:
    from assistant.reload import LIVE_KEYS

    assert {"api_key", "allowed_hosts", "max_body_bytes"} <= LIVE_KEYS["api"]
    assert "port" not in LIVE_KEYS["api"]
    # the Guard reads the settings per request: swapping the config swaps the key
    config = make_config()
    state = make_state(config)
    state.config = dataclasses.replace(config, api=dataclasses.replace(config.api, api_key=KEY))
    app = create_app(state)
    assert app.settings.api_key == KEY


def test_the_status_line_is_one_line_from_the_same_snapshot() -> None:
    from assistant.status import status_line

    state = make_state(make_config())
    line = status_line(state.snapshot())
    assert line == "loading · no thermal sensor · fan 0% · no rate limit · queue 0"
    state.brain.load_error = "model.gguf: not a GGUF file"
    assert status_line(state.snapshot()).startswith("error · ")
    assert status_line(state.snapshot()).endswith("model.gguf: not a GGUF file")
