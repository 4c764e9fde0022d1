"""Tools and structured output for the chat completions endpoint.

:func:`plan` turns a request's ``tools``, ``tool_choice``, ``response_format`` and tool
history into what the engine needs: (role, text) messages in Qwen's tool format, a grammar
:class:`~assistant.llm.grammar.Constraint` and the tokens that open the answer (a forced
``<tool_call>``). :func:`tool_calls` and :class:`CallStream` turn the constrained JSON back
into OpenAI's ``tool_calls``, whole or as streamed deltas.

``tool_choice``: ``auto`` (the default with tools) constrains a call only once the model
starts one; ``required`` and a named function open the call in the prompt and constrain it
from the first token; ``none`` leaves the tools out of the prompt. ``response_format``
constrains the whole answer to a JSON object (or to the given schema).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..actions.actor import Actor
from ..llm.conversation import split_system
from ..llm.grammar import Constraint
from ..toolcall import (
    NO_ACTIONS,
    Tool,
    ToolCall,
    ToolError,
    call_schema,
    parse_call,
    render_call,
    render_responses,
    tools_prompt,
)
from .schema import ChatRequest, Message

__all__ = ["CallStream", "Plan", "PlanError", "ToolError", "json_hint", "plan", "tool_calls"]

JSON_HINT = "Answer with one JSON object and nothing else."


class PlanError(ValueError):
    """A request whose tools or format cannot be honoured (a 400 naming ``param``)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass
class Plan:
    messages: list[tuple[str, str]]
    tools: list[Tool] = field(default_factory=list)
    constraint: Constraint | None = None
    #: text that opens the assistant's answer (Qwen's <tool_call> when one is forced)
    opening: str = ""
    #: "tools": a call answers with tool_calls; "json": the content is the JSON;
    #: "device": the device's own [[actions]] (api.allow_actions) run here
    mode: str = "text"
    #: device mode: the messages without the actions (the model told it cannot act), for a
    #: second answer when its call was not asked for
    plain: list[tuple[str, str]] | None = None

    @property
    def request(self) -> str:
        """The last user message (what a device action must be grounded in)."""
        return next((t for r, t in reversed(self.messages) if r == "user"), "")

    def with_actions(self, actor: Actor) -> Plan:
        """This plain-text plan offering the device's actions instead."""
        (_, system), *rest = self.messages
        return Plan(
            [("system", actor.system_prompt(system)), *rest],
            constraint=actor.constraint(),
            mode="device",
            plain=[("system", f"{system.rstrip()} {NO_ACTIONS}".strip()), *rest],
        )


def _history(messages: Sequence[Message]) -> list[tuple[str, str]]:
    """(role, text) with tool calls rendered as Qwen writes them and consecutive tool
    results gathered into one user turn of <tool_response> blocks."""
    out: list[tuple[str, str]] = []
    results: list[str] = []
    for m in messages:
        if m.role == "tool":
            results.append(m.text)
            continue
        if results:
            out.append(("user", render_responses(results)))
            results = []
        if m.role == "assistant" and m.tool_calls:
            text = m.text
            for call in m.tool_calls:
                try:
                    arguments = json.loads(call.function.arguments or "{}")
                except json.JSONDecodeError:
                    raise PlanError(
                        f"tool call {call.id}: arguments are not JSON", "messages"
                    ) from None
                text = render_call(ToolCall(call.function.name, arguments), text)
            out.append(("assistant", text))
        else:
            out.append((m.chat_role, m.text))
    if results:
        out.append(("user", render_responses(results)))
    return out


def _with_system(
    messages: list[tuple[str, str]], default: str, extra: str, tools: list[Tool]
) -> list[tuple[str, str]]:
    """The leading system messages (else ``default``) with the tools section and ``extra``."""
    system, rest = split_system(messages, default)
    if tools:
        system = tools_prompt(system, tools, extra)
    elif extra:
        system = f"{system.rstrip()}\n\n{extra}".strip()
    return [("system", system), *rest]


def json_hint(schema: dict[str, Any]) -> str:
    """What the system prompt says about a JSON answer (the model picks better values when
    it sees the fields; a bare object schema needs no mention)."""
    if schema == {"type": "object"}:
        return JSON_HINT
    return f"{JSON_HINT} Its JSON schema: {json.dumps(schema, ensure_ascii=False)}"


def plan(body: ChatRequest, default_system: str) -> Plan:
    """How to answer ``body``; PlanError for a choice that names no given tool."""
    messages = _history(body.messages)
    tools = [
        Tool(t.function.name, t.function.description, t.function.parameters)
        for t in body.tools or []
    ]
    choice = body.tool_choice or ("auto" if tools else "none")
    fmt = body.response_format
    if fmt is not None and fmt.type != "text":
        if tools and choice != "none":
            raise PlanError("response_format cannot be combined with tools", "response_format")
        schema: dict[str, Any] = {"type": "object"}
        if fmt.type == "json_schema" and fmt.json_schema is not None:
            schema = fmt.json_schema.json_schema
        hint = json_hint(schema)
        try:
            constraint = Constraint(schema, "now")
            constraint.gbnf  # noqa: B018 - a schema the converter refuses is the client's 400
        except Exception as exc:  # noqa: BLE001 - the converter raises bare exceptions
            raise PlanError(f"the JSON schema cannot be used: {exc}", "response_format") from None
        return Plan(
            _with_system(messages, default_system, hint, []), constraint=constraint, mode="json"
        )
    if choice == "none" or not tools:
        if not isinstance(choice, str) or choice == "required":
            raise PlanError("tool_choice needs tools", "tool_choice")
        return Plan(_with_system(messages, default_system, "", []))
    if isinstance(choice, str):
        chosen = tools
    else:
        chosen = [t for t in tools if t.name == choice.function.name]
        if not chosen:
            raise PlanError(
                f"tool_choice names {choice.function.name!r}, which is not in tools", "tool_choice"
            )
    start = "tool_call" if choice == "auto" else "now"
    return Plan(
        _with_system(messages, default_system, "", tools),
        tools=tools,
        constraint=Constraint(call_schema(chosen), start),
        opening="<tool_call>\n" if start == "now" else "",
        mode="tools",
    )


def tool_calls(json_text: str, tools: Sequence[Tool]) -> list[dict[str, Any]]:
    """OpenAI's ``tool_calls`` for the constrained call (ToolError if it does not fit)."""
    call = parse_call(json_text, tools)
    return [_call_dict(call.name, call.arguments_json())]


def _call_dict(name: str, arguments: str) -> dict[str, Any]:
    return {
        "id": f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


_HEAD = re.compile(r'^\s*\{\s*"name"\s*:\s*"([^"]*)"\s*,\s*"arguments"\s*:\s*')


class CallStream:
    """The constrained call's text → OpenAI tool-call deltas, as it streams.

    The first delta carries the id and the name once the name is complete; the arguments
    follow piece by piece, holding back the call's closing brace.
    """

    HOLD = 2  # characters kept back: the outer "}" and a space the grammar may put before it

    def __init__(self) -> None:
        self.text = ""
        self._args_at: int | None = None
        self._sent = 0

    def feed(self, piece: str) -> list[dict[str, Any]]:
        self.text += piece
        deltas: list[dict[str, Any]] = []
        if self._args_at is None:
            head = _HEAD.match(self.text)
            if head is None:
                return deltas
            self._args_at = head.end()
            deltas.append({"index": 0, **_call_dict(head.group(1), "")})
        ready = len(self.text) - self._args_at - self.HOLD
        if ready > self._sent:
            chunk = self.text[self._args_at + self._sent : self._args_at + ready]
            self._sent = ready
            deltas.append({"index": 0, "function": {"arguments": chunk}})
        return deltas

    def finish(self) -> list[dict[str, Any]]:
        """The rest of the arguments (the call's own closing brace left out)."""
        if self._args_at is None:
            return []
        args = self.text[self._args_at :].rstrip()
        args = args[:-1].rstrip() if args.endswith("}") else args
        rest = args[self._sent :]
        self._sent = len(args)
        return [{"index": 0, "function": {"arguments": rest}}] if rest else []
