"""systemd's side of the service: the notify protocol, the watchdog's liveness, the journal.

:class:`Notifier` speaks sd_notify through systemd-python (``systemd.daemon.notify``); it is
a quiet no-op when ``NOTIFY_SOCKET`` is unset (not started by systemd). :class:`Liveness`
holds one heartbeat per part that must make progress; the service pings ``WATCHDOG=1``
only while none of them is stalled, so a dead loop gets the service restarted instead of
being hidden by a ping thread that keeps on ticking.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "SANDBOX_HIDES",
    "Heartbeat",
    "Liveness",
    "Notifier",
    "hidden_from_the_unit",
    "journal_handler",
    "under_journald",
]

log = logging.getLogger(__name__)


def _sd_notify(message: str) -> bool:
    try:
        import systemd.daemon
    except ImportError:  # pragma: no cover - a dependency; missing only in odd installs
        return False
    return bool(systemd.daemon.notify(message))


class Notifier:
    """sd_notify messages; every method returns at once and never raises."""

    def __init__(
        self,
        send: Callable[[str], bool] = _sd_notify,
        *,
        environ: dict[str, str] | None = None,
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        env = os.environ if environ is None else environ
        self.enabled = bool(env.get("NOTIFY_SOCKET"))
        self._send = send
        self._clock_ns = clock_ns
        self.watchdog_s = _watchdog_seconds(env)
        self._lock = threading.Lock()

    def send(self, *fields: str) -> None:
        if not self.enabled:
            return
        message = "\n".join(fields)
        with self._lock:
            try:
                self._send(message)
            except OSError as exc:  # a full or vanished socket must not take the service down
                log.debug("sd_notify failed: %s", exc)

    def ready(self, status: str = "") -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, line: str) -> None:
        self.send(f"STATUS={line}")

    def extend_timeout(self, seconds: float, status: str = "") -> None:
        usec = int(seconds * 1_000_000)
        self.send(f"EXTEND_TIMEOUT_USEC={usec}", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> None:
        # systemd >= 253 wants the monotonic time with RELOADING=1; 252 ignores it
        self.send("RELOADING=1", f"MONOTONIC_USEC={self._clock_ns() // 1000}")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=stopping")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")


def _watchdog_seconds(env: os._Environ[str] | dict[str, str]) -> float | None:
    """systemd's ``WatchdogSec`` for this process (``WATCHDOG_USEC``), or None."""
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None  # meant for another process (we were forked or exec'd by it)
    try:
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None


class Heartbeat:
    """One part's progress: call :meth:`beat` whenever it gets something done."""

    def __init__(self, name: str, stall_s: float, clock: Callable[[], float]) -> None:
        self.name = name
        self.stall_s = stall_s
        self._clock = clock
        self.last = clock()
        self.paused = False  # e.g. the inference thread while it loads the model

    def beat(self) -> None:
        self.last = self._clock()

    def age(self) -> float:
        return self._clock() - self.last


class Liveness:
    """The parts that must all make progress for the watchdog to be pinged."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.parts: dict[str, Heartbeat] = {}

    def register(self, name: str, stall_s: float) -> Heartbeat:
        beat = self.parts[name] = Heartbeat(name, stall_s, self._clock)
        return beat

    def stalled(self) -> list[str]:
        """``"name (no progress for N s)"`` for every stalled part; empty when all are alive."""
        return [
            f"{b.name} (no progress for {b.age():.0f} s)"
            for b in self.parts.values()
            if not b.paused and b.age() > b.stall_s
        ]


def under_journald() -> bool:
    """True when stderr is connected to the journal (systemd sets ``JOURNAL_STREAM``)."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in stream.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError):
        return False
    return (st.st_dev, st.st_ino) == (dev, ino)


def journal_handler() -> logging.Handler | None:
    """A JournalHandler (structured fields such as ``TURN_ID``), or None without systemd-python."""
    try:
        from systemd.journal import JournalHandler
    except ImportError:  # pragma: no cover
        return None
    handler: logging.Handler = JournalHandler(SYSLOG_IDENTIFIER="qwen-assistant")
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


#: what systemd/qwen-assistant.service's sandbox hides from the service, and why
SANDBOX_HIDES = {
    "/tmp": "PrivateTmp=yes: its own empty /tmp",  # noqa: S108 - a path the unit hides
    "/var/tmp": "PrivateTmp=yes: its own empty /var/tmp",  # noqa: S108 - likewise
    "/home": "ProtectHome=yes",
    "/root": "ProtectHome=yes",
    "/run/user": "ProtectHome=yes",
}


def hidden_from_the_unit(path: Path) -> str:
    """ "DIR (the setting)" when the unit's sandbox hides ``path`` from the service, else
    "" (a relative path is not judged)."""
    if not path.is_absolute():
        return ""
    resolved = path.resolve()
    hidden = next((d for d in SANDBOX_HIDES if resolved.is_relative_to(d)), "")
    return f"{hidden} ({SANDBOX_HIDES[hidden]} in the unit)" if hidden else ""
