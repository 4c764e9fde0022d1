"""The levers the governor moves besides the fan: the work's intensity and the CPU clock.

* :class:`Intensity` — threads for decode and for prompt evaluation, pacing, and the clock
  cap for each phase. The governor writes it; the engine reads it between tokens
  (``llama_set_n_threads`` takes effect at the next ``llama_decode``; with flash attention
  off a greedy answer's text does not depend on it) and tells it when a prompt's
  evaluation starts and ends, so the cap for that phase is in force while it runs.
* :class:`ClockCap` — cpufreq's ``scaling_max_freq``. Below the firmware's soft limit
  (80 °C) the Pi 5 honours it; where the file cannot be written the governor says so once
  and uses the other levers.

Both are thread-safe, small and do no I/O beyond the one sysfs file.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import LLM

__all__ = [
    "CPUFREQ_POLICY",
    "ClockCap",
    "Intensity",
    "IntensityState",
    "default_threads",
    "engine_threads",
]

log = logging.getLogger(__name__)

#: The Pi 5's one cpufreq policy covers all four cores.
CPUFREQ_POLICY = Path("/sys/devices/system/cpu/cpufreq/policy0")


def default_threads() -> tuple[int, int]:
    """(decode, prompt) threads: decode is memory-bound, so at most 4; prompt uses all cores."""
    cores = len(os.sched_getaffinity(0))
    return min(cores, 4), cores


def engine_threads(settings: LLM) -> tuple[int, int]:
    """The engine's (decode, prompt) threads at full: llm.n_threads(_batch), else the
    defaults. The governor's thread lever moves between these and thermal.min_threads."""
    threads, batch_threads = default_threads()
    return settings.n_threads or threads, settings.n_threads_batch or batch_threads


@dataclass(frozen=True)
class IntensityState:
    decode_threads: int
    batch_threads: int
    pacing: float  # 1.0 = full speed; 0.5 = the decode loop idles as long as it works
    clock_mhz: int | None = None  # the cap while decoding (and idle); None: not capped
    prompt_clock_mhz: int | None = None  # the cap while a prompt is evaluated


class Intensity:
    """How hard the engine may work; ``version`` changes whenever the threads do.

    ``on_clock(mhz)`` (the governor's clock cap) is called from whichever thread changes
    the phase or the caps, with the cap of the phase in progress.
    """

    def __init__(
        self,
        threads: int,
        batch_threads: int,
        *,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.max_threads, self.max_batch_threads = threads, batch_threads
        self._state = IntensityState(threads, batch_threads, 1.0)
        self._lock = threading.Lock()
        self.version = 0
        self._sleep = sleep
        self.phase_now = "idle"  # "prompt" while a prompt is evaluated, else "decode"/"idle"
        self.on_clock: Callable[[int], None] | None = None

    @property
    def state(self) -> IntensityState:
        return self._state

    def set(
        self,
        decode_threads: int,
        batch_threads: int,
        pacing: float,
        clock_mhz: int | None = None,
        prompt_clock_mhz: int | None = None,
    ) -> None:
        state = IntensityState(
            max(1, min(decode_threads, self.max_threads)),
            max(1, min(batch_threads, self.max_batch_threads)),
            max(0.05, min(1.0, pacing)),
            clock_mhz,
            prompt_clock_mhz if prompt_clock_mhz is not None else clock_mhz,
        )
        with self._lock:
            if (state.decode_threads, state.batch_threads) != (
                self._state.decode_threads,
                self._state.batch_threads,
            ):
                self.version += 1
            self._state = state
            self._clock_locked()

    def phase(self, name: str) -> None:
        """The engine's phase: ``"prompt"`` (evaluating a prompt), ``"decode"`` or ``"idle"``."""
        with self._lock:
            if name != self.phase_now:
                self.phase_now = name
                self._clock_locked()

    def clock_for_phase(self) -> int | None:
        state = self._state
        return state.prompt_clock_mhz if self.phase_now == "prompt" else state.clock_mhz

    def _clock_locked(self) -> None:
        mhz = self.clock_for_phase()
        if mhz is not None and self.on_clock is not None:
            self.on_clock(mhz)

    def pace(self, token_s: float, cancel: threading.Event | None = None) -> float:
        """After a token that took ``token_s``: idle so decode runs at ``pacing`` of its speed.

        Returns the seconds idled; a set ``cancel`` ends the pause at once.
        """
        pacing = self._state.pacing
        if pacing >= 1.0 or token_s <= 0:
            return 0.0
        pause = token_s * (1.0 / pacing - 1.0)
        if cancel is not None:
            cancel.wait(pause)
        else:
            self._sleep(pause)
        return pause


class ClockCap:
    """``scaling_max_freq`` of one cpufreq policy (kHz in sysfs, MHz here).

    ``available`` is False, with ``problem`` saying why, where there is no cpufreq policy
    or the file is not writable (the service user needs it granted: scripts/install.sh and
    the unit's ``ExecStartPre`` do exactly that). The original cap is restored on close.
    """

    def __init__(self, policy: str | os.PathLike[str] = CPUFREQ_POLICY) -> None:
        self.policy = Path(policy)
        self.path = self.policy / "scaling_max_freq"
        self.problem = ""
        self.mhz: int | None = None
        self._original: str | None = None
        self.max_mhz = self.min_mhz = 0
        try:
            self.max_mhz = int((self.policy / "cpuinfo_max_freq").read_text()) // 1000
            self.min_mhz = int((self.policy / "cpuinfo_min_freq").read_text()) // 1000
            self._original = self.path.read_text().strip()
            self.mhz = int(self._original) // 1000
        except FileNotFoundError:
            self.problem = f"{self.policy}: no cpufreq policy on this machine"
        except (OSError, ValueError) as exc:
            self.problem = f"{self.path}: cannot read: {getattr(exc, 'strerror', None) or exc}"
        if not self.problem and not os.access(self.path, os.W_OK):
            self.problem = (
                f"{self.path}: not writable by this user (scripts/install.sh grants it to the "
                "service)"
            )

    @property
    def available(self) -> bool:
        return not self.problem

    def set(self, mhz: int) -> None:
        """Cap the clock at ``mhz`` (clamped to the CPU's range); a failed write disables it."""
        if not self.available:
            return
        mhz = max(self.min_mhz, min(self.max_mhz, mhz))
        if mhz == self.mhz:
            return
        try:
            self.path.write_text(f"{mhz * 1000}\n")
        except OSError as exc:
            self.problem = f"{self.path}: cannot write: {exc.strerror or exc}"
            log.warning("clock cap off (%s); the governor uses its other levers", self.problem)
            return
        self.mhz = mhz

    def close(self) -> None:
        """Give the CPU its original cap back."""
        if self.available and self._original is not None:
            try:
                self.path.write_text(self._original + "\n")
            except OSError as exc:
                log.warning("%s: cannot restore %s kHz: %s", self.path, self._original, exc)
            self.mhz = int(self._original) // 1000
