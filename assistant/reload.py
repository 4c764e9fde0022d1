"""Reload: re-read config.toml, apply what can change live, keep the rest.

Validate first, then swap: a bad edit is reported with file:line and section.key and
the settings in force stay as they were. Keys that need a restart are named in a
warning and keep their old values until then. Each reload's outcome is a
:class:`Reloaded`; the service numbers them (``generation`` in status.json), so
``qwen-assistant reload`` can wait for the one it asked for and print what happened.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from .config import Config, load_config
from .errors import AssistantError, ConfigError

__all__ = ["LIVE_KEYS", "Reloaded", "reload_config", "send_sighup"]

log = logging.getLogger(__name__)

#: Keys applied without a restart (and without reloading the model).
LIVE_KEYS: dict[str, frozenset[str]] = {
    "thermal": frozenset(
        {
            "interval_s",
            "smoothing_s",
            "fan_curve",
            "fan_hysteresis_c",
            "fan_safe_state",
            "target_c",
            "critical_c",
            "rate_per_min",
            "min_rate_per_min",
            "burst",
            "queue_size",
            "control_kp",
            "control_ki",
            "control_kd",
            # the ladder is rebuilt from these at once (clock_path needs a restart)
            "min_clock_mhz",
            "min_threads",
            "min_pacing",
        }
    ),
    # the status and watchdog loops read these on every round
    "service": frozenset({"status_interval_s", "stall_s", "stop_grace_s"}),
    # the API reads its settings per request; host, port and socket need a restart
    "api": frozenset(
        {
            "api_key",
            "allowed_hosts",
            "max_body_bytes",
            "read_timeout_s",
            "queue_timeout_s",
            "header_timeout_s",
            "max_connections",
            "allow_actions",
        }
    ),
}


@dataclass(frozen=True)
class Reloaded:
    """What one reload did. ``ok`` False: rejected, ``problems`` says why, nothing changed."""

    config: Config
    ok: bool
    applied: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()
    at: float = field(default_factory=time.time)

    def as_dict(self, generation: int) -> dict[str, Any]:
        """The JSON status.json and /status carry (``generation`` numbers the reloads)."""
        return {
            "generation": generation,
            "ok": self.ok,
            "at": self.at,
            "applied": list(self.applied),
            "pending": list(self.pending),
            "problems": list(self.problems),
        }


def _changes(old: Config, new: Config) -> list[tuple[str, str, Any, Any]]:
    found = []
    for sec in dataclasses.fields(Config):
        if sec.name in ("source", "actions"):  # actions: compared whole, in reload_config
            continue
        a, b = getattr(old, sec.name), getattr(new, sec.name)
        for f in dataclasses.fields(a):
            if getattr(a, f.name) != getattr(b, f.name):
                found.append((sec.name, f.name, getattr(a, f.name), getattr(b, f.name)))
    return found


def reload_config(current: Config, governor: Any = None) -> Reloaded:
    """Re-read ``current.source``; apply live keys (to ``governor``); ``.config`` is in force.

    Never raises for a bad file: it logs every problem and keeps ``current``.
    """
    if current.source is None:
        problem = "running on the built-in defaults: there is no file to re-read"
        log.warning("reload: %s", problem)
        return Reloaded(current, False, problems=(problem,))
    try:
        new = load_config(current.source)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("reload rejected: %s", problem)
        log.error("reload: keeping the settings in force")
        return Reloaded(current, False, problems=tuple(exc.problems))
    effective = current
    applied, pending = [], []
    for section, key, old, value in _changes(current, new):
        if key in LIVE_KEYS.get(section, ()):
            part = dataclasses.replace(getattr(effective, section), **{key: value})
            effective = dataclasses.replace(effective, **{section: part})
            secret = key == "api_key"  # status.json is world-readable: never the key itself
            applied.append(
                f"{section}.{key} changed" if secret else f"{section}.{key} {old!r} → {value!r}"
            )
        else:
            pending.append(f"{section}.{key}")
    if new.actions != current.actions:  # the allow-list applies from the next turn
        effective = dataclasses.replace(effective, actions=new.actions)
        names = ", ".join(a.name for a in new.actions) or "none"
        applied.append(f"actions: {len(current.actions)} → {len(new.actions)} ({names})")
    if governor is not None:
        governor.reload(effective.thermal)
    if applied:
        log.info("reloaded %s: %s", current.source, "; ".join(applied))
    else:
        log.info("reloaded %s: nothing that applies live changed", current.source)
    if pending:
        log.warning("takes effect after a restart: %s", ", ".join(pending))
    return Reloaded(effective, True, tuple(applied), tuple(pending))


def send_sighup(pid: int) -> None:
    """SIGHUP ``pid``, or one line saying why not."""
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise AssistantError(f"process {pid} is not running") from None
    except PermissionError:
        raise AssistantError(f"not allowed to signal process {pid}; try sudo") from None
