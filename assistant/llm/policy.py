"""What an answer is and when it ends, shared by the engine and its batch scheduler:
the sampling settings, the generation and its stats, and the stop rules."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from ..config import LLM

__all__ = ["Generation", "GenerationStats", "Sampling", "is_degenerate", "should_stop"]


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    max_seconds: float
    temperature: float
    top_p: float
    top_k: int
    repeat_penalty: float
    repetition_abort_tokens: int
    #: this answer's sampling seed (an API request's ``seed``); None: the engine's
    seed: int | None = None

    @classmethod
    def from_config(cls, llm: LLM) -> Sampling:
        return cls(
            llm.max_tokens,
            llm.max_seconds,
            llm.temperature,
            llm.top_p,
            llm.top_k,
            llm.repeat_penalty,
            llm.repetition_abort_tokens,
        )


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    #: prompt tokens whose KV state was reused from the previous generation
    cached_tokens: int = 0
    completion_tokens: int = 0
    #: seconds from the call to the first token (prefill + first sample)
    first_token_s: float = 0.0
    total_s: float = 0.0
    #: "stop", "length", "time", "cancelled", "repetition"
    stop_reason: str = ""
    #: seconds the decode loop idled for the governor's pacing (part of total_s)
    paced_s: float = 0.0
    #: constrained tokens, and how many of them needed the whole vocabulary masked
    grammar_tokens: int = 0
    grammar_masked: int = 0

    @property
    def prefill_tokens(self) -> int:
        return self.prompt_tokens - self.cached_tokens

    @property
    def decode_tok_s(self) -> float:
        """Tokens per second after the first token."""
        span = self.total_s - self.first_token_s
        return (
            (self.completion_tokens - 1) / span if self.completion_tokens > 1 and span > 0 else 0.0
        )


def is_degenerate(tokens: Sequence[int], window: int) -> bool:
    """True when the last ``window`` tokens are one pattern of at most window/4 tokens repeated.

    A 0.5B model at low temperature can fall into "the the the" or a repeated sentence; this
    catches both while normal prose, whose last 64 tokens never repeat exactly, passes.
    """
    if window <= 0 or len(tokens) < window:
        return False
    tail = tokens[-window:]
    for period in range(1, window // 4 + 1):
        if all(tail[i] == tail[i - period] for i in range(period, window)):
            return True
    return False


class Generation:
    """An answer being generated: iterate for text pieces; ``stats`` is final once done."""

    def __init__(self) -> None:
        self._pieces: Iterator[str] = iter(())
        self.stats = GenerationStats()
        self.token_ids: list[int] = []
        #: the free text (what a voice would speak)
        self.text = ""
        #: the constrained JSON, when a Constraint started (tool call or schema answer)
        self.json = ""
        self._callbacks: list[Callable[[Generation], None]] = []

    def on_finish(self, callback: Callable[[Generation], None]) -> None:
        """Call ``callback(self)`` once generation has ended, however it ended."""
        self._callbacks.append(callback)

    def __iter__(self) -> Iterator[str]:
        return self._pieces

    def close(self) -> None:
        close = getattr(self._pieces, "close", None)
        if close:
            close()

    def __enter__(self) -> Generation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def should_stop(ids: list[int], s: Sampling, elapsed: float, cancel: threading.Event) -> str:
    """Why an answer of ``ids`` ends now ("" while it goes on): cancelled, length, time or
    repetition."""
    if cancel.is_set():
        return "cancelled"
    if len(ids) >= s.max_tokens:
        return "length"
    if elapsed >= s.max_seconds:
        return "time"
    if is_degenerate(ids, s.repetition_abort_tokens):
        return "repetition"
    return ""
