"""`qwen-assistant run` as a process: serves the official openai client, reloads on SIGHUP,
stops on SIGTERM; `ask --server` and `bench api` against it."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.test_cli import run

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Process:
    """The service with its log lines arriving on a queue (no sleeping, no polling)."""

    def __init__(
        self,
        config: Path,
        runtime: Path,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
    ) -> None:
        env = os.environ | {"RUNTIME_DIRECTORY": str(runtime)} | (env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "assistant", "run", "--config", str(config), *(args or [])],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def __enter__(self) -> Process:
        return self

    def __exit__(self, *_: object) -> None:
        """Whatever the test did, no service outlives it."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.log.append(line)
            self.lines.put(line)
        self.lines.put("")

    def wait_for(self, text: str, timeout: float = 60) -> str:
        while True:
            line = self.lines.get(timeout=timeout)
            if not line:
                raise AssertionError("service exited:\n" + "".join(self.log))
            if text in line:
                return line


def write_config(path: Path, model: Path, port: int, rate: float) -> None:
    path.write_text(
        f'[llm]\nmodel = "{model}"\nmax_tokens = 32\n'
        f'[thermal]\nsensor_path = ""\nrate_per_min = {rate}\nburst = 20\n'
        f"[api]\nport = {port}\n[voice]\nenabled = false\n"
    )


@pytest.fixture
def service(tmp_path: Path, smollm_path: Path) -> Iterator[tuple[Process, str, Path]]:
    port = free_port()
    config = tmp_path / "config.toml"
    write_config(config, smollm_path, port, rate=120.0)
    proc = Process(config, tmp_path)
    yield proc, f"http://127.0.0.1:{port}", config
    if proc.proc.poll() is None:
        proc.proc.kill()
        proc.proc.wait()


def test_the_service_serves_reloads_and_stops(
    service: tuple[Process, str, Path], tmp_path: Path, smollm_path: Path
) -> None:
    proc, url, config = service
    proc.wait_for("ready:")
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    assert (tmp_path / "qwen-assistant.pid").read_text().strip() == str(proc.proc.pid)

    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused")
    stream = client.chat.completions.create(
        model="qwen-assistant",
        messages=[{"role": "user", "content": "What is the capital of France?"}],
        temperature=0,
        stream=True,
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "Paris" in text
    proc.wait_for("→ stop, ")  # turn 1's log line: "turn 1 api: '…' → stop, …"

    answer = run("ask", "--server", url, "--temperature", "0", "What is the capital of France?")
    assert answer.returncode == 0, answer.stderr
    assert "Paris" in answer.stdout

    write_config(config, smollm_path, int(url.rsplit(":", 1)[1]), rate=30.0)
    os.kill(proc.proc.pid, signal.SIGHUP)
    assert "rate_per_min 120.0 → 30.0" in proc.wait_for("reloaded")
    status = httpx.get(f"{url}/status").json()
    assert status["admission"]["configured_per_min"] == 30.0

    proc.proc.send_signal(signal.SIGTERM)
    assert proc.proc.wait(30) == 0
    assert any("stopped" in line for line in proc.log)
    assert not (tmp_path / "qwen-assistant.pid").exists()


def test_a_broken_model_stops_the_service_with_exit_78(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"not a gguf file at all")
    config = tmp_path / "config.toml"
    write_config(config, bad, free_port(), rate=6.0)
    proc = Process(config, tmp_path)
    assert proc.proc.wait(60) == 78
    errors = [line for line in proc.log if "broken.gguf" in line]
    assert errors and "Traceback" not in "".join(proc.log)


def test_ask_server_unreachable_is_one_line() -> None:
    result = run("ask", "--server", f"http://127.0.0.1:{free_port()}", "hello")
    assert result.returncode == 69
    assert result.stderr.count("\n") == 1
    assert "cannot reach" in result.stderr


def test_bench_api_reports_the_ratio(smollm_path: Path) -> None:
    result = run(
        "bench", "api", "--json", "--model", str(smollm_path), "--tokens", "16", "--runs", "1"
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    for key in ("api_decode_tok_s", "engine_decode_tok_s", "api_ratio", "api_first_token_s"):
        assert figures[key] > 0, figures
