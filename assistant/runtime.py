"""Where a running service leaves its pid and its status, and how other commands find them.

The service claims its runtime directory: ``qwen-assistant.pid`` is opened and locked
(``flock``, exclusive) for the life of the process, so a second service with the same
directory refuses to start and names the pid that holds it, and a pidfile whose lock
nobody holds is stale (its service was killed) whatever pid it names. The owner writes
``status.json`` (refreshed every ``service.status_interval_s``) beside it and removes both
at stop; nobody else removes them.

The directory: ``run --runtime-dir DIR``, else systemd's ``RuntimeDirectory``
(``$RUNTIME_DIRECTORY``, /run/qwen-assistant under the unit), else the first writable of
/run/qwen-assistant, ``$XDG_RUNTIME_DIR/qwen-assistant`` and /tmp/qwen-assistant-UID.
``qwen-assistant status`` and ``reload`` look in the same places (and take
``--runtime-dir`` too), so both work outside systemd and with several instances.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import EX_TEMPFAIL, EX_USAGE, AssistantError

__all__ = [
    "AlreadyRunning",
    "NotRunning",
    "RuntimeDir",
    "candidates",
    "find_runtime_dir",
    "lock_held",
    "read_pid",
    "read_status",
    "write_status",
]

log = logging.getLogger(__name__)

PIDFILE = "qwen-assistant.pid"
STATUS = "status.json"
#: a reader's shared lock (see :func:`lock_held`) lasts microseconds; a claim retries this long
CLAIM_RETRY_S = 1.0


class NotRunning(AssistantError):
    exit_code = 3  # LSB: "program is not running", as `systemctl status` uses


class AlreadyRunning(AssistantError):
    exit_code = EX_TEMPFAIL


def candidates(explicit: str | os.PathLike[str] | None = None) -> list[Path]:
    if explicit:
        return [Path(explicit)]
    given = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0]
    if given:
        return [Path(given)]
    found = [Path("/run/qwen-assistant")]
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        found.append(Path(xdg) / "qwen-assistant")
    found.append(Path(tempfile.gettempdir()) / f"qwen-assistant-{os.getuid()}")
    return found


def _writable_dir(explicit: str | os.PathLike[str] | None) -> Path | None:
    """The first candidate the service can write to (created if needed), or None."""
    for path in candidates(explicit):
        try:
            path.mkdir(mode=0o755, parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK | os.X_OK):
            return path
    return None


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def lock_held(path: Path) -> bool:
    """Whether a running service holds the lock on the pidfile ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops a shared lock we took
    return False


class RuntimeDir:
    """This process's claim on a runtime directory; :meth:`release` at stop."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def claim(
        cls, explicit: str | os.PathLike[str] | None = None, *, clock: Any = time.monotonic
    ) -> RuntimeDir | None:
        """Lock the pidfile and write this pid; None (logged) when no directory is writable.

        Raises :class:`AlreadyRunning` naming the pid when another service holds it.
        Stale files of a killed service are replaced.
        """
        directory = _writable_dir(explicit)
        if directory is None:
            if explicit:
                raise AssistantError(
                    f"--runtime-dir {explicit}: cannot create or write it", exit_code=EX_USAGE
                )
            log.warning(
                "no writable runtime directory (%s): `qwen-assistant status` cannot find this "
                "service and `qwen-assistant reload` needs --pid %d",
                ", ".join(str(p) for p in candidates()),
                os.getpid(),
            )
            return None
        path = directory / PIDFILE
        deadline = clock() + CLAIM_RETRY_S
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if clock() < deadline:  # perhaps only `status` peeking; try again
                    time.sleep(0.02)
                    continue
                pid = read_pid(path)
                raise AlreadyRunning(
                    f"another qwen-assistant (pid {pid or '?'}) is running with runtime "
                    f"directory {directory}; stop it, or give this one its own with "
                    "`run --runtime-dir DIR` (or $RUNTIME_DIRECTORY)"
                ) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the previous owner removed it while we waited: take the new one
        stale = read_pid(path)
        if stale is not None and stale != os.getpid():
            log.warning(
                "replacing the stale files of pid %d in %s (its lock was not held: killed?)",
                stale,
                directory,
            )
            with contextlib.suppress(FileNotFoundError):
                (directory / STATUS).unlink()
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        os.fchmod(fd, 0o644)  # readable despite the unit's UMask=0027
        return cls(directory, fd)

    def write_status(self, data: dict[str, Any]) -> None:
        write_status(self.path, data)

    def release(self) -> None:
        """Remove this service's status.json and pidfile, then drop the lock."""
        if self._fd is None:
            return
        for name in (STATUS, PIDFILE):
            with contextlib.suppress(OSError):
                (self.path / name).unlink()
        os.close(self._fd)
        self._fd = None


def find_runtime_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The directory holding a running service's pidfile."""
    places = candidates(explicit)
    for path in places:
        if (path / PIDFILE).exists():
            return path
    raise NotRunning(
        "no running service found (no "
        + " or ".join(str(p / PIDFILE) for p in places)
        + "); start it with `systemctl start qwen-assistant` or `qwen-assistant run`"
    )


def running_pid(explicit: str | os.PathLike[str] | None = None) -> tuple[Path, int]:
    """(runtime directory, pid) of the running service, or :class:`NotRunning`."""
    directory = find_runtime_dir(explicit)
    path = directory / PIDFILE
    pid = read_pid(path)
    if pid is None:
        if lock_held(path):
            raise AssistantError(f"{path}: the service is starting (no pid written yet)")
        raise NotRunning(f"the service is not running ({path} holds no pid)")
    if not lock_held(path):
        raise NotRunning(
            f"the service is not running (pid {pid} in {path} is gone: stale files, "
            "replaced by the next `qwen-assistant run`)"
        )
    return directory, pid


def write_status(directory: Path, data: dict[str, Any]) -> None:
    """Replace ``status.json`` atomically (a reader never sees half a file)."""
    target = directory / STATUS
    tmp = target.with_name(f".{STATUS}.{os.getpid()}")
    tmp.write_text(json.dumps(data, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.chmod(0o644)  # no secrets in it; any operator may run `qwen-assistant status`
    os.replace(tmp, target)


def read_status(explicit: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The running service's last status, with ``age_s`` (seconds since it was written).

    Raises :class:`NotRunning` when no service runs (no pidfile, or nobody holds its lock).
    """
    directory, pid = running_pid(explicit)
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
