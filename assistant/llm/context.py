"""The llama context the engine runs in, made from [llm]: its KV cache's layout, how
attention is computed (``llm.flash_attn``) and what the cache stores (``llm.kv_type``).

Without flash attention (``llm.flash_attn = "off"``) every sequence has its own stream of
``llm.n_ctx`` cells, sequence 0 (the system prompt) and each of the ``parallel + 1`` slots:
attention is a matrix product over the cells in use, so a stream keeps an answer's work to
its own cells. With flash attention (the default: "auto" turns it on on a CPU) the
sequences share one unified cache, n_ctx cells for each slot and :data:`SPARE_CELLS` for
sequence 0, whose cells an answer shares rather than copies: its kernel skips the other
sequences' (masked) cells, and the cache is 2048 cells a slot smaller. ``Llama`` makes a
one-sequence context and has no parameter for the sequences, so the context is made
again: the first one is freed before the second is made. Every answer, the engine's and
the batch scheduler's, runs in this one context, and every decode on one thread, at
``llm.decode_nice`` (:func:`lower_priority`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

from ..config import LLM
from ..errors import ModelError

__all__ = [
    "FLASH_ATTN_TYPES",
    "SPARE_CELLS",
    "kv_cells",
    "lower_priority",
    "make_context",
    "unified",
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


def unified(settings: LLM) -> bool:
    """One cache for every sequence: with flash attention, whose kernel skips the cells
    of other sequences (without it, attention would compute over all of them)."""
    return settings.flash_attn != "off"


def kv_cells(settings: LLM) -> int:
    """The KV cache's size in cells: unified, llm.n_ctx for each of the parallel + 1 slots
    and :data:`SPARE_CELLS`; else a stream of llm.n_ctx for sequence 0 and each slot."""
    if unified(settings):
        return settings.n_ctx * (settings.parallel + 1) + SPARE_CELLS
    return settings.n_ctx * (settings.parallel + 2)


def make_context(llama: Any, settings: LLM, model_path: Path) -> None:
    """Replace ``llama``'s context with one for ``settings``; on failure ``llama`` is closed
    and :class:`ModelError` names the keys to change."""
    import llama_cpp
    from llama_cpp._internals import LlamaContext

    params = llama.context_params
    params.n_seq_max = settings.parallel + 2
    params.kv_unified = unified(settings)
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
