"""Where a running service leaves its pid and its status, and how other commands find them.

The service writes ``qwen-assistant.pid`` and ``status.json`` (refreshed every
``service.status_interval_s``) into its runtime directory: systemd's ``RuntimeDirectory``
(``$RUNTIME_DIRECTORY``, /run/qwen-assistant) under the unit, otherwise the first writable
of /run/qwen-assistant, ``$XDG_RUNTIME_DIR/qwen-assistant`` and /tmp/qwen-assistant-UID.
``qwen-assistant status`` and ``reload`` look in the same places, so both work outside
systemd too.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import AssistantError

__all__ = [
    "NotRunning",
    "candidates",
    "find_runtime_dir",
    "make_runtime_dir",
    "pidfile",
    "read_status",
    "write_pidfile",
    "write_status",
]

PIDFILE = "qwen-assistant.pid"
STATUS = "status.json"


class NotRunning(AssistantError):
    exit_code = 3  # LSB: "program is not running", as `systemctl status` uses


def candidates() -> list[Path]:
    given = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if given:
        return [Path(given)]
    found = [Path("/run/qwen-assistant")]
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        found.append(Path(xdg) / "qwen-assistant")
    found.append(Path(tempfile.gettempdir()) / f"qwen-assistant-{os.getuid()}")
    return found


def make_runtime_dir() -> Path | None:
    """The first candidate the service can write to (created if needed), or None."""
    for path in candidates():
        try:
            path.mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK | os.X_OK):
            return path
    return None


def find_runtime_dir() -> Path:
    """The directory holding a running service's pidfile."""
    places = candidates()
    for path in places:
        if (path / PIDFILE).exists():
            return path
    raise NotRunning(
        "no running service found (no "
        + " or ".join(str(p / PIDFILE) for p in places)
        + "); start it with `systemctl start qwen-assistant` or `qwen-assistant run`"
    )


def pidfile() -> Path:
    """The running service's pidfile (where the service would write it if none runs)."""
    try:
        return find_runtime_dir() / PIDFILE
    except NotRunning:
        return candidates()[0] / PIDFILE


def write_status(directory: Path, data: dict[str, Any]) -> None:
    """Replace ``status.json`` atomically (a reader never sees half a file)."""
    target = directory / STATUS
    tmp = target.with_name(f".{STATUS}.{os.getpid()}")
    tmp.write_text(json.dumps(data, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.chmod(0o644)  # no secrets in it; any operator may run `qwen-assistant status`
    os.replace(tmp, target)


def write_pidfile(directory: Path) -> None:
    path = directory / PIDFILE
    path.write_text(f"{os.getpid()}\n")
    path.chmod(0o644)  # readable despite the unit's UMask=0027


def read_status() -> dict[str, Any]:
    """The running service's last status, with ``age_s`` (seconds since it was written).

    Raises :class:`NotRunning` when no service runs (or its pid is gone).
    """
    directory = find_runtime_dir()
    try:
        pid = int((directory / PIDFILE).read_text().strip())
    except (OSError, ValueError) as exc:
        raise AssistantError(f"{directory / PIDFILE}: cannot read a pid: {exc}") from None
    if not _alive(pid):
        raise NotRunning(f"the service is not running (pid {pid} in {directory / PIDFILE} is gone)")
    path = directory / STATUS
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AssistantError(
            f"{path} does not exist yet; the service (pid {pid}) is starting"
        ) from None
    except (OSError, ValueError) as exc:
        raise AssistantError(f"{path}: cannot read the status: {exc}") from None
    data["age_s"] = max(0.0, time.time() - float(data.get("updated_at", 0)))
    return data


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to the service user
    return True
