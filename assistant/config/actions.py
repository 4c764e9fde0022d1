"""The ``[[actions]]`` tables of config.toml: the allow-list of what the device can do.

Each action has a name, a description and JSON-schema ``parameters`` (the model sees them
as a tool), and exactly one effect: ``command`` (an argv list run without a shell; each
``{parameter}`` fills part of one argument, never more) or ``http`` (a request to a robot
controller or Home Assistant; a bearer token is read from ``token_file`` when the action
runs, so it is never written in config.toml). Everything is checked at load, and every
problem is reported with the file, line and key like any other config key.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..toolcall import NAME, Tool, call_schema, gbnf_for_schema

__all__ = ["PLACEHOLDER", "Action", "Http", "parse_actions", "placeholders"]

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
TYPES = ("string", "integer", "number", "boolean", "array", "object")
ACTION_KEYS = (
    "name",
    "description",
    "parameters",
    "command",
    "http",
    "timeout_s",
    "confirm",
    "say",
    "rate_per_min",
    "keywords",
)
HTTP_KEYS = ("url", "method", "headers", "body", "token_file")
#: the placeholders an effect may use besides the action's parameters
BUILTIN = {"token"}

Report = Callable[[str, str | None, str], None]


@dataclass(frozen=True)
class Http:
    url: str
    method: str = "POST"
    headers: tuple[tuple[str, str], ...] = ()
    #: a JSON body: a table (each string leaf a template) or a JSON text template
    body: Any = None
    token_file: str = ""


@dataclass(frozen=True, eq=True)
class Action:
    name: str
    description: str
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "object", "properties": {}})
    command: tuple[str, ...] = ()
    http: Http | None = None
    timeout_s: float = 10.0
    #: ask "Shall I …?" and act only on a yes in the next turn
    confirm: bool = False
    #: what is said once it ran: a template over the parameters and {output}
    say: str = "Done."
    rate_per_min: float = 10.0
    #: words that tie a request to this action (besides its name and description)
    keywords: tuple[str, ...] = ()

    def __hash__(self) -> int:
        return hash(self.name)

    @property
    def tool(self) -> Tool:
        return Tool(self.name, self.description, self.parameters)

    @property
    def effect(self) -> str:
        return "command" if self.command else "http"

    def as_table(self) -> dict[str, Any]:
        """The [[actions]] table this was read from (for `config show`)."""
        table: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
        }
        if self.command:
            table["command"] = list(self.command)
        elif self.http is not None:
            h = self.http
            table["http"] = {
                "url": h.url,
                "method": h.method,
                "headers": dict(h.headers) or None,
                "body": h.body,
                "token_file": h.token_file or None,
            }
        return table | {
            "timeout_s": self.timeout_s,
            "confirm": self.confirm,
            "say": self.say,
            "rate_per_min": self.rate_per_min,
            "keywords": list(self.keywords),
        }


def placeholders(value: Any) -> set[str]:
    """Every ``{name}`` in the strings of ``value`` (nested tables and lists too)."""
    if isinstance(value, str):
        return set(PLACEHOLDER.findall(value))
    if isinstance(value, dict):
        return set().union(*(placeholders(v) for v in value.values())) if value else set()
    if isinstance(value, list | tuple):
        return set().union(*(placeholders(v) for v in value)) if value else set()
    return set()


def parse_actions(raw: Any, report: Report, base_dir: Path) -> tuple[Action, ...]:
    """The actions in ``raw`` (config's ``actions`` array); problems go to ``report``."""
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        report("actions", None, "must be an array of tables: [[actions]]")
        return ()
    actions: list[Action] = []
    seen: set[str] = set()
    for i, table in enumerate(raw):
        where = f"actions[{i}]"
        action = _parse_one(table, functools.partial(report, where), base_dir)
        if action is None:
            continue
        if action.name in seen:
            report(where, "name", f"{action.name!r} is used by an earlier action; names are unique")
            continue
        seen.add(action.name)
        actions.append(action)
    return tuple(actions)


def _did_you_mean(word: str, options: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f"; did you mean {close[0]!r}?" if close else "; accepted: " + ", ".join(options)


class _Bad(Exception):
    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(message)
        self.key = key


def _parse_one(
    table: dict[str, Any], report: Callable[[str | None, str], None], base_dir: Path
) -> Action | None:
    """One action, or None after reporting each problem found."""
    problems: list[tuple[str | None, str]] = [
        (k, "unknown key" + _did_you_mean(k, ACTION_KEYS)) for k in table if k not in ACTION_KEYS
    ]

    def check(fn: Callable[..., Any], *args: Any) -> Any:  # each part on its own: all reported
        try:
            return fn(*args)
        except _Bad as bad:
            problems.append((bad.key, str(bad)))
            return None

    name = table.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        problems.append(
            ("name", "required: letters, digits, _ or -, starting with a letter (≤ 64)")
        )
        name = ""
    parameters = table.get("parameters", {"type": "object", "properties": {}})
    allowed = check(_check_parameters, parameters)
    command: tuple[str, ...] = ()
    http: Http | None = None
    if ("command" in table) == ("http" in table):
        problems.append((None, "needs exactly one effect: command = [...] or http = { url = ... }"))
    elif allowed is not None:  # (placeholders are checked against valid parameters only)
        if "command" in table:
            command = check(_check_command, table["command"], allowed) or ()
        else:
            http = check(_check_http, table["http"], allowed, base_dir)
    options = _options(table, set(allowed) if allowed is not None else None, problems)
    for key, message in problems:
        report(key, message)
    if problems:
        return None
    return Action(name=str(name), parameters=parameters, command=command, http=http, **options)


def _number(table: dict[str, Any], key: str, default: float, lo: float, hi: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
        raise _Bad(key, f"must be a number from {lo:g} to {hi:g}")
    return float(value)


def _options(
    table: dict[str, Any], allowed: set[str] | None, problems: list[tuple[str | None, str]]
) -> dict[str, Any]:
    """description, timeout_s, rate_per_min, confirm, say, keywords (problems appended)."""
    out: dict[str, Any] = {}
    checks: dict[str, Callable[[], Any]] = {
        "description": lambda: _description(table.get("description")),
        "timeout_s": lambda: _number(table, "timeout_s", 10.0, 0.1, 300.0),
        "rate_per_min": lambda: _number(table, "rate_per_min", 10.0, 0.1, 600.0),
        "confirm": lambda: _flag(table.get("confirm", False)),
        "say": lambda: _say(table.get("say", "Done."), allowed),
        "keywords": lambda: _words(table.get("keywords", [])),
    }
    for key, check in checks.items():
        try:
            out[key] = check()
        except _Bad as bad:
            problems.append((bad.key or key, str(bad)))
    return out


def _description(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Bad("description", "required: one sentence saying what the action does")
    return value.strip()


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad("confirm", "must be true or false")
    return value


def _say(value: Any, allowed: set[str] | None) -> str:
    """``allowed`` None: the parameters are broken (reported already); skip that check."""
    if not isinstance(value, str) or not value.strip():
        raise _Bad("say", 'must be a sentence, e.g. "The {room} light is on."')
    unknown = placeholders(value) - (allowed or set()) - {"output"}
    if unknown and allowed is not None:
        raise _Bad("say", _unknown(unknown, allowed | {"output"}))
    return value


def _words(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        raise _Bad("keywords", 'must be a list of words: ["lamp", "lights"]')
    return tuple(value)


def _unknown(names: set[str], allowed: set[str]) -> str:
    shown = ", ".join("{" + n + "}" for n in sorted(names))
    have = ", ".join(sorted(allowed)) or "none"
    return f"{shown} is not a parameter of this action (parameters: {have})"


def _check_parameters(parameters: Any) -> dict[str, Any]:
    """The declared properties of a JSON-schema object."""
    if not isinstance(parameters, dict) or parameters.get("type", "object") != "object":
        raise _Bad(
            "parameters", 'must be a JSON-schema object: { type = "object", properties = {...} }'
        )
    props = parameters.get("properties", {})
    if not isinstance(props, dict):
        raise _Bad("parameters", "properties must be a table of parameter schemas")
    for key, schema in props.items():
        if not NAME.match(key):
            raise _Bad("parameters", f"parameter name {key!r}: letters, digits and _ only")
        if not isinstance(schema, dict) or ("type" not in schema and "enum" not in schema):
            raise _Bad(
                "parameters", f"parameter {key!r} needs a type ({', '.join(TYPES)}) or an enum"
            )
        if "type" in schema and schema["type"] not in TYPES:
            raise _Bad(
                "parameters",
                f"parameter {key!r}: type {schema['type']!r} is not one of {', '.join(TYPES)}",
            )
        enum = schema.get("enum")
        if enum is not None and (not isinstance(enum, list) or not enum):
            raise _Bad("parameters", f"parameter {key!r}: enum must be a non-empty list")
    required = parameters.get("required", [])
    if not isinstance(required, list) or any(r not in props for r in required):
        raise _Bad("parameters", "required must list declared parameters")
    _check_grammar(parameters)
    return props


def _check_grammar(parameters: dict[str, Any]) -> None:
    """The grammar a call is decoded under must be buildable from these parameters (a
    pattern without ^…$, say, is refused here instead of failing the first call)."""
    try:
        gbnf_for_schema(call_schema([Tool("x", "", parameters)], enums=False))
    except Exception as exc:  # noqa: BLE001 - the converter raises bare exceptions
        raise _Bad("parameters", f"no grammar can be built from them: {exc}") from None


def _check_command(argv: Any, allowed: dict[str, Any]) -> tuple[str, ...]:
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise _Bad("command", 'must be a list of strings: ["/usr/local/bin/robot", "{arg}"]')
    if placeholders(argv[0]) or not Path(argv[0]).is_absolute():
        raise _Bad("command", f"the program {argv[0]!r} must be an absolute path, no placeholder")
    unknown = placeholders(argv) - set(allowed)
    if unknown:
        raise _Bad("command", _unknown(unknown, set(allowed)))
    return tuple(argv)


def _check_http(value: Any, allowed: dict[str, Any], base_dir: Path) -> Http:
    if not isinstance(value, dict):
        raise _Bad("http", 'must be a table: { url = "http://…", method = "POST" }')
    unknown_keys = [k for k in value if k not in HTTP_KEYS]
    if unknown_keys:
        raise _Bad(
            "http", f"unknown key {unknown_keys[0]!r}" + _did_you_mean(unknown_keys[0], HTTP_KEYS)
        )
    url = value.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise _Bad("http", "url is required and must start with http:// or https://")
    method = str(value.get("method", "POST")).upper()
    if method not in METHODS:
        raise _Bad("http", f"method {method!r} is not one of {', '.join(METHODS)}")
    headers = value.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise _Bad(
            "http", 'headers must be a table of strings: { Authorization = "Bearer {token}" }'
        )
    body = value.get("body")
    if body is not None and not isinstance(body, str | dict | list):
        raise _Bad("http", "body must be a table (sent as JSON) or a JSON text")
    token_file = value.get("token_file", "")
    if not isinstance(token_file, str):
        raise _Bad("http", "token_file must be a path (the token is read from it, never from here)")
    used = placeholders([url, list(headers.values()), body])
    if "token" in used and not token_file:
        raise _Bad("http", "{token} is used but no token_file names where to read it")
    unknown = used - set(allowed) - BUILTIN
    if unknown:
        raise _Bad("http", _unknown(unknown, set(allowed)))
    if token_file and not Path(token_file).is_absolute():
        token_file = str((base_dir / token_file).resolve())
    return Http(url, method, tuple(headers.items()), body, token_file)
