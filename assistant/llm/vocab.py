"""The ChatML template over a loaded model's tokenizer, with tool markup kept as text.

llama.cpp matches "user-defined" added tokens even when told not to parse special tokens:
in Qwen's vocabulary ``<tool_call>`` is such a token, so the text ``<tool_call>`` typed by
a user would become the real markup token and could forge a call. :func:`chatml_for`
gives the :class:`~.conversation.ChatML` two encoders: ``encode`` (user and tool text:
markup is split at its ``<`` so it stays text) and ``encode_markup`` (the system turn's
tools section and the assistant's own calls).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import ModelError
from .conversation import ChatML
from .gguf import FIX

__all__ = ["MARKUP", "chatml_for"]

#: added tokens that are text in Qwen's vocabulary (not control tokens): tool-call markup
MARKUP = (
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)


def chatml_for(llama: Any, add_bos: bool, model_path: Path) -> ChatML:
    """ChatML over ``llama``'s tokenizer (ModelError if it has no ChatML control tokens)."""

    def special(text: str) -> int:
        ids = llama.tokenize(text.encode(), add_bos=False, special=True)
        if len(ids) != 1:
            raise ModelError(f"{model_path}: {text} is not one token; {FIX}")
        return int(ids[0])

    def encode_markup(text: str) -> list[int]:
        return [int(t) for t in llama.tokenize(text.encode(), add_bos=False, special=False)]

    markup = {}
    for text in MARKUP:
        ids = encode_markup(text)
        if len(ids) == 1:
            markup[ids[0]] = text

    def encode(text: str) -> list[int]:
        ids = encode_markup(text)
        if not markup.keys() & set(ids):
            return ids
        out: list[int] = []
        for part in re.split(r"(?=<)", text):
            if part.startswith("<") and any(part.startswith(m) for m in markup.values()):
                out += encode_markup("<") + encode_markup(part[1:])
            elif part:
                out += encode_markup(part)
        return out

    bos = llama.token_bos()
    return ChatML(
        special("<|im_start|>"),
        special("<|im_end|>"),
        encode,
        (bos,) if add_bos and bos >= 0 else (),
        encode_markup,
    )
