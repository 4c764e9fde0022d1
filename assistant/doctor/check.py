"""One line of the doctor's report."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Check"]


@dataclass(frozen=True)
class Check:
    level: str  # "OK", "WARN", "FAIL"
    name: str
    detail: str
