"""What the house asks of a language model engine (:class:`TextEngine`): the real
:class:`~assistant.llm.engine.Engine`, or a test's fake, behind the Brain."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..config import LLM
from .conversation import ChatML
from .grammar import Constraint
from .policy import Generation

__all__ = ["TextEngine"]


class TextEngine(Protocol):
    """One loaded model that answers token ids with a streamed :class:`Generation`."""

    settings: LLM
    model_path: Path
    #: seconds the load took
    load_s: float

    @property
    def failure(self) -> str:
        """Why its decode loop died ("" while it runs)."""
        ...

    @property
    def chat_format(self) -> ChatML: ...

    def generate(
        self,
        tokens: list[int],
        *,
        cancel: threading.Event | None = None,
        constraint: Constraint | None = None,
        priority: int = 1,
        sink: Callable[[str], bool] | None = None,
        **overrides: Any,
    ) -> Generation: ...

    def check_grammar(self, constraint: Constraint) -> None:
        """ValueError when llama.cpp cannot decode under ``constraint``."""
        ...

    def close(self) -> None: ...
