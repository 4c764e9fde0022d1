"""``qwen-assistant bench api --peer PATH``: qwen-assistant and llama-server side by side.

Both serve the same GGUF with the same threads, n_batch, context per sequence, flash
attention and KV cache type (``llm.flash_attn``, ``llm.kv_type``; llama-server: ``-np``
slots of ``-c`` / ``-np`` tokens each, its default non-unified KV cache), and both are
driven the same way: ``c`` clients (stdlib HTTP, one thread each) stream one greedy chat
completion each at the same moment, every client its own question, the same system message
and ``max_tokens``, greedy without a repeat penalty. Runs alternate between the two
systems; medians are reported. Per concurrency: the aggregate tokens/s (all completion
tokens over the wall time from the requests to the last token), the mean and p95 time to
first token, and for one stream the decode tokens/s of the answer (first piece to last;
the prompt is cached by a warm-up). Then, while ``c`` API answers stream, a voice answer
is started in-process at voice priority: its time to first token is compared with its
prompt's evaluation alone plus one batch step. Last, every sequence at once with a prompt
that fills its context; peak RSS is then each process's high-water mark (VmHWM; qwen-
assistant's is the whole bench process's).

llama-server is built by ``scripts/build-llama-server.sh`` from the sources vendored in
llama-cpp-python (the same llama.cpp); it is a benchmark tool, not a runtime dependency.
"""

from __future__ import annotations

import dataclasses
import math
import os
import statistics
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..config import Config
from ..llm.bench import table
from ..llm.conversation import stateless_prompt
from ..llm.engine import Engine
from ..thermal.actors import engine_threads
from .bench import house, serve
from .client import ApiClientError, StreamResult, streams_elsewhere
from .peer import Peer, PeerError, hwm_mb

__all__ = ["QUESTIONS", "bench_peer", "render_peer"]

#: each client's question: answers long enough to fill max_tokens
QUESTIONS = (
    "Tell me, in as much detail as you can, the story of how the first computers were built.",
    "Describe, step by step and in detail, how bread is made from wheat in the field.",
    "Explain in detail how a steam engine works and how it changed the world.",
    "Tell me a long story about a lighthouse keeper and the ships she saved.",
    "Describe in detail the life cycle of a star, from its birth to its end.",
    "Explain at length how the internet carries a message from one city to another.",
    "Tell me the long history of the bicycle, from its first designs to today.",
    "Describe in detail how honey bees live, work and make honey.",
)
VOICE_QUESTION = "What time is it in Tokyo when it is noon in Paris?"
#: repeated to fill each sequence's context for the memory figure
FILLER = (
    "The lighthouse stood on a rock at the edge of the bay, and every night its lamp turned "
    "slowly above the water while the keeper wrote the names of passing ships in a book. "
)


def _streams(
    url: str,
    system: str,
    c: int,
    tokens: int,
    params: dict[str, Any],
    *,
    questions: Sequence[str] = QUESTIONS,
) -> tuple[list[StreamResult], float]:
    """``c`` clients streaming at once, client i asking ``questions[i % len]``: their results
    and the wall time to the last token, the clients in a process of their own."""
    chats = [
        [
            {"role": "system", "content": system},
            {"role": "user", "content": questions[i % len(questions)]},
        ]
        for i in range(c)
    ]
    try:
        return streams_elsewhere(url, chats, tokens, params)
    except ApiClientError as exc:
        raise PeerError(str(exc)) from None


def _full_context(
    engine: Engine, urls: list[tuple[str, dict[str, Any]]], system: str, c: int, tokens: int
) -> int:
    """``c`` answers at once whose prompts fill llm.n_ctx, on each system (for peak RSS);
    returns the prompt's tokens."""
    fmt, n_ctx = engine.chat_format, engine.settings.n_ctx
    room = n_ctx - tokens - 64  # the chat markup and the system prompt fit in the margin
    room -= len(fmt.encode(system))
    text = FILLER * (room // max(1, len(fmt.encode(FILLER))))
    ask = text + "Say in one sentence what the keeper did."
    for url, extra in urls:
        results, _ = _streams(url, system, c, tokens, extra, questions=(ask,))
        if not all(r.usage for r in results):
            raise PeerError(f"{url}: a full-context answer did not finish")
    prompt = stateless_prompt(fmt, [("user", ask)], system, n_ctx, tokens)
    return len(prompt.tokens)


def _figures(results: list[StreamResult], wall: float) -> dict[str, float]:
    counts = [int(r.usage.get("completion_tokens", len(r.times))) for r in results]
    ttft = sorted(r.first_token_s for r in results)
    p95 = ttft[min(len(ttft) - 1, math.ceil(0.95 * len(ttft)) - 1)]
    one = results[0]
    span = one.times[-1] - one.times[0] if len(one.times) > 1 else 0.0
    return {
        "aggregate_tok_s": sum(counts) / wall if wall > 0 else 0.0,
        "mean_first_token_s": statistics.fmean(ttft),
        "p95_first_token_s": p95,
        "decode_tok_s": (counts[0] - 1) / span if span > 0 else 0.0,
        "tokens": float(sum(counts)),
    }


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: round(statistics.median(r[k] for r in runs), 4) for k in runs[0]}


def _voice_probe(engine: Engine, url: str, system: str, c: int, tokens: int) -> dict[str, Any]:
    """A voice answer started while ``c`` API answers stream: its first token against its
    prompt evaluated alone (no other answer) plus one batch step."""
    fmt, n_ctx = engine.chat_format, engine.settings.n_ctx
    prompt = stateless_prompt(fmt, [("user", VOICE_QUESTION)], system, n_ctx, 32).tokens
    scheduler = engine.scheduler
    if scheduler is None:
        raise PeerError("the model is not loaded")
    alone = []
    for _ in range(2):  # only the system prompt cached, as below
        scheduler.invalidate()
        with engine.generate(prompt, max_tokens=1, temperature=0.0) as g:
            for _ in g:
                pass
        alone.append(g.stats.first_token_s)
    prefill_s = min(alone)
    scheduler.invalidate()
    box: dict[str, Any] = {}

    def api() -> None:
        before, started = scheduler.stats["steps"], time.perf_counter()
        try:
            _streams(url, system, c, tokens, {})
        except PeerError as exc:
            box["error"] = exc
        box["steps"] = scheduler.stats["steps"] - before
        box["span"] = time.perf_counter() - started

    thread = threading.Thread(target=api)
    thread.start()
    deadline = time.monotonic() + 60  # the voice answer starts once every API one streams
    while time.monotonic() < deadline:
        made = scheduler.progress()
        if len(made) >= c and all(made):
            break
        time.sleep(0.01)
    asked = time.perf_counter()
    first = None
    with engine.generate(prompt, max_tokens=8, temperature=0.0, priority=0) as voice:
        for _ in voice:
            first = first or time.perf_counter() - asked
    thread.join()
    if "error" in box:
        raise box["error"]
    step_s = box["span"] / max(1, box["steps"])
    first_s = first if first is not None else math.inf
    return {
        "voice_first_token_s": round(first_s, 4),
        "voice_prompt_alone_s": round(prefill_s, 4),
        "batch_step_s": round(step_s, 4),
        "voice_within_bound": first_s <= prefill_s + step_s,
        "during_streams": c,
    }


def bench_peer(
    config: Config,
    peer: str,
    *,
    peer_args: list[str] | None = None,
    concurrency: tuple[int, ...] = (1, 2, 4),
    model: str | None = None,
    tokens: int = 128,
    runs: int = 3,
) -> dict[str, Any]:
    most = max(concurrency)
    # greedy, no repeat penalty on either: llama-server applies it to the prompt's tokens
    # too, llama-cpp-python only to the answer's, so with one the answers (and their
    # lengths) would differ; without, both give the same answer
    llm = dataclasses.replace(config.llm, parallel=most, repeat_penalty=1.0)
    config = dataclasses.replace(config, llm=llm)
    parts, engine = house(config, model)
    threads, batch_threads = engine_threads(llm)
    system = llm.system_prompt
    peer_args = [
        "-m", str(engine.model_path),
        "-t", str(threads), "-tb", str(batch_threads),
        "-c", str(llm.n_ctx * most), "-np", str(most),
        "-b", str(llm.n_batch), "-ub", str(llm.n_batch),
        "--seed", str(max(0, llm.seed)),
        "-fa", llm.flash_attn, "-ctk", llm.kv_type, "-ctv", llm.kv_type,  # as the engine's
        *(peer_args or []),
    ]  # fmt: skip
    # llama-server's sampling defaults differ from llm.*: send ours
    params = {"repeat_penalty": llm.repeat_penalty, "top_k": llm.top_k, "top_p": llm.top_p}
    ours = serve(parts, engine)
    other: Peer | None = None
    by_c: dict[str, Any] = {}
    try:
        other = Peer(peer, peer_args)
        for url, extra in ((ours.url, {}), (other.url, params)):  # warm-up: prompts cached
            _streams(url, system, most, 8, extra)
        for c in concurrency:
            mine, theirs = [], []
            for _ in range(runs):
                mine.append(_figures(*_streams(ours.url, system, c, tokens, {})))
                theirs.append(_figures(*_streams(other.url, system, c, tokens, params)))
            a, b = _median(mine), _median(theirs)
            by_c[str(c)] = {
                "qwen_assistant": a,
                "llama_server": b,
                "aggregate_ratio": round(a["aggregate_tok_s"] / b["aggregate_tok_s"], 4),
                "first_token_ratio": round(a["mean_first_token_s"] / b["mean_first_token_s"], 4),
                "decode_ratio": round(a["decode_tok_s"] / b["decode_tok_s"], 4)
                if b["decode_tok_s"]
                else 0.0,
                # each run's ratio (the spread): run k of ours against run k of theirs
                "aggregate_ratios": [
                    round(m["aggregate_tok_s"] / t["aggregate_tok_s"], 3)
                    for m, t in zip(mine, theirs, strict=True)
                ],
            }
        voice = _voice_probe(engine, ours.url, system, most, tokens)
        full = _full_context(engine, [(ours.url, {}), (other.url, params)], system, most, tokens)
        peer_rss = other.rss_mb()
    finally:
        if other is not None:
            other.close()
        ours.close()
        parts.close()
    return {
        "model_file": Path(engine.model_path).name,
        "tokens": tokens,
        "runs": runs,
        "threads": [threads, batch_threads],
        "parallel": most,
        "n_ctx_per_sequence": llm.n_ctx,
        "flash_attn": llm.flash_attn,
        "kv_type": llm.kv_type,
        "peer": str(Path(peer).resolve()),
        "peer_args": peer_args,
        "concurrency": by_c,
        "voice": voice,
        "peak_rss_mb": {"qwen_assistant": hwm_mb(), "llama_server": peer_rss},
        #: the last phase: every sequence at once with a prompt of this many tokens
        "full_context_prompt_tokens": full,
        "cpu_count": os.cpu_count(),
    }


def render_peer(r: dict[str, Any]) -> str:
    rows = [
        ("model", r["model_file"]),
        ("threads, parallel, n_ctx each", f"{r['threads']}, {r['parallel']}, "
         f"{r['n_ctx_per_sequence']}"),
        ("flash attention, KV cache (both)", f"{r['flash_attn']}, {r['kv_type']}"),
    ]  # fmt: skip
    for c, f in r["concurrency"].items():
        a, b = f["qwen_assistant"], f["llama_server"]
        rows += [
            (
                f"{c} stream(s): aggregate tok/s",
                f"{a['aggregate_tok_s']:.1f} vs {b['aggregate_tok_s']:.1f}  (ratio "
                f"{f['aggregate_ratio']:.3f}; runs {min(f['aggregate_ratios']):.3f}-"
                f"{max(f['aggregate_ratios']):.3f})",
            ),
            (
                f"{c} stream(s): first token mean/p95",
                f"{a['mean_first_token_s']:.2f}/{a['p95_first_token_s']:.2f} s vs "
                f"{b['mean_first_token_s']:.2f}/{b['p95_first_token_s']:.2f} s  "
                f"(ratio {f['first_token_ratio']:.2f})",
            ),
        ]
        if c == "1":
            rows.append(
                (
                    "1 stream: decode tok/s",
                    f"{a['decode_tok_s']:.1f} vs {b['decode_tok_s']:.1f}  "
                    f"(ratio {f['decode_ratio']:.3f})",
                )
            )
    v = r["voice"]
    rows.append(
        (
            f"voice during {v['during_streams']} streams",
            f"first token {v['voice_first_token_s']:.2f} s; prompt alone "
            f"{v['voice_prompt_alone_s']:.2f} s + one step {v['batch_step_s']:.3f} s"
            + ("" if v["voice_within_bound"] else "  (over)"),
        )
    )
    rss = r["peak_rss_mb"]
    rows.append(
        (
            f"peak RSS ({r['parallel']} x {r['full_context_prompt_tokens']} tokens)",
            f"{rss['qwen_assistant']:.0f} MB vs {rss['llama_server']:.0f} MB",
        )
    )
    return table(rows) + "\n(each row: qwen-assistant vs llama-server)"
