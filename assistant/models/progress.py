"""A download progress bar: redrawn in place on a terminal, a line per 10 % otherwise."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO

__all__ = ["Progress"]

MIB = 1024 * 1024


class Progress:
    def __init__(
        self,
        label: str,
        total: int,
        out: IO[str],
        *,
        done: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label = label
        self.total = total
        self.out = out
        self.done = done
        self.clock = clock
        self.start = clock()
        self.start_done = done
        self.tty = out.isatty()
        self._drawn = -1.0
        self._decile = done * 10 // total if total else 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rate(self) -> float:
        elapsed = self.clock() - self.start
        return (self.done - self.start_done) / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate()
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 24)
            eta = (self.total - self.done) / rate if rate > 0 else 0
            return (
                f"{self.label} [{bar:<24}] {frac:4.0%} {self.done / MIB:.1f}/"
                f"{self.total / MIB:.1f} MiB {rate / MIB:.1f} MiB/s ETA {int(eta) // 60}:"
                f"{int(eta) % 60:02d}"
            )
        return f"{self.label} {self.done / MIB:.1f} MiB {rate / MIB:.1f} MiB/s"

    def update(self, n: int) -> None:
        self.done += n
        if self.tty:
            now = self.clock()
            if now - self._drawn >= 0.1:
                self._drawn = now
                self.out.write("\r" + self.line() + "\x1b[K")
                self.out.flush()
        elif self.total:
            decile = self.done * 10 // self.total
            if decile > self._decile:
                self._decile = decile
                print(self.line(), file=self.out, flush=True)

    def close(self) -> None:
        if self.tty:
            self.out.write("\r" + self.line() + "\x1b[K\n")
            self.out.flush()
