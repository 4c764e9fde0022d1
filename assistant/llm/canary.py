"""The load-time canary: a few greedy tokens of a fixed prompt must look like a language model.

A GGUF whose header and tensor table are intact can still hold zeroed or corrupted weights
(a partly written file, a sparse copy, bit rot): llama.cpp loads it and it answers
``!!!!!!!!``. Before the service calls itself ready, the engine evaluates a short fixed
prompt and decodes :data:`TOKENS` tokens greedily; every step's logits must be finite and
not flat, and the answer must not be one token repeated. The prompt is the system prompt,
whose KV cache the engine keeps afterwards (it evaluates it at start anyway), so the canary
costs only a few decode steps (figures in docs/models.md).
The judges are pure, list in, verdict out.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

__all__ = ["PROMPT", "TOKENS", "degenerate_answer", "judge_logits", "run_canary"]

PROMPT = "What is 2+2? Answer with one word."
TOKENS = 4
#: logits whose max - min is below this are flat: every token equally likely
FLAT = 1e-3


def judge_logits(logits: Any) -> str:
    """A problem with one step's logits (a numpy vector), or ""."""
    import numpy as np

    if not np.isfinite(logits).all():
        return "non-finite logits (NaN or infinity)"
    if float(logits.max() - logits.min()) < FLAT:
        return "flat logits (every token equally likely)"
    return ""


def degenerate_answer(tokens: Sequence[int], wanted: int = TOKENS) -> str:
    """A problem with the greedy answer, or "": a full answer of one token repeated."""
    if len(tokens) >= wanted and len(set(tokens)) == 1:
        return f"the answer is one token repeated {len(tokens)} times"
    return ""


def run_canary(
    llama: Any, prompt: Sequence[int], stop_ids: Collection[int], *, keep: int = 0
) -> str:
    """Greedy-decode up to :data:`TOKENS` tokens of ``prompt`` on ``llama`` (a loaded
    llama_cpp.Llama); return the problem found, or "".

    Afterwards the KV cache holds the first ``keep`` tokens of ``prompt`` (the system
    prompt, which every conversation starts with: evaluating it is work the engine does at
    start anyway), or nothing when a problem was found.
    """
    import llama_cpp
    import numpy as np

    answer: list[int] = []
    llama.reset()
    problem = ""
    try:
        llama.eval(list(prompt))
        for _ in range(TOKENS):
            raw = llama_cpp.llama_get_logits_ith(llama.ctx, -1)
            logits = np.ctypeslib.as_array(raw, shape=(llama.n_vocab(),))
            problem = judge_logits(logits)
            if problem:
                return problem
            token = int(np.argmax(logits))
            if token in stop_ids:
                break
            answer.append(token)
            llama.eval([token])
        problem = degenerate_answer(answer)
        return problem
    finally:
        if problem or not keep:
            llama.reset()
        else:  # the next eval drops the KV cells past n_tokens (llama_cpp.Llama.eval)
            llama.n_tokens = min(keep, llama.n_tokens)
