"""Thermometers: where the SoC temperature comes from.

A thermometer's ``read()`` returns degrees Celsius or raises :class:`SensorError` with a
one-line reason. The governor treats any error as "sensor lost" and fails safe.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import AssistantError

__all__ = [
    "MAX_PLAUSIBLE_C",
    "MIN_PLAUSIBLE_C",
    "FileThermometer",
    "SensorError",
    "Thermometer",
    "ThrottleFlags",
    "find_sensor",
    "parse_throttled",
    "read_throttled",
]

#: Where ``sensor_path = "auto"`` looks: the Pi's SoC zone first, then any thermal zone.
THERMAL_ROOT = Path("/sys/class/thermal")

#: Readings outside this range are a broken sensor, not a temperature: the SoC shuts down
#: long before 125 °C and a Pi does not run at -40 °C.
MIN_PLAUSIBLE_C = -40.0
MAX_PLAUSIBLE_C = 125.0


class SensorError(AssistantError, OSError):
    """The thermometer gave no usable reading."""


def find_sensor(setting: str, root: Path | None = None) -> tuple[str, str]:
    """``(path, why_none)`` for thermal.sensor_path.

    ``"auto"``: the Pi's ``thermal_zone0``, else the first zone there is; a machine with no
    thermal zone at all (a VM, a container) has none, and ``why_none`` says so. ``""``: off.
    Any other value is the path itself, and a missing file there is a *lost* sensor.
    """
    if setting == "":
        return "", 'thermal.sensor_path = ""'
    if setting != "auto":
        return setting, ""
    root = root or THERMAL_ROOT
    zones = sorted(root.glob("thermal_zone*/temp"), key=lambda p: (len(str(p)), str(p)))
    if zones:
        return str(zones[0]), ""
    return "", f"no thermal sensor on this machine (nothing in {root}/thermal_zone*/temp)"


class Thermometer(Protocol):
    """Anything with ``read() -> °C``; ``source`` names it in messages."""

    source: str

    def read(self) -> float: ...


class FileThermometer:
    """Reads a sysfs-style file holding millidegrees Celsius (``52650`` = 52.65 °C).

    Besides missing, unreadable, garbage and absurd values, a *regular* file whose
    modification time is older than ``stale_s`` is stale: something was meant to keep
    writing it and stopped. Files under ``/sys`` are computed on read, so their mtime
    means nothing and is not checked.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        stale_s: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.source = str(self.path)
        self.stale_s = stale_s
        self._clock = clock
        self._sysfs = str(self.path.resolve()).startswith("/sys/")

    def read(self) -> float:
        try:
            raw = self.path.read_bytes()[:64]
            age = None if self._sysfs else self._clock() - self.path.stat().st_mtime
        except FileNotFoundError:
            raise SensorError(f"{self.source}: no such file") from None
        except OSError as exc:
            raise SensorError(f"{self.source}: cannot read: {exc.strerror or exc}") from None
        text = raw.decode("ascii", "replace").strip()
        try:
            celsius = int(text) / 1000.0
        except ValueError:
            raise SensorError(f"{self.source}: not a millidegree reading: {text[:20]!r}") from None
        if not MIN_PLAUSIBLE_C <= celsius <= MAX_PLAUSIBLE_C:
            raise SensorError(f"{self.source}: implausible reading {celsius:.1f} °C")
        if age is not None and age > self.stale_s:
            raise SensorError(f"{self.source}: stale, last written {age:.0f} s ago")
        return celsius


@dataclass(frozen=True)
class ThrottleFlags:
    """``vcgencmd get_throttled``: what is happening now and what happened since boot."""

    raw: int

    NAMES = (
        (0, "under-voltage"),
        (1, "arm frequency capped"),
        (2, "throttled"),
        (3, "soft temperature limit"),
    )

    @property
    def now(self) -> list[str]:
        return [name for bit, name in self.NAMES if self.raw >> bit & 1]

    @property
    def since_boot(self) -> list[str]:
        return [name for bit, name in self.NAMES if self.raw >> (bit + 16) & 1]

    def describe(self) -> str:
        now, ever = self.now, self.since_boot
        if not now and not ever:
            return "never throttled since boot"
        parts = []
        if now:
            parts.append("now: " + ", ".join(now))
        if ever:
            parts.append("since boot: " + ", ".join(ever))
        return "; ".join(parts)


def parse_throttled(text: str) -> ThrottleFlags:
    """Parse ``throttled=0x50005``. Raises ValueError on anything else."""
    match = re.fullmatch(r"\s*throttled=(0x[0-9a-fA-F]+)\s*", text)
    if not match:
        raise ValueError(f"unexpected vcgencmd output: {text.strip()[:40]!r}")
    return ThrottleFlags(int(match.group(1), 16))


def read_throttled(vcgencmd: str = "vcgencmd") -> ThrottleFlags | None:
    """Ask the firmware for its throttle flags; None when the tool is absent or fails."""
    tool = shutil.which(vcgencmd)
    if tool is None:
        return None
    try:
        done = subprocess.run(
            [tool, "get_throttled"], capture_output=True, text=True, timeout=5, check=True
        )
        return parse_throttled(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
