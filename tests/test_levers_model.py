"""The governor's levers on the real engine (llama-cpp-python, the small real models):
threads changed in the middle of a greedy answer change nothing in its text, pacing idles
the decode loop, and the clock cap follows the engine's phase."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.config import LLM
from assistant.llm.bench import decode_prompt
from assistant.llm.engine import Engine
from assistant.thermal.actors import Intensity
from tests.conftest import greedy

pytestmark = pytest.mark.slow


@pytest.fixture
def levers(request: pytest.FixtureRequest) -> Iterator[tuple[Engine, Intensity]]:
    """The engine of ``request.param`` with an Intensity of its own, given back after."""
    engine: Engine = request.getfixturevalue(request.param)
    saved = engine.intensity
    threads, batch = engine.threads, int(engine.llama.n_threads_batch)
    engine.intensity = intensity = Intensity(threads, batch)
    yield engine, intensity
    engine.intensity = saved
    engine.set_threads(threads, batch)


def greedy_answer(engine: Engine, n: int, change: Intensity | None = None) -> tuple[str, int]:
    """A greedy answer of ``n`` tokens; with ``change``, threads halved after 8 tokens."""
    engine.llama.reset()
    generation = engine.generate(
        decode_prompt(engine), max_tokens=n, temperature=0.0, repetition_abort_tokens=0
    )
    pieces = []
    threads_seen = engine.threads
    for piece in generation:
        pieces.append(piece)
        if change is not None and len(generation.token_ids) == 8:
            change.set(1, 1, 1.0)
        threads_seen = min(threads_seen, engine.threads)
    return "".join(pieces), threads_seen


def test_changing_threads_mid_answer_leaves_a_greedy_answer_unchanged(qwen_path: Path) -> None:
    """Without flash attention (llm.flash_attn = "off"): each attention sum is one
    thread's, whatever the count. With it, llama.cpp splits a step's attention across the
    threads, so the sums move with them (docs/performance.md)."""
    engine = Engine(greedy(flash_attn="off"), qwen_path)
    engine.load()
    try:
        engine.intensity = intensity = Intensity(engine.threads, engine.threads)
        before, full = greedy_answer(engine, 48)
        after, fewest = greedy_answer(engine, 48, change=intensity)
    finally:
        engine.close()
    assert fewest == 1 < full or full == 1  # the engine took the change up between tokens
    assert after == before
    assert len(before.split()) > 10


@pytest.mark.parametrize("levers", ["smollm"], indirect=True)
def test_pacing_idles_the_decode_loop_as_long_as_it_works(
    levers: tuple[Engine, Intensity],
) -> None:
    engine, intensity = levers
    intensity.set(intensity.max_threads, intensity.max_batch_threads, 0.5)
    engine.llama.reset()
    generation = engine.generate(
        decode_prompt(engine), max_tokens=24, temperature=0.0, repetition_abort_tokens=0
    )
    text = "".join(generation)
    stats = generation.stats
    working = stats.total_s - stats.first_token_s - stats.paced_s
    assert text and stats.paced_s > 0
    assert 0.5 < stats.paced_s / working < 2.0  # pacing 0.5: idle about as long as it works


@pytest.mark.parametrize("levers", ["smollm"], indirect=True)
def test_the_clock_cap_follows_the_engines_phase(levers: tuple[Engine, Intensity]) -> None:
    engine, intensity = levers
    caps: list[int] = []
    intensity.on_clock = caps.append
    intensity.set(intensity.max_threads, intensity.max_batch_threads, 1.0, 2000, 1500)
    caps.clear()
    engine.llama.reset()
    generation = engine.generate(decode_prompt(engine), max_tokens=4, temperature=0.0)
    list(generation)
    assert caps == [1500, 2000, 2000]  # prompt, then decode, then idle at the decode cap


def test_bench_threads_runs_as_documented_with_the_default_config() -> None:
    """`qwen-assistant bench threads` (docs/performance.md), no model named: the model
    `models fetch` installed, every thread count, the mid-answer check."""
    import json

    from tests.test_cli import run

    result = run("bench", "threads", "--json", "--tokens", "16", "--runs", "1", timeout=600)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [r["threads"] for r in data["rows"]] == list(range(1, len(data["rows"]) + 1))
    full = next(r for r in data["rows"] if r["threads"] == data["threads"])
    assert full["decode_ratio"] == 1.0  # ratios are to the engine's threads at full
    assert all(r["decode_tok_s"] > 0 and r["prefill_tok_s"] > 0 for r in data["rows"])
    assert data["midway_must_match"] is (LLM().flash_attn == "off")
    assert data["midway_same_text"] is True or not data["midway_must_match"]
