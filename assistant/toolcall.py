"""Tools in Qwen2.5's own format, and the schemas that constrain a call. Pure, but for
:func:`gbnf_for_schema`, which asks llama.cpp's converter for a schema's grammar.

Qwen2.5 was trained to find its tools in the system turn, one JSON signature per line
inside ``<tools></tools>``, and to answer ``<tool_call>\\n{"name": …, "arguments": {…}}\\n
</tool_call>``; results come back in a user turn inside ``<tool_response>``. This module
renders that text, builds the schema of a valid call (which becomes the grammar), parses and
validates what the model wrote.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "NO_ACTIONS",
    "Tool",
    "ToolCall",
    "ToolError",
    "call_schema",
    "gbnf_for_schema",
    "parse_call",
    "render_call",
    "render_responses",
    "strict",
    "tools_prompt",
    "validate",
]

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")

#: appended to the system prompt of a voice or CLI turn when no action fits or exists
NO_ACTIONS = (
    "You have no way to operate devices: no lights, doors, heating, music or motors. If the "
    "user asks you to operate a device, say that you can't do that. Otherwise help as usual, "
    "with stories, facts and advice."
)

_TOOLS_HEAD = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
)
_TOOLS_TAIL = (
    "\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)


class ToolError(ValueError):
    """A tool call that does not parse or does not fit its schema."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: dict[str, Any]

    def signature(self) -> dict[str, Any]:
        """OpenAI's (and Qwen's) function signature."""
        function = {"name": self.name, "description": self.description}
        return {"type": "function", "function": function | {"parameters": self.parameters}}


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: dict[str, Any]

    def arguments_json(self) -> str:
        return json.dumps(self.arguments, ensure_ascii=False)


def tools_prompt(system: str, tools: Sequence[Tool], extra: str = "") -> str:
    """``system`` followed by Qwen's tools section (and ``extra`` guidance)."""
    lines = "\n".join(json.dumps(t.signature(), ensure_ascii=False) for t in tools)
    parts = [system.rstrip(), _TOOLS_HEAD + lines + _TOOLS_TAIL, extra]
    return "\n\n".join(p for p in parts if p)


def render_call(call: ToolCall, content: str = "") -> str:
    """An assistant turn that called ``call`` (after any ``content``), as Qwen writes it."""
    body = json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False)
    return f"{content}\n<tool_call>\n{body}\n</tool_call>".lstrip("\n")


def render_responses(results: Sequence[str]) -> str:
    """The user turn that carries tool results back to the model."""
    return "\n".join(f"<tool_response>\n{r}\n</tool_response>" for r in results)


def strict(schema: dict[str, Any], *, enums: bool = True) -> dict[str, Any]:
    """A copy of ``schema`` whose objects allow no undeclared keys.

    ``enums=False`` leaves each enum's values out of the grammar (any string is written,
    the validator judges it): a request for a room the action does not know is then said
    to be unknown instead of being forced onto the nearest listed room.
    """
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "enum" and not enums:
            continue
        if key == "properties" and isinstance(value, dict):
            out[key] = {k: strict(v, enums=enums) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = strict(value, enums=enums)
        elif key in ("anyOf", "oneOf", "allOf") and isinstance(value, list):
            out[key] = [strict(v, enums=enums) for v in value]
        elif key in ("$defs", "definitions") and isinstance(value, dict):
            out[key] = {k: strict(v, enums=enums) for k, v in value.items()}
        else:
            out[key] = value
    if out.get("type") == "object" and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def call_schema(tools: Sequence[Tool], *, enums: bool = True) -> dict[str, Any]:
    """The schema of ``{"name": …, "arguments": …}`` for any one of ``tools``."""
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"const": t.name},
                "arguments": strict(t.parameters, enums=enums),
            },
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        for t in tools
    ]
    return options[0] if len(options) == 1 else {"anyOf": options}


def parse_call(text: str, tools: Sequence[Tool]) -> ToolCall:
    """The call in ``text`` (the constrained JSON), checked against its tool's schema."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolError(f"the tool call is not JSON ({exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise ToolError("the tool call has no function name")
    by_name = {t.name: t for t in tools}
    tool = by_name.get(data["name"])
    if tool is None:
        raise ToolError(f"there is no tool named {data['name']!r}")
    arguments = data.get("arguments", {})
    if isinstance(arguments, str):  # some models quote the arguments object
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            raise ToolError("the arguments are not a JSON object") from None
    problems = validate(strict(tool.parameters), arguments)
    if problems:
        raise ToolError(f"{tool.name}: {problems[0]}")
    return ToolCall(tool.name, arguments)


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "null": (type(None),),
}


def _is(kind: str, value: Any) -> bool:
    if kind == "boolean" or isinstance(value, bool):  # JSON's true is no number
        return kind == "boolean" and isinstance(value, bool)
    return isinstance(value, _TYPES.get(kind, object))


def validate(schema: dict[str, Any], value: Any, where: str = "") -> list[str]:  # noqa: PLR0912
    """Problems of ``value`` against the JSON-schema subset tools use ([] = valid).

    Covers type, enum, const, properties/required/additionalProperties, items,
    minimum/maximum, minLength/maxLength, pattern, minItems/maxItems and anyOf.
    """
    at = where or "arguments"
    if "anyOf" in schema:
        if any(not validate(s, value, where) for s in schema["anyOf"]):
            return []
        return [f"{at} fits none of the allowed forms"]
    if "const" in schema and value != schema["const"]:
        return [f"{at} must be {schema['const']!r}"]
    if "enum" in schema and value not in schema["enum"]:
        options = ", ".join(str(o) for o in schema["enum"])
        return [f"{at} {value!r} is not one of {options}"]
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if kind else []
    if kinds and not any(_is(k, value) for k in kinds):
        return [f"{at} must be {' or '.join(kinds)}, got {json.dumps(value)[:40]}"]
    problems: list[str] = []
    if isinstance(value, dict):
        props = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"{at}.{key} is required")
        for key, item in value.items():
            if key in props:
                problems += validate(props[key], item, f"{at}.{key}")
            elif schema.get("additionalProperties") is False:
                problems.append(f"{at}.{key} is not a parameter")
    elif isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            problems.append(f"{at} needs at least {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{at} takes at most {schema['maxItems']} items")
        if isinstance(schema.get("items"), dict):
            for i, item in enumerate(value):
                problems += validate(schema["items"], item, f"{at}[{i}]")
    elif isinstance(value, str):
        if len(value) < schema.get("minLength", 0):
            problems.append(f"{at} is shorter than {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{at} is longer than {schema['maxLength']} characters")
        if isinstance(pattern := schema.get("pattern"), str) and not _matches(pattern, value):
            problems.append(f"{at} does not match the pattern {pattern}")
    elif isinstance(value, int | float):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{at} {value} is below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{at} {value} is above {schema['maximum']}")
    return problems


def gbnf_for_schema(schema: dict[str, Any]) -> str:
    """GBNF for ``schema`` (llama.cpp's own converter, shipped in llama-cpp-python); a
    call's name comes before its arguments."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    return str(json_schema_to_gbnf(json.dumps(schema), prop_order=["name", "arguments"]))


def _matches(pattern: str, value: str) -> bool:
    """JSON Schema's ``pattern``: a regular expression found anywhere in the value (a
    pattern Python cannot read is not held against the value; the grammar enforces it)."""
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return True
