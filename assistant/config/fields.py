"""A config key's declaration: its default and the constraints the loader enforces."""

from __future__ import annotations

from dataclasses import field
from typing import Any

__all__ = ["opt"]


def opt(
    default: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    choices: tuple[str, ...] = (),
    path: bool = False,
) -> Any:
    """A config key: its default and the constraints :func:`load_config` enforces."""
    meta = {"lo": lo, "hi": hi, "choices": choices, "path": path}
    return field(default=default, metadata=meta)
