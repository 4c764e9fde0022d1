"""The simulated Pi 5: two thermal nodes, the firmware's throttle, power and speed.

The die (small heat capacity, what the SoC sensor reads) sits on the board with its
heatsink (large capacity), cooled to the ambient air through a conductance that grows with
fan duty. Between 80 and 85 °C the firmware cuts the ARM clock and ignores cpufreq caps;
below 80 °C the governor's cap holds. Power and speed follow the clock, the threads and the
pacing the governor sets. Parameters and their sources are in :class:`Hardware` and
docs/thermal.md; :func:`calibration` checks them against the published figures.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from ..config import Thermal
from .actors import Intensity
from .budget import DECODE_THREAD_SPEED, decode_speed
from .fan import FanCurve, NoFan

__all__ = [
    "ACTIVE_COOLER",
    "BARE_BOARD",
    "KIOSK",
    "Board",
    "Hardware",
    "SimClockCap",
    "SimFan",
    "SimThermometer",
    "calibration",
]

SOFT_LIMIT_C = 80.0  # firmware starts cutting the ARM clock (frequency-management.adoc)
HARD_LIMIT_C = 85.0  # ARM and GPU at their floor
F_MAX_GHZ = 2.4
F_MIN_GHZ = 1.5
STEP_S = 0.25  # integration step; the die's time constant is ~3 s


#: aggregate decode tokens/s of 1..4 answers decoded together over one alone
#: (docs/performance.md); what a batch step costs follows from it (:meth:`Board.power`)
BATCH_SPEEDUP = (1.0, 1.31, 1.38, 1.68)


@dataclass(frozen=True)
class Hardware:
    """A Pi 5, its cooling and the air around it. Watts, kelvin, joules, seconds.

    Calibrated against published figures (../shared/pi5-facts.md), checked by
    :func:`calibration`: bare board idle 45-50 °C and throttled at 85-89 °C under full
    load; Active Cooler 60-72 °C under full load; decode ~6.4 W, full load ~11 W.
    """

    name: str
    ambient_c: float = 25.0
    #: board power: idle, and what each kind of work adds at 2.4 GHz on all four cores
    idle_w: float = 2.7
    prefill_core_w: float = 7.3  # all four cores computing (full load ~11 W)
    prefill_mem_w: float = 1.0
    decode_core_w: float = 2.2  # decode is memory-bound: ~6.4 W board in total
    decode_mem_w: float = 1.5
    #: core power ~ f * V^2 with voltage tracking frequency: exponent 2 in f
    core_power_exp: float = 2.0
    #: speed at 2.4 GHz and how it scales with clock (decode is bandwidth-bound)
    decode_tok_s: float = 25.8  # Qwen2.5-0.5B Q4_K_M, 4 threads (llama.cpp#26484)
    prefill_tok_s: float = 150.0
    decode_clock_exp: float = 0.5  # 1.5 GHz -> 79 % speed (estimate 18-23 of 25.8)
    prefill_clock_exp: float = 1.0
    #: threads: decode speed by thread count (an assumption, see budget.py); prompt
    #: evaluation is compute-bound, linear in threads; core power linear in threads
    cores: int = 4
    decode_thread_speed: tuple[float, ...] = DECODE_THREAD_SPEED
    #: answers decoded together (llm.parallel), and the aggregate decode speed of 1, 2, 3,
    #: 4 answers together over one alone: measured with `bench api --peer` (performance.md)
    slots: int = 2
    batch_speedup: tuple[float, ...] = BATCH_SPEEDUP
    #: two thermal nodes
    die_j_per_k: float = 2.0
    die_to_board_k_per_w: float = 1.5
    board_j_per_k: float = 30.0
    #: board -> air conductance (W/K) with the fan off, and what full duty adds
    still_air_w_per_k: float = 0.147
    fan_w_per_k: float = 0.0
    #: the fan sits on the fan header, driven by the kernel's own curve even with no daemon
    #: (the Active Cooler); False: a GPIO case fan that only a daemon drives
    fan_header: bool = False

    def conductance(self, duty: float) -> float:
        return self.still_air_w_per_k + self.fan_w_per_k * duty

    def speedup(self, lanes: int) -> float:
        """Aggregate decode speed of ``lanes`` answers together over one alone (the last
        measured figure beyond the table)."""
        return self.batch_speedup[max(1, min(lanes, len(self.batch_speedup))) - 1]


#: No heatsink, no fan, room air.
BARE_BOARD = Hardware("bare board")
#: The official Active Cooler (heatsink + fan on the fan header) in room air.
ACTIVE_COOLER = Hardware("active cooler", still_air_w_per_k=0.2, fan_w_per_k=0.69, fan_header=True)
#: The scenario the comparison runs: a sealed kiosk cabinet at 40 °C inside, the Pi 5 with
#: a small case fan on a GPIO pin. The fan helps, but not enough for continuous LLM work.
KIOSK = Hardware("kiosk", ambient_c=40.0, fan_w_per_k=0.04)


class SimClockCap:
    """cpufreq's cap on the simulated board (the :class:`~.actors.ClockCap` interface)."""

    available = True
    problem = ""

    def __init__(self) -> None:
        self.mhz: int | None = round(F_MAX_GHZ * 1000)

    def set(self, mhz: int) -> None:
        self.mhz = mhz

    def close(self) -> None:
        self.mhz = round(F_MAX_GHZ * 1000)


class Board:
    """The thermal model: state, physics, the firmware's throttle, the governor's levers."""

    def __init__(self, hw: Hardware) -> None:
        self.hw = hw
        # start at idle equilibrium with the fan off
        r_air = 1.0 / hw.conductance(0.0)
        self.board_c = hw.ambient_c + hw.idle_w * r_air
        self.die_c = self.board_c + hw.idle_w * hw.die_to_board_k_per_w
        self.duty = 0.0
        self.clock_ghz = F_MAX_GHZ
        self.cap = SimClockCap()
        self.intensity = Intensity(hw.cores, hw.cores)

    def firmware(self) -> None:
        """Soft zone: the clock falls in 100 MHz steps from 2.4 GHz at 80 °C to 1.5 at 85,
        whatever cpufreq says; below 80 °C the cpufreq cap holds."""
        over = (self.die_c - SOFT_LIMIT_C) / (HARD_LIMIT_C - SOFT_LIMIT_C)
        if over >= 0:
            f = F_MAX_GHZ - min(1.0, over) * (F_MAX_GHZ - F_MIN_GHZ)
            self.clock_ghz = math.ceil(round(f * 10, 6)) / 10
        else:
            self.clock_ghz = min(F_MAX_GHZ, (self.cap.mhz or 2400) / 1000)

    def power(self, phase: str, lanes: int = 1) -> float:
        """Board watts of ``phase``; ``lanes`` answers decoding together. A batch step
        reads the weights once (memory energy per step as one answer's) and does every
        answer's arithmetic (core energy per step x lanes) in ``lanes / speed-up`` of one
        answer's step time: core power x speed-up, memory power x speed-up / lanes."""
        hw, ratio = self.hw, self.clock_ghz / F_MAX_GHZ
        core = float(ratio**hw.core_power_exp)
        state = self.intensity.state
        if phase == "prefill":
            share = state.batch_threads / hw.cores
            return (
                hw.idle_w + hw.prefill_core_w * core * share + hw.prefill_mem_w * self.speed(phase)
            )
        if phase == "decode":
            share = state.decode_threads / hw.cores
            n = max(1, min(lanes, len(hw.batch_speedup)))  # lanes the table measured
            gain = hw.speedup(n)
            work = hw.decode_core_w * core * share * gain
            work += hw.decode_mem_w * self.speed(phase) * gain / n
            return hw.idle_w + work * state.pacing
        return hw.idle_w

    def speed(self, phase: str) -> float:
        """Fraction of the 2.4 GHz, all-threads speed (before pacing)."""
        ratio = self.clock_ghz / F_MAX_GHZ
        state = self.intensity.state
        if phase == "decode":
            threads = decode_speed(state.decode_threads, self.hw.cores, self.hw.decode_thread_speed)
            return float(ratio**self.hw.decode_clock_exp) * threads
        return float(ratio**self.hw.prefill_clock_exp) * state.batch_threads / self.hw.cores

    def step(self, watts: float, dt: float) -> None:
        hw = self.hw
        to_board = (self.die_c - self.board_c) / hw.die_to_board_k_per_w
        to_air = (self.board_c - hw.ambient_c) * hw.conductance(self.duty)
        self.die_c += (watts - to_board) * dt / hw.die_j_per_k
        self.board_c += (to_board - to_air) * dt / hw.board_j_per_k


class SimThermometer:
    source = "simulated die sensor"

    def __init__(self, board: Board) -> None:
        self.board = board

    def read(self) -> float:
        return round(self.board.die_c, 1)  # the sysfs sensor's resolution is coarse


class SimFan(NoFan):
    """Sets the model's airflow instead of a pin."""

    name = "simulated"

    def __init__(self, board: Board) -> None:
        super().__init__()
        self.board = board

    def set(self, duty: float) -> None:
        super().set(duty)
        self.board.duty = self.duty


def calibration() -> list[tuple[str, str, float, float]]:
    """The model under published conditions: (case, published, model mean, model peak)."""
    cases = [
        ("bare board, idle", "45-50 °C", BARE_BOARD, "idle"),
        ("bare board, full load", "avg 81, peak 85-89 °C, throttled", BARE_BOARD, "prefill"),
        ("bare board, LLM decode", "none published (6.4 W load)", BARE_BOARD, "decode"),
        ("active cooler, full load", "avg 56-61, peak 72 °C", ACTIVE_COOLER, "prefill"),
        ("active cooler, LLM decode", "~25 tok/s sustained", ACTIVE_COOLER, "decode"),
    ]
    rows = []
    settings = Thermal()
    for name, published, hw, phase in cases:
        board = Board(hw)
        curve_fan = SimFan(board)
        curve = FanCurve(settings.fan_curve, settings.fan_hysteresis_c)
        temps = []
        for i in range(round(1800 / STEP_S)):
            if hw.fan_w_per_k and i % round(1 / STEP_S) == 0:  # the fan curve, once a second
                curve_fan.set(curve.update(board.die_c))
            board.firmware()
            board.step(board.power(phase), STEP_S)
            temps.append(board.die_c)
        tail = temps[len(temps) // 2 :]
        rows.append((name, published, statistics.fmean(tail), max(temps)))
    return rows
