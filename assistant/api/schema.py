"""The request body of ``POST /v1/chat/completions``: an allow-list, nothing else.

Every accepted key is listed here with its bounds; any other key is a 400 naming it, so a
client that asks for something this server does not do (tools, logprobs, several choices)
learns so instead of getting a silently different answer. ``max_tokens`` above
``llm.max_tokens`` is clamped, not refused: clients often ask for "as much as you have".
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ChatRequest", "Message", "StreamOptions", "TextPart"]

STOP_MAX = 4
STOP_CHARS = 64
MESSAGES_MAX = 256


def _utf8(text: str) -> str:
    """JSON can smuggle lone surrogates (``"\\ud800"``) that no tokenizer can encode."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid UTF-8 text (no lone surrogate escapes)") from None
    return text


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


class TextPart(_Strict):
    type: Literal["text"]
    text: str

    @field_validator("text")
    @classmethod
    def _text(cls, v: str) -> str:
        return _utf8(v)


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = Field(default=None, max_length=64)

    @field_validator("content")
    @classmethod
    def _content(cls, v: str | list[TextPart]) -> str | list[TextPart]:
        return _utf8(v) if isinstance(v, str) else v

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)

    @property
    def chat_role(self) -> str:
        """ChatML role: OpenAI's newer "developer" is the system role."""
        return "system" if self.role == "developer" else self.role


class StreamOptions(_Strict):
    include_usage: bool = False


class ChatRequest(_Strict):
    """OpenAI chat completion parameters this server honours. ``speak`` is ours."""

    model: str = Field(default="qwen-assistant", max_length=256)
    messages: list[Message] = Field(min_length=1, max_length=MESSAGES_MAX)
    max_tokens: int | None = Field(default=None, ge=1, description="clamped to llm.max_tokens")
    max_completion_tokens: int | None = Field(
        default=None, ge=1, description="newer name for max_tokens"
    )
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(default=None, ge=1, le=1, description="only one choice")
    user: str | None = Field(default=None, max_length=256)
    speak: bool = Field(default=False, description="also speak the answer on the device")

    @field_validator("stop")
    @classmethod
    def _stops(cls, v: str | list[str] | None) -> str | list[str] | None:
        stops = [v] if isinstance(v, str) else v or []
        if len(stops) > STOP_MAX:
            raise ValueError(f"at most {STOP_MAX} stop strings")
        for s in stops:
            if not 1 <= len(s) <= STOP_CHARS:
                raise ValueError(f"each stop string must be 1 to {STOP_CHARS} characters")
            _utf8(s)
        return v

    @property
    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    @property
    def requested_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens
