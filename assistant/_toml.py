"""Small TOML helpers tomllib lacks: where keys are (for error messages) and a writer.

``key_positions`` is a line scanner, not a parser: tomllib has already accepted the text,
so it only needs to find where each ``[section]`` and ``key =`` starts. It understands
comments, quoted strings, multi-line strings and arrays, dotted keys and inline tables.
"""

from __future__ import annotations

import json
import re
import tomllib
from typing import Any

__all__ = ["dumps", "key_positions", "syntax_position"]

_HEADER = re.compile(r"\s*\[\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\s*(#.*)?$")
_ARRAY = re.compile(r"\s*\[\[\s*([A-Za-z0-9_\-]+)\s*\]\]\s*(#.*)?$")
_KEY = re.compile(r"(\s*)([A-Za-z0-9_\-]+(?:\s*\.\s*[A-Za-z0-9_\-]+)*|\"[^\"]*\")\s*=")
_INLINE_KEY = re.compile(r"([A-Za-z0-9_\-]+)\s*=")
_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")

Position = tuple[int, int]


def _code(line: str) -> tuple[str, str | None]:
    """Blank out string contents and drop a comment. Returns (code, open_triple_quote)."""
    out: list[str] = []
    i, n = 0, len(line)
    while i < n:
        ch = line[i]
        if ch == "#":
            break
        if line.startswith(('"""', "'''"), i):
            quote = line[i : i + 3]
            end = line.find(quote, i + 3)
            if end < 0:
                return "".join(out), quote
            out.append(" " * (end + 3 - i))
            i = end + 3
            continue
        if ch in "\"'":
            j = i + 1
            while j < n and line[j] != ch:
                j += 2 if (ch == '"' and line[j] == "\\") else 1
            out.append(" " * (j + 1 - i))
            i = j + 1
            continue
        out.append(ch)
        i += 1
    return "".join(out), None


def key_positions(text: str) -> dict[tuple[str, str], Position]:
    """Map (section, key) to its 1-based (line, column); (section, "") is the header."""
    positions: dict[tuple[str, str], Position] = {}
    section = ""
    depth = 0
    arrays: dict[str, int] = {}  # [[name]] tables seen so far: name[0], name[1], …
    open_quote: str | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if open_quote:
            if open_quote in line:
                open_quote = None
            continue
        code, open_quote = _code(line)
        if depth == 0:
            array = _ARRAY.match(line)
            if array:
                name = array.group(1).strip()
                index = arrays[name] = arrays.get(name, -1) + 1
                section = f"{name}[{index}]"
                positions.setdefault((section, ""), (lineno, line.index("[") + 1))
                positions.setdefault((name, ""), (lineno, line.index("[") + 1))
                continue
            header = _HEADER.match(line)
            if header and not line.lstrip().startswith("[["):
                section = header.group(1).strip().strip("\"'")
                positions.setdefault((section, ""), (lineno, line.index("[") + 1))
                continue
            key = _KEY.match(code)
            if key:
                parts = [p.strip().strip('"') for p in key.group(2).split(".")]
                col = len(key.group(1)) + 1
                if section:
                    positions.setdefault((section, parts[0]), (lineno, col))
                elif len(parts) > 1:
                    positions.setdefault((parts[0], ""), (lineno, col))
                    positions.setdefault((parts[0], parts[1]), (lineno, col))
                else:
                    positions.setdefault((parts[0], ""), (lineno, col))
                    rest = code[key.end() :]
                    if rest.lstrip().startswith("{"):
                        for inner in _INLINE_KEY.finditer(rest):
                            positions.setdefault(
                                (parts[0], inner.group(1)), (lineno, key.end() + inner.start() + 1)
                            )
        depth += code.count("[") + code.count("{") - code.count("]") - code.count("}")
        depth = max(depth, 0)
    return positions


def syntax_position(exc: tomllib.TOMLDecodeError, text: str) -> tuple[int, int, str]:
    """(line, column, message) of a TOML syntax error in ``text``."""
    message = str(exc)
    match = _AT.search(message)
    if match:
        return int(match.group(1)), int(match.group(2)), message[: match.start()]
    end = " (at end of document)"
    if message.endswith(end):  # tomllib names no line here: point at the last one
        lines = text.splitlines() or [""]
        return len(lines), len(lines[-1]) + 1, message[: -len(end)]
    return 1, 1, message


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None)
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_\-]+", key) else json.dumps(key)


def dumps(data: dict[str, Any]) -> str:
    """Write {section: {key: value}} as TOML; a list of tables becomes [[section]] tables."""
    chunks = []
    for section, value in data.items():
        for table in value if isinstance(value, list) else [value]:
            head = f"[[{section}]]" if isinstance(value, list) else f"[{section}]"
            lines = [head] + [f"{_key(k)} = {_value(v)}" for k, v in table.items() if v is not None]
            chunks.append("\n".join(lines))
    return "\n\n".join(chunks) + "\n"
