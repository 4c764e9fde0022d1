"""Reading ``config.toml``: validated all at once, every problem reported together as
``FILE:LINE:COL: section.key: message`` (unknown keys with a did-you-mean).

``config.toml`` at the repository root is the complete, commented default and is shipped
inside the package. A user file may set any subset of keys; the rest keep their defaults.
Relative paths written in a file are relative to that file's directory; relative defaults
are relative to the data directory (``$XDG_DATA_HOME/qwen-assistant``).
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import tomllib
import typing
from pathlib import Path
from typing import Any

from .._toml import key_positions, syntax_position
from ..errors import ConfigError
from ..language import with_language
from .actions import parse_actions
from .schema import Config, data_dir, sections

__all__ = ["ENV_VAR", "SYSTEM_CONFIG", "default_config_path", "find_config", "load_config"]

ENV_VAR = "QWEN_ASSISTANT_CONFIG"
SYSTEM_CONFIG = Path("/etc/qwen-assistant/config.toml")


def default_config_path() -> Path:
    """The complete default file shipped inside the package."""
    return Path(__file__).parent.parent / "config.toml"


def find_config(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """--config, then $QWEN_ASSISTANT_CONFIG, then /etc/qwen-assistant/config.toml.

    None means the built-in defaults.
    """
    if explicit:
        return Path(explicit)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    return SYSTEM_CONFIG if SYSTEM_CONFIG.is_file() else None


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Load and validate ``path`` (None: the built-in defaults). Raises ConfigError."""
    if path is None:
        return _with_language(_resolve_paths(Config(), {}, data_dir()))
    path = Path(path)
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([f"{shown}: no such file; check --config or ${ENV_VAR}"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{shown}: cannot read: {exc}"]) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line, col, msg = syntax_position(exc, text)
        raise ConfigError([f"{shown}:{line}:{col}: syntax: {msg}"]) from None
    positions = key_positions(text)
    problems: list[tuple[tuple[int, int], str]] = []

    def report(section: str, key: str | None, message: str) -> None:
        pos = positions.get((section, key or ""), positions.get((section, ""), (1, 1)))
        where = f"{section}.{key}" if key else section
        problems.append((pos, f"{shown}:{pos[0]}:{pos[1]}: {where}: {message}"))

    tables = {f.name: f for f in sections()}
    built: dict[str, Any] = {}
    actions = parse_actions(raw.get("actions"), report, path.parent.resolve())
    for name, value in raw.items():
        if name == "actions":
            continue
        if name not in tables:
            report(name, None, "unknown section" + _did_you_mean(name, tables))
        elif not isinstance(value, dict):
            report(name, None, f"must be a table ([{name}]), got {_show(value)}")
    for name, fld in tables.items():
        cls = typing.cast(type, fld.default_factory)
        table = raw.get(name, {})
        built[name] = _build_section(name, cls, table if isinstance(table, dict) else {}, report)
    if problems:
        raise ConfigError([msg for _, msg in sorted(problems)])
    config = Config(**built, actions=actions, source=path)
    return _with_language(_resolve_paths(config, raw, path.parent.resolve()))


def _build_section(name: str, cls: type, table: dict[str, Any], report: Any) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    reported = set()
    for key, value in table.items():
        if key not in fields:
            report(name, key, "unknown key" + _did_you_mean(key, fields))
            continue
        converted, error = _convert(value, hints[key], fields[key].metadata)
        if error:
            report(name, key, error)
            reported.add(key)
        else:
            values[key] = converted
    section = cls(**values)
    for key, message in getattr(section, "check", list)():
        if key not in reported:  # a bad value was replaced by its default: no second message
            report(name, key, message)
    return section


def _convert(value: Any, hint: Any, meta: Any) -> tuple[Any, str | None]:  # noqa: PLR0911, PLR0912
    if hint is bool:
        return (
            (value, None)
            if isinstance(value, bool)
            else (None, f"must be true or false, got {_show(value)}")
        )
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return None, f"must be a whole number, got {_show(value)}"
    elif hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            return None, f"must be a number, got {_show(value)}"
        value = float(value)
    elif hint is str:
        if not isinstance(value, str):
            return None, f"must be a string, got {_show(value)}"
        if meta["choices"] and value not in meta["choices"]:
            options = ", ".join(repr(c) for c in meta["choices"])
            return None, f"must be one of {options}, got {value!r}"
        return value, None
    elif hint == tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
            return None, f"must be a list of non-empty strings, got {_show(value)}"
        return tuple(value), None
    else:  # the fan curve: [[celsius, duty_percent], ...]
        ok = (
            isinstance(value, list)
            and value
            and all(
                isinstance(p, list)
                and len(p) == 2
                and all(isinstance(x, int | float) and not isinstance(x, bool) for x in p)
                for p in value
            )
        )
        if not ok:
            return None, f"must be a list of [celsius, duty_percent] pairs, got {_show(value)}"
        return tuple((float(t), float(d)) for t, d in value), None
    lo, hi = meta["lo"], meta["hi"]
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        return None, f"must be between {lo:g} and {hi:g}, got {value:g}"
    return value, None


def _resolve_paths(config: Config, raw: dict[str, Any], file_dir: Path) -> Config:
    """Make path keys absolute: file values against the file's dir, defaults against data_dir()."""
    changes: dict[str, Any] = {}
    for sec in sections():
        section = getattr(config, sec.name)
        updates = {}
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            if f.metadata.get("path") and value not in ("", "auto"):
                written = f.name in raw.get(sec.name, {})
                base = file_dir if written else data_dir()
                updates[f.name] = str(base / Path(os.path.expandvars(value)).expanduser())
        if updates:
            changes[sec.name] = dataclasses.replace(section, **updates)
    return dataclasses.replace(config, **changes)


def _with_language(config: Config) -> Config:
    """The system prompt asks for answers in ``speech.language``: a prompt of the user's own
    without ``{language}`` gets one line at its end."""
    prompt = with_language(config.llm.system_prompt, config.speech.language)
    return dataclasses.replace(config, llm=dataclasses.replace(config.llm, system_prompt=prompt))


def _did_you_mean(word: str, options: Any) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)
