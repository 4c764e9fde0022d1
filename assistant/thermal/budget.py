"""The heat budget: temperature → the watts the work may use → how to spend them.

Modelled on Linux's ``power_allocator`` thermal governor (ARM's Intelligent Power
Allocation): a PID controller on the temperature produces a **power budget**, and the
budget is divided among the cooling devices instead of stopping the work. Here

    budget = I + kp·e - kd·slope,   I += ki·e·dt,   e = target_c - envelope

in watts of *work* (the board's power above idle), clamped so the integral cannot wind up.
The budget is spent on the levers in order of what they cost the person waiting for an
answer (:class:`Ladder`): the fan first (free; the governor runs it at full whenever the
budget binds), then the intensity of the work — decode threads, prompt-evaluation threads,
a CPU clock cap — then token pacing, and the admitted request rate last.

:class:`PowerModel` is the static estimate of each operating point's power the budget is
compared with, as the kernel's power actors carry one from the SoC's device tree. Its
numbers are the Pi 5 figures of ``../shared/pi5-facts.md`` (decode ~6.4 W board, full load
~11 W, core power ∝ clock², decode speed ∝ clock^0.5); the feedback loop corrects what
the estimate gets wrong, which ``tests/test_simulate.py`` checks on a board whose real
power differs from it. Pure: numbers in, numbers out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from ..config import Thermal

__all__ = [
    "BudgetController",
    "Controller",
    "FixedRate",
    "HeatBudget",
    "Ladder",
    "OperatingPoint",
    "PowerModel",
    "decode_speed",
]

#: The Pi 5's clock range and step (raspberrypi/documentation frequency-management.adoc).
F_MAX_MHZ = 2400
F_MIN_MHZ = 1500
F_STEP_MHZ = 100

#: Decode speed with t threads as a fraction of 4 threads' (index t-1). An assumption: no
#: Pi 5 sweep is published; STREAM reads 9.3/13.2/11.6 GB/s with 1/2/4 threads, so 2-3
#: threads move the weights about as fast as 4 (pi5-facts.md). `bench threads` measures it.
DECODE_THREAD_SPEED = (0.55, 0.92, 0.98, 1.0)


def decode_speed(threads: int, cores: int, table: Sequence[float] = DECODE_THREAD_SPEED) -> float:
    """Decode speed with ``threads`` of ``cores`` threads, as a fraction of all of them."""
    table = list(table[:cores]) or [1.0]
    full = table[min(cores, len(table)) - 1]
    return table[max(1, min(threads, len(table))) - 1] / full


@dataclass(frozen=True)
class OperatingPoint:
    """What the work may use: one rung of the :class:`Ladder`."""

    decode_threads: int
    batch_threads: int  # prompt evaluation
    clock_mhz: int | None  # the cap while decoding (None: no cap available)
    pacing: float  # decode runs at this fraction of its speed (sleeps between tokens)
    rate_factor: float = 1.0  # of thermal.rate_per_min (admission, the last lever)
    prompt_clock_mhz: int | None = None  # the cap while evaluating a prompt

    def describe(self, threads: int, batch_threads: int, lanes: int = 0) -> str:
        """``threads 2/4 · clock ≤ 2.1 GHz (prompts ≤ 1.5) · pacing 0.9 · 4 answers
        together``: where each lever stands (``lanes``: the batch widened to them)."""
        parts = [f"threads {self.decode_threads}/{threads}"]
        if self.batch_threads != batch_threads:
            parts[0] += f" (prompt {self.batch_threads}/{batch_threads})"
        clock, prompt = self.clock_mhz or F_MAX_MHZ, self.prompt_clock_mhz or F_MAX_MHZ
        if clock < F_MAX_MHZ or prompt < F_MAX_MHZ:
            text = f"clock ≤ {clock / 1000:.1f} GHz" if clock < F_MAX_MHZ else "clock"
            parts.append(f"{text} (prompts ≤ {prompt / 1000:.1f})" if prompt < clock else text)
        if self.pacing < 1.0:
            parts.append(f"pacing {self.pacing:.1f}")
        if lanes:
            parts.append(f"{lanes} answers together")
        return " · ".join(parts)


@dataclass(frozen=True)
class PowerModel:
    """Board power above idle, in watts, of the work at an operating point (Pi 5 figures).

    Core power scales with the active threads and with clock² (voltage follows the clock);
    memory power with the decode speed. ``prefill_share`` is the part of busy time spent
    evaluating prompts, which the estimate averages in.
    """

    cores: int = 4
    decode_core_w: float = 2.2  # all cores, 2.4 GHz: decode ~6.4 W board (llama.cpp#26484)
    decode_mem_w: float = 1.5
    prefill_core_w: float = 7.3  # full load ~11 W board
    prefill_mem_w: float = 1.0
    prefill_share: float = 0.2
    core_power_exp: float = 2.0
    decode_clock_exp: float = 0.5

    def work_w(self, point: OperatingPoint) -> float:
        clock = (point.clock_mhz or F_MAX_MHZ) / F_MAX_MHZ
        prompt_clock = (point.prompt_clock_mhz or point.clock_mhz or F_MAX_MHZ) / F_MAX_MHZ
        core = float(clock**self.core_power_exp)
        speed = decode_speed(point.decode_threads, self.cores) * float(clock**self.decode_clock_exp)
        decode = (
            self.decode_core_w * core * point.decode_threads / self.cores
            + self.decode_mem_w * speed
        ) * point.pacing
        prefill = (
            self.prefill_core_w * float(prompt_clock**self.core_power_exp)
            + self.prefill_mem_w * prompt_clock
        ) * (point.batch_threads / self.cores)
        busy = self.prefill_share * prefill + (1 - self.prefill_share) * decode
        return busy * point.rate_factor


class Ladder:
    """The operating points from full speed to the least the levers allow, in order of cost.

    Threads for decode step down first (memory-bound: a thread fewer costs little speed and
    saves a core's power). Then, where cpufreq may be written, the clock cap in 100 MHz
    steps: first while prompts are evaluated (the hottest work; with idle power counted, a
    prompt token even costs the least energy at the lowest clock, so only the time to first
    token pays), then while decoding (power falls with clock², decode speed only with
    clock^0.5). Then threads for prompt
    evaluation (the same energy per prompt token, spread over a longer, cooler spike; idle
    power makes it the dearest of the three), then pacing in 0.1 steps. Past the last rung
    only the admitted rate is left: :meth:`spend` scales it down to ``min_rate_per_min``.
    """

    def __init__(
        self,
        settings: Thermal,
        threads: int,
        batch_threads: int,
        *,
        clock: bool,
        model: PowerModel | None = None,
    ) -> None:
        self.threads, self.batch_threads = max(1, threads), max(1, batch_threads)
        self.model = model or PowerModel(cores=max(self.threads, self.batch_threads))
        top = F_MAX_MHZ if clock else None
        full = OperatingPoint(self.threads, self.batch_threads, top, 1.0, prompt_clock_mhz=top)
        points = [full]

        def step(**change: float | int) -> None:
            points.append(replace(points[-1], **change))  # type: ignore[arg-type]

        lo_threads = max(1, settings.min_threads)
        for t in range(self.threads - 1, lo_threads - 1, -1):
            step(decode_threads=t)
        if clock:
            lo_clock = max(F_MIN_MHZ, min(F_MAX_MHZ, settings.min_clock_mhz))
            for mhz in range(F_MAX_MHZ - F_STEP_MHZ, lo_clock - 1, -F_STEP_MHZ):
                step(prompt_clock_mhz=mhz)
            for mhz in range(F_MAX_MHZ - F_STEP_MHZ, lo_clock - 1, -F_STEP_MHZ):
                step(clock_mhz=mhz)
        for t in range(self.batch_threads - 1, lo_threads - 1, -1):
            step(batch_threads=t)
        pacing = 1.0
        while pacing - 0.1 >= settings.min_pacing - 1e-9:
            pacing = round(pacing - 0.1, 2)
            step(pacing=pacing)
        self.points = points
        self.watts = [self.model.work_w(p) for p in points]
        self.full_w = self.watts[0]
        #: the admitted rate's floor, as a fraction of rate_per_min (the last lever)
        self.lo_rate = settings.min_rate_per_min / settings.rate_per_min
        self.floor_w = self.watts[-1] * self.lo_rate

    def spend(self, budget_w: float) -> OperatingPoint:
        """The first rung whose work fits ``budget_w``; past the last, a lower admitted rate."""
        for point, watts in zip(self.points, self.watts, strict=True):
            if watts <= budget_w + 1e-9:
                return point
        last, last_w = self.points[-1], self.watts[-1]
        return replace(last, rate_factor=max(self.lo_rate, min(1.0, budget_w / last_w)))


class HeatBudget:
    """PID control of the work's power budget (W) on the temperature error.

    ``budget = integral + kp·error - kd·slope`` with ``integral += ki·error·dt``,
    ``error = target_c - celsius`` and ``slope`` the temperature's rise in °C/s (averaged
    over ~10 s): it brakes before the target is reached, since the board keeps heating for
    minutes after a load step. The integral and the budget are clamped to what the ladder
    can spend, so neither winds up. Starts at the full budget: a cold device has headroom.
    """

    def __init__(self, settings: Thermal, ladder: Ladder) -> None:
        self.ladder = ladder
        self.integral = self.budget_w = ladder.full_w
        self.configure(settings, ladder)
        self.last: float | None = None
        self.slope = 0.0

    def configure(self, settings: Thermal, ladder: Ladder) -> None:
        self.ladder = ladder
        self.target_c = settings.target_c
        self.kp = settings.control_kp
        self.ki = settings.control_ki
        self.kd = settings.control_kd
        self.lo, self.hi = ladder.floor_w, ladder.full_w
        self.integral = min(self.hi, max(self.lo, self.integral))

    def update(self, celsius: float, dt: float) -> float:
        error = self.target_c - celsius
        if self.last is not None and dt > 0:
            self.slope += min(1.0, dt / 10.0) * ((celsius - self.last) / dt - self.slope)
        self.last = celsius
        self.integral = min(self.hi, max(self.lo, self.integral + self.ki * error * dt))
        budget = self.integral + self.kp * error - self.kd * self.slope
        self.budget_w = min(self.hi, max(self.lo, budget))
        return self.budget_w

    def reset(self, budget_w: float) -> None:
        self.integral = self.budget_w = min(self.hi, max(self.lo, budget_w))
        self.last = None
        self.slope = 0.0

    def run(self, temperatures: list[float], dt: float) -> list[float]:
        """List in, list out: the budget after each reading ``dt`` seconds apart."""
        return [self.update(t, dt) for t in temperatures]


class Controller(Protocol):
    """Temperature in, an operating point for the levers out."""

    budget_w: float

    def update(self, celsius: float, dt: float) -> OperatingPoint: ...

    def floor(self) -> OperatingPoint: ...

    def configure(self, settings: Thermal, ladder: Ladder) -> None: ...


class BudgetController:
    """The heat budget (:class:`~.budget.HeatBudget`) spent down the :class:`~.budget.Ladder`."""

    def __init__(self, settings: Thermal, ladder: Ladder) -> None:
        self.ladder = ladder
        self.budget = HeatBudget(settings, ladder)

    @property
    def budget_w(self) -> float:
        return self.budget.budget_w

    def update(self, celsius: float, dt: float) -> OperatingPoint:
        return self.ladder.spend(self.budget.update(celsius, dt))

    def floor(self) -> OperatingPoint:
        """Sensor lost: the least heat every lever allows (the integral restarts there)."""
        self.budget.reset(self.ladder.floor_w)
        return self.ladder.spend(self.ladder.floor_w)

    def configure(self, settings: Thermal, ladder: Ladder) -> None:
        self.ladder = ladder
        self.budget.configure(settings, ladder)


class FixedRate:
    """No feedback: every lever at full and always the same admitted rate (the
    simulation's ``best_fixed`` policy)."""

    def __init__(self, rate_per_min: float, settings: Thermal, ladder: Ladder) -> None:
        self.rate = rate_per_min
        self.ladder = ladder
        self.configure(settings, ladder)

    def update(self, celsius: float, dt: float) -> OperatingPoint:
        return self.point

    def floor(self) -> OperatingPoint:
        return self.point

    def configure(self, settings: Thermal, ladder: Ladder) -> None:
        self.ladder = ladder
        factor = min(1.0, self.rate / settings.rate_per_min)
        self.point = replace(ladder.points[0], rate_factor=factor)
        self.budget_w = ladder.full_w  # it spends no budget: the fan keeps to its curve
