"""Operator truth with the real model and the real process: a model with zeroed weights is
refused, a SIGTERM mid-stream is an error the openai client sees and a clean stop in the
log, Ctrl-C while loading is prompt, and the same failure exits with the same status here
and through --server."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import openai
import pytest

from tests.test_cli import run
from tests.test_service import Process, free_port

pytestmark = pytest.mark.slow


def zeroed(real: Path, dest: Path, size: int) -> Path:
    """The first 8 MiB of a real GGUF (header, tensor table, some weights) and a sparse,
    all-zero tail: llama.cpp loads it; it answers '!!!!!!!!'."""
    with real.open("rb") as src, dest.open("wb") as out:
        out.write(src.read(8 << 20))
    os.truncate(dest, size)
    return dest


def config(tmp_path: Path, model: Path, *, port: int = 0, extra: str = "") -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[paths]\nmodels_dir = "{tmp_path / "models"}"\n'
        f'[llm]\nmodel = "{model}"\nmax_tokens = 200\n'
        f'[thermal]\nsensor_path = ""\nrate_per_min = 120\nburst = 20\n'
        f"[api]\nport = {port or free_port()}\n[voice]\nenabled = false\n{extra}"
    )
    return path


def test_a_model_with_zeroed_weights_is_refused_everywhere(
    smollm_path: Path, tmp_path: Path
) -> None:
    # the smallest model: three processes each hash the file it has never seen
    bad = zeroed(smollm_path, tmp_path / "zeroed.gguf", smollm_path.stat().st_size)
    cfg = config(tmp_path, bad)
    with Process(cfg, tmp_path / "run") as proc:
        assert proc.proc.wait(120) == 78
    log = "".join(proc.log)
    assert f"{bad}: the load-time canary failed: flat logits" in log, log
    assert "ready:" not in log and "Traceback" not in log
    assert f"{bad} is not in the manifest; sha256 " in log  # hashed once, the digest logged

    doctor = run("doctor", "--config", str(cfg))
    assert doctor.returncode == 1
    assert any(
        line.startswith("FAIL  model") and "canary failed" in line
        for line in doctor.stdout.splitlines()
    ), doctor.stdout

    ask = run("ask", "--config", str(cfg), "What is 2+2?")
    assert ask.returncode == 78 and ask.stdout == ""
    assert ask.stderr.count("\n") == 1 and "canary failed" in ask.stderr


def test_sigterm_mid_stream_is_an_error_for_the_client_and_a_clean_stop(
    smollm_path: Path, tmp_path: Path
) -> None:
    port = free_port()
    cfg = config(tmp_path, smollm_path, port=port, extra="[service]\nstop_grace_s = 0.0\n")
    with Process(cfg, tmp_path / "run") as proc:
        proc.wait_for("ready:")
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused")
        stream = client.chat.completions.create(
            model="qwen-assistant",
            messages=[{"role": "user", "content": "Count from 1 to 100, one number a line."}],
            temperature=0,
            max_tokens=200,
            stream=True,
        )
        received, sent = "", False
        with pytest.raises(openai.APIError, match=r"the answer was cut after .* the service is"):
            for chunk in stream:
                if chunk.choices:
                    assert chunk.choices[0].finish_reason is None  # never a fake "length"
                    received += chunk.choices[0].delta.content or ""
                    if len(received) > 4 and not sent:
                        proc.proc.send_signal(signal.SIGTERM)  # once: a second exits at once
                        sent = True
        assert proc.proc.wait(30) == 0
    log = "".join(proc.log)
    assert "turn 1 api: 'Count from 1 to 100, one number a line.' → shutdown" in log, log
    assert "Traceback" not in log and "Bad file descriptor" not in log
    assert "stopped" in log


def test_ctrl_c_while_loading_stops_at_once(qwen_path: Path, tmp_path: Path) -> None:
    # an 8 GB (sparse) file the manifest does not know takes long to hash before loading
    slow = zeroed(qwen_path, tmp_path / "big.gguf", 8 << 30)
    cfg = config(tmp_path, slow, extra='[service]\nlog_level = "info"\n')
    with Process(cfg, tmp_path / "run") as proc:
        proc.wait_for("hashing")
        begun = time.monotonic()
        proc.proc.send_signal(signal.SIGINT)
        assert proc.proc.wait(30) == 0
        took = time.monotonic() - begun
    log = "".join(proc.log)
    assert "stopped while loading (load abandoned)" in log, log
    assert "Traceback" not in log
    assert took < 5, f"{took:.1f} s (the hash alone takes far longer)"
    assert not (tmp_path / "run" / "qwen-assistant.pid").exists()


def test_the_same_failure_exits_alike_here_and_through_the_server(
    smollm_path: Path, tmp_path: Path
) -> None:
    port = free_port()
    cfg = config(tmp_path, smollm_path, port=port)
    cfg.write_text(cfg.read_text().replace("max_tokens = 200", "max_tokens = 32\nn_ctx = 512"))
    long = "word " * 800
    here = run("ask", "--config", str(cfg), long)
    with Process(cfg, tmp_path / "run") as proc:
        proc.wait_for("ready:")
        there = run("ask", "--server", f"http://127.0.0.1:{port}", long)
        piped = run(
            "ask", "--server", f"http://127.0.0.1:{port}", "--temperature", "0", "-",
            stdin="What is the capital of France?\n",
        )  # fmt: skip
    assert here.returncode == there.returncode == 65, (here.stderr, there.stderr)
    assert "llm.n_ctx" in here.stderr and "llm.n_ctx" in there.stderr
    assert piped.returncode == 0 and "Paris" in piped.stdout, piped.stderr
