"""The conversation: system prompt, history and the token budget. Pure: no llama_cpp here.

The prompt is built from token ids, never from one rendered string: control tokens
(``<|im_start|>``, ``<|im_end|>``) are inserted by id where the ChatML template puts them,
and every piece of text — the user's included — is tokenized with ``special=False``, so
``<|im_end|>`` typed by a user stays plain text.

The history is kept as token ids too: the assistant's turn is exactly the tokens the model
generated, so the next prompt starts with the tokens already in llama.cpp's KV cache and
only the new ones are evaluated.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import PromptTooLong

__all__ = [
    "TRIM_STEP",
    "Chat",
    "ChatML",
    "Conversation",
    "Prompt",
    "Turn",
    "fit_turns",
    "split_system",
    "stateless_prompt",
]


@dataclass(frozen=True)
class ChatML:
    """The ChatML template (Qwen2.5, SmolLM2) over a tokenizer.

    ``encode`` turns plain text into token ids and must never produce control tokens.
    """

    im_start: int
    im_end: int
    encode: Callable[[str], list[int]]
    bos: tuple[int, ...] = ()
    #: like ``encode`` but Qwen's tool markup (``<tool_call>``) may become its token: for
    #: the system turn (the tools section) and the assistant's own calls, never for text a
    #: user or a tool wrote (None: same as ``encode``)
    encode_markup: Callable[[str], list[int]] | None = None

    def message(self, role: str, content: str) -> list[int]:
        trusted = role in ("system", "assistant") and self.encode_markup is not None
        encode = self.encode_markup if trusted and self.encode_markup else self.encode
        return [*self.header(role), *encode(content), *self.footer()]

    def header(self, role: str) -> list[int]:
        return [self.im_start, *self.encode(f"{role}\n")]

    def footer(self) -> list[int]:
        return [self.im_end, *self.encode("\n")]


@dataclass(frozen=True)
class Turn:
    user_text: str
    answer_text: str
    #: the user message block and the assistant block, as token ids
    user_tokens: tuple[int, ...]
    answer_tokens: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.user_tokens) + len(self.answer_tokens)


@dataclass(frozen=True)
class Prompt:
    tokens: list[int]
    user_text: str
    user_tokens: tuple[int, ...]
    #: how many of the oldest turns were left out to make room
    dropped_turns: int = 0


#: once the history must be trimmed, the oldest turns go this many at a time
TRIM_STEP = 8


def fit_turns(fixed: int, turn_lengths: Sequence[int], budget: int, step: int = TRIM_STEP) -> int:
    """Index of the oldest turn to keep so ``fixed`` + the kept turns fit ``budget``.

    ``fixed`` is the system prompt, the new message and the answer header; the newest turns
    are kept, the oldest dropped. Returns ``len(turn_lengths)`` when none fit. The index is
    rounded up to a multiple of ``step`` (while that keeps the newest turn): a history that
    grows one turn at a time then starts at the same turn for several turns, so the prompt's
    start, which the KV cache holds, does not change with every turn once it is full (a
    100-turn voice soak re-evaluated 1,700 tokens, 13 s, every other turn without it).
    """
    total = fixed
    keep_from = len(turn_lengths)
    for i in range(len(turn_lengths) - 1, -1, -1):
        if total + turn_lengths[i] > budget:
            break
        total += turn_lengths[i]
        keep_from = i
    rounded = -(-keep_from // step) * step
    return rounded if 0 < keep_from < rounded < len(turn_lengths) else keep_from


@dataclass
class Conversation:
    """System prompt + history, trimmed so prompt + max_tokens always fits n_ctx."""

    fmt: ChatML
    system_prompt: str
    n_ctx: int
    turns: list[Turn] = field(default_factory=list)

    def __post_init__(self) -> None:
        system = self.fmt.message("system", self.system_prompt) if self.system_prompt else []
        self.prefix: list[int] = [*self.fmt.bos, *system]

    def build(self, user_text: str, max_tokens: int) -> Prompt:
        user = tuple(self.fmt.message("user", user_text))
        tail = self.fmt.header("assistant")
        budget = self.n_ctx - max_tokens
        fixed = len(self.prefix) + len(user) + len(tail)
        if fixed > budget:
            raise PromptTooLong(
                f"the message is {len(user)} tokens; with the system prompt "
                f"({len(self.prefix)}) and room for the answer ({max_tokens}) it needs "
                f"{fixed + max_tokens} of llm.n_ctx = {self.n_ctx}: shorten it or raise llm.n_ctx"
            )
        keep = fit_turns(fixed, [len(t) for t in self.turns], budget)
        tokens = list(self.prefix)
        for turn in self.turns[keep:]:
            tokens += turn.user_tokens
            tokens += turn.answer_tokens
        tokens += user
        tokens += tail
        return Prompt(tokens, user_text, user, dropped_turns=keep)

    def add(self, prompt: Prompt, answer_text: str, answer_ids: Sequence[int]) -> None:
        """Record a finished turn; ``answer_ids`` are the generated tokens, stop token excluded."""
        answer = (*self.fmt.header("assistant"), *answer_ids, *self.fmt.footer())
        # turns dropped for this prompt can never fit again: forget them
        del self.turns[: prompt.dropped_turns]
        self.turns.append(Turn(prompt.user_text, answer_text, prompt.user_tokens, answer))

    def reset(self) -> None:
        self.turns.clear()


def split_system(
    messages: Sequence[tuple[str, str]], default_system: str
) -> tuple[str, Sequence[tuple[str, str]]]:
    """(the system prompt, the other messages): leading system messages, joined, replace
    ``default_system``."""
    leading = 0
    while leading < len(messages) and messages[leading][0] == "system":
        leading += 1
    system = "\n\n".join(t for _, t in messages[:leading]) if leading else default_system
    return system, messages[leading:]


def stateless_prompt(
    fmt: ChatML,
    messages: Sequence[tuple[str, str]],
    default_system: str,
    n_ctx: int,
    max_tokens: int,
) -> Prompt:
    """The prompt for a client-held history (the OpenAI API), trimmed like a Conversation.

    ``messages`` are (role, text) with role system, user or assistant, the last from the
    user. Leading system messages replace ``default_system``; the rest are grouped into
    turns, each starting at a user message, and the oldest turns are dropped until prompt +
    ``max_tokens`` fits ``n_ctx``. The system prompt and the last message are always kept.
    """
    system, rest = split_system(messages, default_system)
    if not rest or rest[-1][0] != "user":
        raise ValueError("the last message must have role 'user'")
    *history, (_, last) = rest
    conversation = Conversation(fmt, system, n_ctx)
    for role, text in history:
        block = tuple(fmt.message(role, text))
        if role == "user" or not conversation.turns:
            conversation.turns.append(Turn(text, "", block, ()))
        else:
            turn = conversation.turns[-1]
            conversation.turns[-1] = Turn(
                turn.user_text, text, turn.user_tokens, (*turn.answer_tokens, *block)
            )
    return conversation.build(last, max_tokens)


class GenerationLike(Protocol):
    """What :meth:`Engine.generate` returns (kept abstract so this module stays pure)."""

    text: str
    token_ids: list[int]

    def __iter__(self) -> Iterator[str]: ...

    def on_finish(self, callback: Callable[[GenerationLike], None]) -> None: ...


class EngineLike(Protocol):
    def generate(self, tokens: list[int], **overrides: Any) -> Any: ...


class Chat:
    """A multi-turn chat: each answer streams, then joins the history."""

    def __init__(self, engine: EngineLike, conversation: Conversation, max_tokens: int) -> None:
        self.engine = engine
        self.conversation = conversation
        self.max_tokens = max_tokens

    def ask(self, text: str, **overrides: Any) -> Any:
        """Start answering ``text``; iterate the result for text pieces.

        Whatever was generated joins the history when the stream ends, is cancelled or is
        closed early, so the next question sees the answer the user actually got.
        """
        max_tokens = min(int(overrides.pop("max_tokens", None) or self.max_tokens), self.max_tokens)
        prompt = self.conversation.build(text, max_tokens)
        generation = self.engine.generate(prompt.tokens, max_tokens=max_tokens, **overrides)

        def record(done: GenerationLike) -> None:
            if getattr(done, "json", "") and "constraint" in overrides:
                return  # a constrained answer: the caller remembers what it made of it
            if done.token_ids:
                self.conversation.add(prompt, done.text, done.token_ids)

        generation.on_finish(record)
        return generation

    def remember(self, messages: Sequence[tuple[str, str]]) -> None:
        """Add a turn whose answer was not generated as such: (role, text) messages, the
        request first (an action's call, its result and what was said)."""
        if not messages:
            return
        fmt = self.conversation.fmt
        (_, user_text), *answer = messages
        tokens = [t for role, text in answer for t in fmt.message(role, text)]
        said = answer[-1][1] if answer else ""
        self.conversation.turns.append(
            Turn(user_text, said, tuple(fmt.message("user", user_text)), tuple(tokens))
        )
