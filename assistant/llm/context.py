"""The llama context the engine runs in, made from [llm]: its KV cache's layout, how
attention is computed (``llm.flash_attn``) and what the cache stores (``llm.kv_type``).

Without flash attention (``llm.flash_attn = "off"``) every sequence has its own stream of
``llm.n_ctx`` cells, sequence 0 (the system prompt) and each of the ``parallel + 1`` slots:
attention is a matrix product over the cells in use, so a stream keeps an answer's work to
its own cells. With flash attention (the default: "auto" turns it on on a CPU) the
sequences share one unified cache, n_ctx cells for each slot and :data:`SPARE_CELLS` for
sequence 0, whose cells an answer shares rather than copies: its kernel skips the other
sequences' (masked) cells, and the cache is 2048 cells a slot smaller. The same cells
hold more answers while the heat budget binds (``thermal.hot_parallel``: more sequences,
not more cells; the scheduler places an answer only while the cells every busy answer may
fill fit, :func:`.sequence.fits`). ``Llama`` makes a one-sequence context and has no
parameter for the sequences, so the context is made again: the first one is made with
n_batch cells only and freed before the second is made (a first context of the full size
had its KV cache allocated beside the whole mapped model file at load, the service's
largest moment then). Every answer, the engine's and the batch scheduler's, runs in this
one context, and every decode on one thread, at ``llm.decode_nice``
(:func:`lower_priority`).

A new answer reuses the cells a slot holds (:func:`plan_reuse`): the prompt's common prefix
with them, and, once a conversation outgrew the context and its oldest turns were left out,
the turns after those too: their cells are moved down over the left-out ones (llama.cpp's
context shift: ``llama_memory_seq_rm`` and ``llama_memory_seq_add``; RoPE rotates the cached
keys to their new positions). Without it, every trim re-evaluated the whole history (~1,500
tokens, 10 s on two cores in the 100-turn voice soak, where the next question was lost). The
moved cells were computed with the left-out turns before them, as in llama.cpp's own
context shift, so an answer after a trim may differ from one evaluated afresh.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import LLM
from ..errors import ModelError
from .sequence import common_prefix

__all__ = [
    "FLASH_ATTN_TYPES",
    "MIN_SHIFT",
    "SPARE_CELLS",
    "Reuse",
    "kv_cells",
    "lower_priority",
    "make_context",
    "plan_reuse",
]

log = logging.getLogger(__name__)

#: llm.flash_attn → llama.cpp's llama_flash_attn_type
FLASH_ATTN_TYPES = {
    "auto": "LLAMA_FLASH_ATTN_TYPE_AUTO",
    "on": "LLAMA_FLASH_ATTN_TYPE_ENABLED",
    "off": "LLAMA_FLASH_ATTN_TYPE_DISABLED",
}


#: unified cache: cells beyond the slots' for sequence 0's system prompt (a longer one
#: still works: when the cache is full, the scheduler drops idle caches, then this one)
SPARE_CELLS = 256


def kv_cells(settings: LLM) -> int:
    """The KV cache's size in cells: unified, llm.n_ctx for each of the parallel + 1 slots
    and :data:`SPARE_CELLS`; else a stream of llm.n_ctx for sequence 0 and each slot."""
    if settings.unified_cache:
        return settings.n_ctx * (settings.parallel + 1) + SPARE_CELLS
    return settings.n_ctx * (settings.parallel + 2)


def make_context(llama: Any, settings: LLM, model_path: Path, hot_parallel: int = 0) -> None:
    """Replace ``llama``'s context (made small: n_batch cells) with one of
    :func:`kv_cells` for ``settings``, with sequences for ``hot_parallel`` answers decoded
    together where the unified cache allows it (:meth:`LLM.lanes`), and size ``Llama``'s
    record of sequence 0's tokens to it; on failure ``llama`` is closed and
    :class:`ModelError` names the keys to change."""
    import llama_cpp
    import numpy as np
    from llama_cpp._internals import LlamaContext

    params = llama.context_params
    params.n_ctx = kv_cells(settings)
    params.n_seq_max = settings.lanes(hot_parallel) + 2  # sequence 0, a slot a lane, one for voice
    params.kv_unified = settings.unified_cache
    params.flash_attn_type = getattr(llama_cpp, FLASH_ATTN_TYPES[settings.flash_attn])
    params.type_k = params.type_v = getattr(llama_cpp, f"GGML_TYPE_{settings.kv_type.upper()}")
    llama._ctx.close()
    try:
        llama._ctx = llama._stack.enter_context(
            contextlib.closing(LlamaContext(model=llama._model, params=params, verbose=False))
        )
    except ValueError as exc:
        llama.close()
        raise ModelError(
            f"{model_path}: llama.cpp could not make a context for llm.parallel = "
            f"{settings.parallel}, llm.flash_attn = {settings.flash_attn!r}, llm.kv_type = "
            f"{settings.kv_type!r} ({exc}); lower llm.parallel or llm.n_ctx, or set "
            f'llm.kv_type = "f16"'
        ) from None
    llama._n_ctx = llama.n_ctx()
    llama.input_ids = np.ndarray((llama._n_ctx,), dtype=np.intc)


def lower_priority(nice: int) -> None:
    """(On the decode thread, before its first ``llama_decode``.) This thread's nice value
    to ``nice``: OpenMP's workers, made by its first decode, inherit it, so all of the
    decode yields the cores to the audio work at nice 0 (llm.decode_nice)."""
    if nice <= 0:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError as exc:  # (a sandbox without setpriority: decode runs at the same nice)
        log.warning("llm.decode_nice = %d: could not set it (%s)", nice, exc)


#: a context shift is made when it saves at least this many tokens of prompt evaluation
MIN_SHIFT = 32


@dataclass(frozen=True)
class Reuse:
    """How a slot's cells serve a prompt: the first ``at`` as they are, then (``cut`` > 0)
    the ones after the next ``cut`` cells, moved down over them: ``keep`` cells in all."""

    at: int
    cut: int
    keep: int


def plan_reuse(
    cached: Sequence[int], tokens: Sequence[int], *, fixed: int = 0, shift: bool = True
) -> Reuse:
    """The most of ``cached`` (what a slot's cells hold) that ``tokens`` can reuse: their
    common prefix, or (``shift``) that prefix and, after cutting the cells a trimmed
    history left out, the longest run that continues the prompt. Nothing is cut before
    ``fixed`` (cells other sequences may share: they cannot move)."""
    at = common_prefix(cached, tokens)
    if not shift or at < fixed or at >= len(tokens):
        return Reuse(at, 0, at)
    best = Reuse(at, 0, at)
    starts = (i for i in range(at + 1, len(cached)) if cached[i] == tokens[at])
    for start in itertools.islice(starts, 256):
        run = common_prefix(cached[start:], tokens[at:])
        if at + run > best.keep:
            best = Reuse(at, start - at, at + run)
    return best if best.keep - at >= MIN_SHIFT else Reuse(at, 0, at)
