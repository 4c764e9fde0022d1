"""``qwen-assistant bench api``: what HTTP streaming costs over calling the engine directly.

One model: the API is served on a free loopback port (uvicorn on its own thread) and the
same greedy prompt is streamed alternately through HTTP (the stdlib client in a process
of its own, as a kiosk's would be) and straight from :meth:`Engine.generate`. Decode
speed is timed the same way on both paths — from the first text piece to the last, as the
reader sees it — and ``api_ratio`` = HTTP / in-process. One unmeasured HTTP request
first puts the prompt in the KV cache, so every measured run starts from the same state.
Time to first token over HTTP includes the request, admission and the (cached) prompt
prefill.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import statistics
import time
from pathlib import Path
from typing import Any

from ..config import Config
from ..llm.bench import DECODE_PROMPT, table
from ..llm.conversation import stateless_prompt
from ..llm.engine import Engine
from ..parts import Parts, unpaced
from .app import ApiState, create_app
from .client import streams_elsewhere
from .server import ServerThread

__all__ = ["bench_api", "house", "render", "serve"]


def _decode_rate(times: list[float], tokens: int) -> float:
    """tokens/s after the first piece: (tokens - 1) over first → last piece."""
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    return (tokens - 1) / span if span > 0 and tokens > 1 else 0.0


def house(config: Config, model: str | None) -> tuple[Parts, Engine]:
    """The house with its model loaded, admission without limits and no thermal control
    (this measures HTTP), serving on a free loopback port."""
    thermal = dataclasses.replace(config.thermal, sensor_path="")
    api = dataclasses.replace(config.api, host="127.0.0.1", port=0, unix_socket="")
    parts = Parts(unpaced(dataclasses.replace(config, thermal=thermal, api=api)), model=model)
    asyncio.run(parts.load())
    if parts.engine is None:
        raise RuntimeError("the model did not load")
    return parts, parts.engine


def serve(parts: Parts, engine: Engine) -> ServerThread:
    config = parts.config
    state = ApiState(
        config, parts.brain, parts.governor, engine.model_path.stem, runner=parts.turns
    )
    return ServerThread(create_app(state), config.api)


def bench_api(
    config: Config, *, model: str | None = None, tokens: int = 128, runs: int = 3
) -> dict[str, Any]:
    parts, engine = house(config, model)
    messages = [{"role": "user", "content": DECODE_PROMPT}]
    prompt = stateless_prompt(
        engine.chat_format,
        [(m["role"], m["content"]) for m in messages],
        config.llm.system_prompt,
        config.llm.n_ctx,
        tokens,
    ).tokens
    background = serve(parts, engine)
    http_rates, local_rates, http_ttft, local_ttft, counts = [], [], [], [], []
    try:
        # warm-up: both paths then start from the same cached prompt
        streams_elsewhere(background.url, [messages], tokens, {})
        for _ in range(runs):
            (result,), _ = streams_elsewhere(background.url, [messages], tokens, {})
            n = int(result.usage.get("completion_tokens", len(result.times)))
            http_rates.append(_decode_rate(result.times, n))
            http_ttft.append(result.first_token_s)

            start = time.perf_counter()
            times: list[float] = []
            with engine.generate(prompt, max_tokens=tokens, temperature=0.0) as generation:
                for _piece in generation:
                    times.append(time.perf_counter() - start)
            local_rates.append(_decode_rate(times, generation.stats.completion_tokens))
            local_ttft.append(times[0] if times else 0.0)
            counts.append((n, generation.stats.completion_tokens))
    finally:
        background.close()
        parts.close()
    api_tok_s = statistics.median(http_rates)
    local_tok_s = statistics.median(local_rates)
    return {
        "model": engine.info.name if engine.info else "",
        "model_file": Path(engine.model_path).name,
        "runs": runs,
        "completion_tokens": [list(c) for c in counts],
        "api_decode_tok_s": round(api_tok_s, 3),
        "engine_decode_tok_s": round(local_tok_s, 3),
        "api_ratio": round(api_tok_s / local_tok_s, 4) if local_tok_s else 0.0,
        "api_first_token_s": round(statistics.median(http_ttft), 4),
        "engine_first_token_s": round(statistics.median(local_ttft), 4),
        "threads": engine.settings.n_threads or len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
    }


def render(r: dict[str, Any]) -> str:
    rows = [
        ("model", f"{r['model']} ({r['model_file']})"),
        ("decode over HTTP (SSE)", f"{r['api_decode_tok_s']:.2f} tok/s"),
        ("decode in-process", f"{r['engine_decode_tok_s']:.2f} tok/s"),
        ("api ratio", f"{r['api_ratio']:.3f}  (target >= 0.95)"),
        ("first token over HTTP", f"{r['api_first_token_s'] * 1000:.0f} ms"),
        ("first token in-process", f"{r['engine_first_token_s'] * 1000:.0f} ms"),
        ("tokens per run (http, engine)", ", ".join(f"{a}/{b}" for a, b in r["completion_tokens"])),
        ("runs", str(r["runs"])),
    ]
    return table(rows)
