"""Reload: re-read config.toml, apply what can change live, keep the rest.

Validate first, then swap: a bad edit is reported with file:line and section.key and
the settings in force stay as they were. Keys that need a restart are named in a
warning and keep their old values until then.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
from typing import Any

from .config import Config, load_config
from .errors import AssistantError, ConfigError
from .runtime import PIDFILE, find_runtime_dir

__all__ = ["LIVE_KEYS", "reload_config", "signal_reload"]

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
        }
    ),
    # the status and watchdog loops read these on every round
    "service": frozenset({"status_interval_s", "stall_s"}),
    # the API reads its settings per request; host, port and socket need a restart
    "api": frozenset(
        {"api_key", "allowed_hosts", "max_body_bytes", "read_timeout_s", "queue_timeout_s"}
    ),
}


def _changes(old: Config, new: Config) -> list[tuple[str, str, Any, Any]]:
    found = []
    for sec in dataclasses.fields(Config):
        if sec.name == "source":
            continue
        a, b = getattr(old, sec.name), getattr(new, sec.name)
        for f in dataclasses.fields(a):
            if getattr(a, f.name) != getattr(b, f.name):
                found.append((sec.name, f.name, getattr(a, f.name), getattr(b, f.name)))
    return found


def reload_config(current: Config, governor: Any = None) -> Config:
    """Re-read ``current.source``; apply live keys (to ``governor``); return what is in force.

    Never raises for a bad file: it logs every problem and returns ``current``.
    """
    if current.source is None:
        log.warning("reload: running on the built-in defaults, there is no file to re-read")
        return current
    try:
        new = load_config(current.source)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("reload rejected: %s", problem)
        log.error("reload: keeping the settings in force")
        return current
    effective = current
    applied, pending = [], []
    for section, key, old, value in _changes(current, new):
        if key in LIVE_KEYS.get(section, ()):
            part = dataclasses.replace(getattr(effective, section), **{key: value})
            effective = dataclasses.replace(effective, **{section: part})
            applied.append(f"{section}.{key} {old!r} → {value!r}")
        else:
            pending.append(f"{section}.{key}")
    if governor is not None:
        governor.reload(effective.thermal)
    if applied:
        log.info("reloaded %s: %s", current.source, "; ".join(applied))
    else:
        log.info("reloaded %s: nothing that applies live changed", current.source)
    if pending:
        log.warning("takes effect after a restart: %s", ", ".join(pending))
    return effective


def signal_reload(pid: int | None = None) -> int:
    """Send SIGHUP to ``pid`` or the running service's (its pidfile); returns the pid."""
    if pid is None:
        path = find_runtime_dir() / PIDFILE  # NotRunning names where it looked
        try:
            pid = int(path.read_text().strip())
        except (OSError, ValueError) as exc:
            raise AssistantError(f"{path}: cannot read a pid: {exc}") from None
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise AssistantError(f"process {pid} is not running") from None
    except PermissionError:
        raise AssistantError(f"not allowed to signal process {pid}; try sudo") from None
    return pid
