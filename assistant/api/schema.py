"""The request body of ``POST /v1/chat/completions``: an allow-list, nothing else.

Every accepted key is listed here with its bounds; any other key is a 400 naming it, so a
client that asks for something this server does not do (logprobs, several choices)
learns so instead of getting a silently different answer. ``max_tokens`` above
``llm.max_tokens`` is clamped, not refused: clients often ask for "as much as you have".
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ChatRequest",
    "FunctionCall",
    "FunctionSpec",
    "Message",
    "NamedToolChoice",
    "ResponseFormat",
    "StreamOptions",
    "TextPart",
    "ToolCallIn",
    "ToolSpec",
]

TOOLS_MAX = 64
NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$"

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


class FunctionCall(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    #: a JSON object, as text (OpenAI's shape)
    arguments: str


class ToolCallIn(_Strict):
    """A tool call of an earlier assistant turn, sent back in the history."""

    id: str = Field(max_length=128)
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    #: None only for an assistant turn that called tools
    content: str | list[TextPart] | None = None
    name: str | None = Field(default=None, max_length=64)
    tool_calls: list[ToolCallIn] | None = Field(default=None, max_length=TOOLS_MAX)
    tool_call_id: str | None = Field(default=None, max_length=128)

    @field_validator("content")
    @classmethod
    def _content(cls, v: str | list[TextPart] | None) -> str | list[TextPart] | None:
        return _utf8(v) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _shape(self) -> Message:
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("tool_call_id: a tool message answers a call; give its id")
        if self.tool_calls and self.role != "assistant":
            raise ValueError("tool_calls: only an assistant message carries tool calls")
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError("content: required (null only for an assistant's tool calls)")
        return self

    @property
    def text(self) -> str:
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)

    @property
    def chat_role(self) -> str:
        """ChatML role: OpenAI's newer "developer" is the system role."""
        return "system" if self.role == "developer" else self.role


class FunctionSpec(_Strict):
    name: str = Field(pattern=NAME_PATTERN)
    description: str = Field(default="", max_length=4096)
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None

    @field_validator("parameters")
    @classmethod
    def _an_object(cls, v: dict[str, Any]) -> dict[str, Any]:
        if v.get("type", "object") != "object":  # a call's arguments are always an object
            raise ValueError('parameters must be a JSON schema of type "object"')
        return v


class ToolSpec(_Strict):
    type: Literal["function"]
    function: FunctionSpec


class NamedFunction(_Strict):
    name: str = Field(pattern=NAME_PATTERN)


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaFormat(_Strict):
    name: str = Field(default="answer", max_length=64)
    description: str = Field(default="", max_length=4096)
    #: JSON Schema's own key is "schema"; the attribute is named so it shadows nothing
    json_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object"}, alias="schema")
    strict: bool | None = None


class ResponseFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


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
    seed: int | None = Field(
        default=None, ge=0, le=2**32 - 2, description="sample this answer with this seed"
    )
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(default=None, ge=1, le=1, description="only one choice")
    user: str | None = Field(default=None, max_length=256)
    tools: list[ToolSpec] | None = Field(default=None, max_length=TOOLS_MAX)
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = Field(
        default=None, description="accepted; this server makes at most one call per answer"
    )
    response_format: ResponseFormat | None = None
    speak: bool = Field(default=False, description="also speak the answer on the device")
    confirmation: str | None = Field(
        default=None,
        max_length=64,
        description="ours: the id a device action's 'Shall I …?' came with, sent back with "
        "the yes or no that answers it (api.allow_actions)",
    )

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

    @field_validator("tools")
    @classmethod
    def _unique(cls, v: list[ToolSpec] | None) -> list[ToolSpec] | None:
        names = [t.function.name for t in v or []]
        if len(set(names)) != len(names):
            raise ValueError("each tool needs a name of its own")
        return v

    @property
    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    @property
    def requested_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens
