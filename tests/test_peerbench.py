"""`qwen-assistant bench api --peer`: the figures from stream results (pure), a bad peer is
one line, and the documented command run as written against the llama-server that
scripts/build-llama-server.sh builds (slow)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.api.client import StreamResult
from assistant.api.peer import Peer, PeerError
from assistant.api.peerbench import _figures, _streams
from assistant.config import LLM

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "scripts" / "build-llama-server.sh"
BASH = shutil.which("bash") or "/bin/bash"


def result(first: float, times: list[float], tokens: int) -> StreamResult:
    return StreamResult(first_token_s=first, times=times, usage={"completion_tokens": tokens})


def test_figures_are_aggregate_speed_first_token_mean_and_p95_and_one_streams_decode() -> None:
    runs = [
        result(0.2, [0.2, 0.3, 1.2], 11),
        result(0.4, [0.4, 1.4], 9),
        result(0.6, [0.6, 1.6], 10),
        result(1.0, [1.0, 2.0], 10),
    ]
    f = _figures(runs, wall=2.0)
    assert f["aggregate_tok_s"] == pytest.approx(40 / 2.0)
    assert f["mean_first_token_s"] == pytest.approx(0.55)
    assert f["p95_first_token_s"] == pytest.approx(1.0)  # the slowest of four
    assert f["decode_tok_s"] == pytest.approx(10 / 1.0)  # stream 0: 10 tokens after its first


def test_the_clients_run_in_a_process_of_their_own_and_a_failure_is_one_line() -> None:
    # (in the bench's process they would take the GIL and a core from the engine)
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(PeerError) as error:
        _streams(url, "You are terse.", 2, 8, {})
    assert str(error.value).startswith(f"{url}: a stream failed: cannot reach {url}")


def test_a_peer_that_is_not_a_program_is_one_line_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(PeerError) as error:
        Peer(str(tmp_path / "llama-server"), [])
    assert str(error.value) == (
        f"--peer {tmp_path / 'llama-server'}: not an executable file; build one with "
        "scripts/build-llama-server.sh (it prints the path)"
    )


def test_a_peer_that_dies_at_start_says_its_last_words(tmp_path: Path) -> None:
    fake = tmp_path / "llama-server"
    fake.write_text("#!/bin/sh\necho 'error: failed to load model' >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(PeerError) as error:
        Peer(str(fake), ["-m", "x.gguf"])
    assert "did not start: error: failed to load model" in str(error.value)


def test_bad_concurrency_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "assistant", "bench", "api", "--peer", "x", "--concurrency", "0,2"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 64
    assert "stream counts must be between 1 and 16, got 0,2" in done.stderr


def _built() -> str | None:
    """The cached llama-server's path, if scripts/build-llama-server.sh built it."""
    env = os.environ | {"LLAMA_SERVER_CACHED_ONLY": "1"}
    done = subprocess.run([BASH, str(BUILD)], capture_output=True, text=True, env=env, check=False)
    return done.stdout.strip().splitlines()[-1] if done.returncode == 0 else None


@pytest.mark.slow
def test_bench_api_peer_runs_as_documented(tmp_path: Path) -> None:
    """docs/performance.md's command, with the default config (no model named) and fewer
    runs; both systems answer and every figure is there."""
    if _built() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no llama-server: scripts/test.sh builds it (build-llama-server.sh)")
        pytest.skip("llama-server is not built: bash scripts/build-llama-server.sh")
    command = (
        'qwen-assistant bench api --peer "$(bash scripts/build-llama-server.sh | tail -1)" '
        "--concurrency 1,2 --runs 1 --tokens 16 --json"
    )
    env = os.environ | {"PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}"}
    done = subprocess.run(
        [BASH, "-c", command], cwd=ROOT, capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    r = json.loads(done.stdout)
    assert set(r["concurrency"]) == {"1", "2"}
    for figures in r["concurrency"].values():
        for system in ("qwen_assistant", "llama_server"):
            assert figures[system]["aggregate_tok_s"] > 0
            assert figures[system]["mean_first_token_s"] > 0
        assert figures["aggregate_ratio"] > 0
    assert r["voice"]["during_streams"] == 2 and r["voice"]["voice_first_token_s"] > 0
    assert r["peak_rss_mb"]["llama_server"] > 100 and r["peak_rss_mb"]["qwen_assistant"] > 100
    assert "-np" in r["peer_args"] and r["parallel"] == 2
    # the peer runs the engine's attention and KV cache (the defaults here)
    settings = (r["flash_attn"], r["kv_type"])
    assert settings == (LLM().flash_attn, LLM().kv_type)
    args = r["peer_args"]
    assert (args[args.index("-fa") + 1], args[args.index("-ctk") + 1]) == settings
