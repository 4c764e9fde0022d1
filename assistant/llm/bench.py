"""``qwen-assistant bench llm``: what the engine costs, measured against llama.cpp itself.

One process, one model, one run:

- decode: the engine's stream vs a bare ``Llama.generate`` loop on the same prompt, model
  and threads, greedy, alternating ``runs`` times; medians; ``decode_ratio`` = engine/bare.
- prefill: a kiosk-style conversation (a ~300-token system prompt with venue facts): the
  first question from an empty KV cache (cold) vs a follow-up that reuses the cached
  prefix; ``prefill_ratio`` = cached/cold time to first token.
- ``peak_rss_mb``: the process's peak resident memory at the end.
"""

from __future__ import annotations

import os
import resource
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..config import Config
from .conversation import Conversation
from .engine import Engine

__all__ = ["BENCH_SYSTEM_PROMPT", "bench_llm", "render", "speeds", "table"]

BENCH_SYSTEM_PROMPT = (
    "You are Pip, the friendly voice assistant of the Riverside Science Museum, running "
    "offline on a small robot at the entrance hall. Answer in one to three short spoken "
    "sentences. Do not use lists, markdown or emoji. Facts you may use: the museum opens at "
    "9 in the morning and closes at 6 in the evening, Tuesday to Sunday; it is closed on "
    "Mondays except public holidays. Tickets cost 12 euros for adults, 7 euros for children "
    "from 4 to 16, and nothing for younger children. The planetarium shows start every hour "
    "on the half hour on the second floor and last 35 minutes. The dinosaur hall is on the "
    "ground floor to the left of the entrance; the robotics workshop is on the first floor "
    "and needs a free booking at the front desk. The cafe is next to the gift shop and "
    "serves lunch from 11:30 to 2:30. Lockers are by the cloakroom and take a one euro coin "
    "that is returned. Lifts are behind the main staircase; every floor is step-free. Lost "
    "children are brought to the front desk, where staff wear green shirts. Photography is "
    "allowed everywhere except in the planetarium. If you do not know something, say so and "
    "suggest asking a member of staff in a green shirt."
)
DECODE_PROMPT = (
    "Tell me, in as much detail as you can, the story of how the first computers were built."
)
QUESTIONS = ("When does the planetarium show start?", "How much is a ticket for my daughter?")


@contextmanager
def loaded_engine(config: Config, model: str | Path | None) -> Iterator[Engine]:
    """The configured (or named) model, loaded for a benchmark and closed after it."""
    engine = Engine.from_config(config, model)
    engine.load()
    try:
        yield engine
    finally:
        engine.close()


def decode_prompt(engine: Engine) -> list[int]:
    """The benchmarks' decode prompt: the museum system prompt and a question that asks for a
    long answer."""
    fmt = engine.chat_format
    return [
        *fmt.message("system", BENCH_SYSTEM_PROMPT),
        *fmt.message("user", DECODE_PROMPT),
        *fmt.header("assistant"),
    ]


def _bare_decode(engine: Engine, tokens: list[int], n: int) -> tuple[float, int]:
    """A bare llama-cpp-python loop: Llama.generate, greedy, no detokenizing, no checks (on
    the decode thread, as every decode: Engine.alone)."""
    return engine.alone(lambda llama: _bare_loop(engine, llama, tokens, n))


def _bare_loop(engine: Engine, llama: Any, tokens: list[int], n: int) -> tuple[float, int]:
    s = engine.sampling
    llama.reset()
    stop = engine.stop_ids
    first = last = 0.0
    count = 0
    for token in llama.generate(
        tokens, top_k=s.top_k, top_p=s.top_p, temp=0.0, repeat_penalty=s.repeat_penalty, reset=True
    ):
        last = time.perf_counter()
        if count == 0:
            first = last
        if token in stop:
            break
        count += 1
        if count >= n:
            break
    return ((count - 1) / (last - first) if count > 1 and last > first else 0.0), count


def _engine_decode(engine: Engine, tokens: list[int], n: int) -> tuple[float, int]:
    engine.llama.reset()
    generation = engine.generate(tokens, max_tokens=n, temperature=0.0, repetition_abort_tokens=0)
    for _ in generation:
        pass
    return generation.stats.decode_tok_s, generation.stats.completion_tokens


def _prefill(engine: Engine) -> tuple[float, float, int, int]:
    """(cold s, cached s, cold prompt tokens, tokens the follow-up had to prefill)."""
    conversation = Conversation(engine.chat_format, BENCH_SYSTEM_PROMPT, engine.settings.n_ctx)
    engine.llama.reset()
    first = conversation.build(QUESTIONS[0], 32)
    g1 = engine.generate(first.tokens, max_tokens=32, temperature=0.0)
    for _ in g1:
        pass
    conversation.add(first, g1.text, g1.token_ids)
    second = conversation.build(QUESTIONS[1], 32)
    g2 = engine.generate(second.tokens, max_tokens=8, temperature=0.0)
    for _ in g2:
        pass
    return (
        g1.stats.first_token_s,
        g2.stats.first_token_s,
        g1.stats.prompt_tokens,
        g2.stats.prefill_tokens,
    )


def speeds(
    engine: Engine,
    prompt: list[int],
    tokens: int,
    runs: int,
    *,
    decode_threads: tuple[int, int],
    prefill_threads: tuple[int, int],
) -> tuple[float, float]:
    """Medians over ``runs``: decode tokens/s of ``tokens`` greedy tokens with
    ``decode_threads`` (threads, batch threads), and prompt tokens/s of evaluating
    ``prompt`` from an empty KV cache with ``prefill_threads``."""
    decode, prefill = [], []
    for _ in range(runs):
        engine.set_threads(*decode_threads)
        decode.append(_engine_decode(engine, prompt, tokens)[0])
        engine.set_threads(*prefill_threads)
        prefill.append(len(prompt) / engine.alone(lambda llama: _evaluate(llama, prompt)))
    return round(statistics.median(decode), 2), round(statistics.median(prefill), 1)


def _evaluate(llama: Any, prompt: list[int]) -> float:
    """Seconds to evaluate ``prompt`` from an empty KV cache."""
    llama.reset()
    begun = time.perf_counter()
    llama.eval(prompt)
    return time.perf_counter() - begun


def _hash_time(path: Path) -> float:
    from ..models.store import sha256_file

    begun = time.perf_counter()
    sha256_file(path)
    return time.perf_counter() - begun


def bench_llm(
    config: Config, *, model: str | Path | None = None, tokens: int = 128, runs: int = 3
) -> dict[str, Any]:
    with loaded_engine(config, model) as engine:
        prompt = decode_prompt(engine)
        tokens = min(tokens, engine.settings.max_tokens)
        bare, ours, counts = [], [], []
        for _ in range(runs):
            rate, _n = _bare_decode(engine, prompt, tokens)
            bare.append(rate)
            rate, n = _engine_decode(engine, prompt, tokens)
            ours.append(rate)
            counts.append(n)
        prefills = [_prefill(engine) for _ in range(runs)]
        cold = statistics.median(p[0] for p in prefills)
        cached = statistics.median(p[1] for p in prefills)
        cold_tokens, cached_new = prefills[0][2], prefills[0][3]
        decode, bare_decode = statistics.median(ours), statistics.median(bare)
        info = engine.info
        return {
            "model": info.name if info else str(engine.model_path),
            "model_file": str(engine.model_path),
            "backend": engine.backend.name,
            "device": engine.backend.device,
            "gpu_layers": engine.backend.gpu_layers,
            "load_s": round(engine.load_s, 3),
            # the load-time checks (docs/models.md): the canary is part of load_s; the full
            # hash runs only when the file changed since it was last verified
            "canary_s": round(engine.canary_s, 3),
            "sha256_full_s": round(_hash_time(engine.model_path), 3),
            "prefill_tok_s": round(cold_tokens / cold, 1) if cold else 0.0,
            "decode_tok_s": round(decode, 2),
            "bare_decode_tok_s": round(bare_decode, 2),
            "decode_ratio": round(decode / bare_decode, 3) if bare_decode else 0.0,
            "decode_tokens": min(counts),
            "cold_prefill_s": round(cold, 4),
            "cold_prompt_tokens": cold_tokens,
            "cached_prefill_s": round(cached, 4),
            "cached_prefill_tokens": cached_new,
            "prefill_ratio": round(cached / cold, 3) if cold else 0.0,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "threads": engine.threads,
            "cpu_count": os.cpu_count() or 0,
            "n_ctx": engine.settings.n_ctx,
            "runs": runs,
        }


def same_text_when_threads_change(engine: Engine, tokens: list[int], n: int) -> tuple[str, str]:
    """A greedy answer at full threads, and the same answer with the threads changed after
    its first quarter (the governor's lever mid-answer): (before, after)."""
    from ..thermal.actors import Intensity

    full, batch = engine.threads, int(engine.llama.n_threads_batch)
    saved = engine.intensity
    engine.intensity = intensity = Intensity(full, batch)
    try:
        engine.llama.reset()
        plain = engine.generate(tokens, max_tokens=n, temperature=0.0, repetition_abort_tokens=0)
        before = "".join(plain)
        engine.llama.reset()
        changed = engine.generate(tokens, max_tokens=n, temperature=0.0, repetition_abort_tokens=0)
        pieces = []
        for piece in changed:
            pieces.append(piece)
            if len(changed.token_ids) == max(1, n // 4):
                intensity.set(max(1, full // 2), max(1, batch // 2), 1.0)
        return before, "".join(pieces)
    finally:
        engine.intensity = saved
        engine.set_threads(full, batch)


def bench_threads(
    config: Config, *, model: str | Path | None = None, tokens: int = 64, runs: int = 3
) -> dict[str, Any]:
    """Decode and prompt tokens/s for 1..N threads, as ratios to N (the thread lever)."""
    with loaded_engine(config, model) as engine:
        prompt = decode_prompt(engine)
        tokens = min(tokens, engine.settings.max_tokens)
        full, batch = engine.threads, int(engine.llama.n_threads_batch)
        rows = []
        for t in range(1, max(full, batch) + 1):
            decode, prefill = speeds(
                engine, prompt, tokens, runs,
                decode_threads=(min(t, full), batch), prefill_threads=(full, min(t, batch)),
            )  # fmt: skip
            rows.append({"threads": t, "decode_tok_s": decode, "prefill_tok_s": prefill})
        engine.set_threads(full, batch)
        top_d = next(r["decode_tok_s"] for r in rows if r["threads"] == full)
        top_p = next(r["prefill_tok_s"] for r in rows if r["threads"] == batch)
        for r in rows:
            r["decode_ratio"] = round(r["decode_tok_s"] / top_d, 3) if top_d else 0.0
            r["prefill_ratio"] = round(r["prefill_tok_s"] / top_p, 3) if top_p else 0.0
        before, after = same_text_when_threads_change(engine, prompt, tokens)
        info = engine.info
        return {
            "model": info.name if info else str(engine.model_path),
            "cpu_count": os.cpu_count() or 0,
            "device": engine.backend.device,
            "threads": full,
            "batch_threads": batch,
            "prompt_tokens": len(prompt),
            "decode_tokens": tokens,
            "runs": runs,
            "rows": rows,
            "midway_same_text": before == after,
            # with flash attention llama.cpp splits a step's attention across the threads,
            # so its sums (and a near tie) change with them; without, they may not
            "midway_must_match": engine.settings.flash_attn == "off",
            "midway_threads": f"{full}->{max(1, full // 2)} after {max(1, tokens // 4)} tokens",
        }


def render_threads(r: dict[str, Any]) -> str:
    lines = [
        f"{r['model']} · {r['device']} · {r['cpu_count']} CPUs · {r['prompt_tokens']} prompt "
        f"tokens · {r['decode_tokens']} decoded · medians of {r['runs']}",
        "",
        f"{'threads':>8}{'decode tok/s':>14}{'ratio':>7}{'prompt tok/s':>14}{'ratio':>7}",
    ]
    for row in r["rows"]:
        lines.append(
            f"{row['threads']:>8}{row['decode_tok_s']:>14.2f}{row['decode_ratio']:>7.3f}"
            f"{row['prefill_tok_s']:>14.1f}{row['prefill_ratio']:>7.3f}"
        )
    same = "the same text" if r["midway_same_text"] else "A DIFFERENT TEXT"
    if not r["midway_must_match"]:
        same += " (llm.flash_attn: attention is split across the threads, its sums with them)"
    lines += ["", f"greedy answer with threads {r['midway_threads']}: {same}"]
    return "\n".join(lines)


def table(rows: list[tuple[str, str]]) -> str:
    """Two aligned columns: what, figure."""
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def render(r: dict[str, Any]) -> str:
    rows = [
        ("model", f"{r['model']} ({r['model_file']})"),
        ("backend", f"{r['backend']}: {r['device'] or '?'}, {r['gpu_layers']} layers offloaded"),
        (
            "load",
            f"{r['load_s']:.2f} s (canary {r['canary_s']:.2f} s of it, with the system "
            "prompt's prefill that start-up needs anyway)",
        ),
        ("sha256 of the file", f"{r['sha256_full_s']:.2f} s (only when it changed)"),
        ("prefill", f"{r['prefill_tok_s']:.1f} tok/s ({r['cold_prompt_tokens']} tokens cold)"),
        ("decode (engine)", f"{r['decode_tok_s']:.2f} tok/s over {r['decode_tokens']} tokens"),
        ("decode (bare loop)", f"{r['bare_decode_tok_s']:.2f} tok/s"),
        ("decode ratio", f"{r['decode_ratio']:.3f}  (target >= 0.97)"),
        ("cold prefill", f"{r['cold_prefill_s'] * 1000:.0f} ms"),
        (
            "cached-prefix prefill",
            f"{r['cached_prefill_s'] * 1000:.0f} ms ({r['cached_prefill_tokens']} new tokens)",
        ),
        ("prefill ratio", f"{r['prefill_ratio']:.3f}  (target <= 0.25)"),
        ("peak RSS", f"{r['peak_rss_mb']:.0f} MB  (target <= 700)"),
        ("threads / CPUs", f"{r['threads']} / {r['cpu_count']}"),
    ]
    return table(rows)
