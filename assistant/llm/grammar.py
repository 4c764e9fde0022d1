"""Constrained decoding: a JSON schema's grammar applied only where the JSON starts.

llama.cpp's grammar sampler masks the whole vocabulary (Qwen: ~152k tokens) at every step,
which made constrained decode ~0.55x the free speed here through ``create_completion``.
:class:`GrammarSampler` does what llama.cpp's own common sampler does instead: sample from
the raw logits first and ask the grammar about that one token; only when the grammar
rejects it is the whole vocabulary masked and the token sampled again. A well-prompted
model's JSON is mostly what the grammar allows, so most steps cost one check.

:class:`Constraint` says where the grammar starts: ``"now"`` (a ``response_format`` answer,
or a tool call the prompt already opened) or ``"tool_call"`` (lazily, at Qwen's
``<tool_call>`` token, or when the answer itself starts with ``{``). Free text before the
trigger is sampled by llama.cpp as usual, so plain answers are not slowed. The engine's
decode loop (:mod:`.batch`) switches a sequence to its grammar at the trigger, each
sequence with a sampler of its own reading its own row of the batch's logits.
"""

from __future__ import annotations

import ctypes
import functools
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..toolcall import gbnf_for_schema

__all__ = [
    "Constraint",
    "GrammarSampler",
    "JsonPiece",
    "check_grammar",
    "pick",
]


@dataclass(frozen=True)
class Constraint:
    """A grammar and where it starts; ``schema`` is what the finished JSON must satisfy."""

    schema: dict[str, Any]
    #: "now": from the first token; "tool_call": at <tool_call> or an answer opening with {
    start: str = "now"

    @functools.cached_property
    def gbnf(self) -> str:
        """The grammar (converted once: checking a schema and decoding under it share it)."""
        return gbnf_for_schema(self.schema)


def check_grammar(llama: Any, constraint: Constraint, parsed: Collection[str] = ()) -> None:
    """ValueError naming the problem when ``constraint``'s schema cannot become a grammar
    that llama.cpp parses over ``llama``'s vocabulary: checked before a request is admitted,
    so a bad schema is the client's error, never a failure inside the decode loop.
    ``parsed``: grammars known to parse (not parsed again)."""
    import llama_cpp

    try:
        gbnf = constraint.gbnf
    except Exception as exc:  # noqa: BLE001 - the converter raises bare exceptions
        raise ValueError(f"the JSON schema cannot be used: {exc}") from None
    if gbnf in parsed:  # llama.cpp parsed this one before
        return
    sampler = llama_cpp.llama_sampler_init_grammar(llama._model.vocab, gbnf.encode(), b"root")
    if not sampler:
        raise ValueError(
            "the JSON schema cannot be used: llama.cpp could not parse the grammar built from "
            "it (too many alternatives or an empty choice)"
        )
    llama_cpp.llama_sampler_free(sampler)


class JsonPiece(str):
    """A text piece of the constrained JSON (the tool call or the schema answer)."""

    __slots__ = ()


def pick(
    logits: np.ndarray,
    temperature: float,
    top_k: int,
    top_p: float,
    rng: np.random.Generator,
) -> int:
    """Sample one token id from ``logits`` (-inf = not allowed): greedy at temperature 0."""
    if temperature <= 0.0:
        return int(np.argmax(logits))
    k = top_k if 0 < top_k < logits.size else min(logits.size, 64)
    ids = np.argpartition(logits, -k)[-k:]
    ids = ids[np.isfinite(logits[ids])]
    if ids.size == 0:
        return int(np.argmax(logits))
    scaled = logits[ids].astype(np.float64) / temperature
    order = np.argsort(-scaled)
    ids, scaled = ids[order], scaled[order]
    p = np.exp(scaled - scaled[0])
    p /= p.sum()
    if top_p < 1.0:
        keep = int(np.searchsorted(np.cumsum(p), top_p) + 1)
        ids, p = ids[:keep], p[:keep] / p[:keep].sum()
    return int(rng.choice(ids, p=p))


class GrammarSampler:
    """A llama.cpp grammar over one Llama's vocabulary, checked token by token."""

    def __init__(self, llama: Any, gbnf: str, end_ids: Sequence[int]) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self._n_vocab = int(llama.n_vocab())
        self._ctx = llama._ctx.ctx
        self._end_ids = list(end_ids)
        self._smpl = llama_cpp.llama_sampler_init_grammar(
            llama._model.vocab, gbnf.encode(), b"root"
        )
        if not self._smpl:
            raise ValueError("llama.cpp could not parse the grammar built from the schema")
        self._one = (llama_cpp.llama_token_data * 1)()
        self._one_array = llama_cpp.llama_token_data_array(
            data=ctypes.cast(self._one, llama_cpp.llama_token_data_p), size=1, selected=-1
        )
        self._all = np.recarray(
            (self._n_vocab,),
            dtype=np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True),
        )
        self._ids = np.arange(self._n_vocab, dtype=np.intc)
        self._all_array = llama_cpp.llama_token_data_array(
            data=self._all.ctypes.data_as(llama_cpp.llama_token_data_p),
            size=self._n_vocab,
            selected=-1,
        )
        #: steps where the sampled token was rejected and the whole vocabulary masked
        self.masked_steps = 0
        self.steps = 0

    def logits(self, row: int = -1) -> np.ndarray:
        """The logits of batch row ``row`` (-1: the last evaluated token), a copy."""
        ptr = self._lib.llama_get_logits_ith(self._ctx, row)
        return np.ctypeslib.as_array(ptr, shape=(self._n_vocab,)).copy()

    def allows(self, token: int) -> bool:
        self._one[0].id, self._one[0].logit, self._one[0].p = token, 0.0, 0.0  # type: ignore[assignment]
        self._one_array.size, self._one_array.selected, self._one_array.sorted = 1, -1, False
        self._lib.llama_sampler_apply(self._smpl, ctypes.byref(self._one_array))
        return not math.isinf(self._one[0].logit)

    def mask(self, logits: np.ndarray) -> np.ndarray:
        """``logits`` with every token the grammar rejects at -inf."""
        self._all.id[:] = self._ids
        self._all.logit[:] = logits
        self._all.p[:] = 0.0
        self._all_array.size, self._all_array.selected, self._all_array.sorted = (
            self._n_vocab,
            -1,
            False,
        )
        self._lib.llama_sampler_apply(self._smpl, ctypes.byref(self._all_array))
        masked = np.full(self._n_vocab, -np.inf, dtype=np.single)
        masked[self._all.id[: self._all_array.size]] = self._all.logit[: self._all_array.size]
        return masked

    def sample(
        self,
        temperature: float,
        top_k: int,
        top_p: float,
        rng: np.random.Generator,
        row: int = -1,
    ) -> int:
        """The next token from batch row ``row``: the model's own pick when the grammar
        allows it, else a pick among the tokens it allows. The grammar has accepted the
        token on return."""
        logits = self.logits(row)
        token = pick(logits, temperature, top_k, top_p, rng)
        self.steps += 1
        if not self.allows(token):
            self.masked_steps += 1
            token = pick(self.mask(logits), temperature, top_k, top_p, rng)
        self._lib.llama_sampler_accept(self._smpl, token)
        return token

    @property
    def complete(self) -> bool:
        """The JSON is finished: the grammar would accept the end of the answer."""
        return any(self.allows(t) for t in self._end_ids)

    def close(self) -> None:
        if self._smpl:
            self._lib.llama_sampler_free(self._smpl)
            self._smpl = None

    def __enter__(self) -> GrammarSampler:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
