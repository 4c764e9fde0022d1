"""``qwen-assistant doctor``: is this machine ready to run the assistant?

One line per check, ``OK`` / ``WARN`` / ``FAIL``, each problem with its fix. Exit status 1 when
anything FAILs (the service would not work), 0 otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from ..config import Config
from . import machine, software
from .check import Check

__all__ = ["Check", "render", "run_checks"]


def run_checks(config: Config, *, config_problem: str = "") -> list[Check]:
    checks: list[Check] = []
    if config_problem:
        checks.append(Check("FAIL", "config", config_problem))
    else:
        checks.append(Check("OK", "config", f"{config.source or 'built-in defaults'}: valid"))
    steps: list[Callable[[], Iterator[Check]]] = [
        lambda: software.models(config),
        lambda: software.voice(config),
        lambda: software.speech(config),
        software.llama,
        lambda: machine.audio(config),
        lambda: machine.thermal(config),
        lambda: machine.gpio(config),
        lambda: software.actions(config),
        lambda: software.wyoming(config),
        machine.groups,
        machine.memory,
    ]
    for step in steps:
        try:
            checks.extend(step())
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the rest
            checks.append(Check("FAIL", step.__name__.strip("_<>"), f"check crashed: {exc!r}"))
    return checks


def render(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    return "\n".join(f"{c.level:<4}  {c.name:<{width}}  {c.detail}" for c in checks)
