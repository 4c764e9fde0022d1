"""One simulated hour of a Pi 5 under more requests than it can serve.

The proof that the governor works, without a Pi. Everything the daemon runs is real
code here — :class:`~assistant.thermal.governor.Governor`, its PI controller, the fan
curve, :class:`~assistant.thermal.admission.Admission` with its token bucket and
priority queue. The simulation replaces only the thermometer (it reads the model's die
temperature), the fan (it sets the model's airflow) and the clock (simulated seconds).

The thermal model has two nodes: the die (small heat capacity, what the SoC sensor
reads) and the board with its heatsink (large capacity), cooled to the ambient air
through a conductance that grows with fan duty. The firmware throttles the ARM clock
between 80 and 85 °C; a lower clock means less heat and fewer tokens/s. Parameters and
their sources are in :class:`Hardware` and docs/thermal.md.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import Thermal
from ..errors import AssistantError
from .admission import Admission, Busy, Priority, Ticket
from .fan import FanCurve, NoFan
from .governor import FixedRate, Governor

__all__ = [
    "ACTIVE_COOLER",
    "BARE_BOARD",
    "KIOSK",
    "Hardware",
    "Outcome",
    "Request",
    "Workload",
    "calibration",
    "compare",
    "make_requests",
    "run_policy",
]

SOFT_LIMIT_C = 80.0  # firmware starts cutting the ARM clock (frequency-management.adoc)
HARD_LIMIT_C = 85.0  # ARM and GPU at their floor
F_MAX_GHZ = 2.4
F_MIN_GHZ = 1.5
STEP_S = 0.25  # integration step; the die's time constant is ~3 s


@dataclass(frozen=True)
class Hardware:
    """A Pi 5, its cooling and the air around it. Watts, kelvin, joules, seconds.

    Calibrated against published figures (../shared/pi5-facts.md), checked by
    :func:`calibration`: bare board idle 45-50 °C and throttled at 85-89 °C under full
    load; Active Cooler 60-72 °C under full load; decode ~6.4 W, full load ~11 W.
    """

    name: str
    ambient_c: float = 25.0
    #: board power: idle, and what each kind of work adds at 2.4 GHz
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
    #: two thermal nodes
    die_j_per_k: float = 2.0
    die_to_board_k_per_w: float = 1.5
    board_j_per_k: float = 30.0
    #: board -> air conductance (W/K) with the fan off, and what full duty adds
    still_air_w_per_k: float = 0.147
    fan_w_per_k: float = 0.0

    def conductance(self, duty: float) -> float:
        return self.still_air_w_per_k + self.fan_w_per_k * duty


#: No heatsink, no fan, room air.
BARE_BOARD = Hardware("bare board")
#: The official Active Cooler (heatsink + fan on the fan header) in room air.
ACTIVE_COOLER = Hardware("active cooler", still_air_w_per_k=0.2, fan_w_per_k=0.69)
#: The scenario the comparison runs: a sealed kiosk cabinet at 40 °C inside, the Pi 5 with
#: a small case fan on a GPIO pin. The fan helps, but not enough for continuous LLM work.
KIOSK = Hardware("kiosk", ambient_c=40.0, fan_w_per_k=0.04)


@dataclass(frozen=True)
class Request:
    at: float  # arrival, simulated seconds
    priority: Priority
    prompt_tokens: int  # to prefill (voice: only the new turn; the system prompt is cached)
    completion_tokens: int


@dataclass(frozen=True)
class Workload:
    """Arrivals: Poisson, more than the device can serve."""

    per_min: float = 12.0
    voice_share: float = 0.3
    voice_prompt: tuple[int, int] = (15, 40)
    api_prompt: tuple[int, int] = (100, 400)  # stateless API: the whole history again
    completion: tuple[int, int] = (32, 256)
    duration_s: float = 3600.0
    seed: int = 1


def make_requests(workload: Workload) -> list[Request]:
    rng = random.Random(workload.seed)  # noqa: S311 (a simulation, not cryptography)
    requests: list[Request] = []
    now = 0.0
    while True:
        now += rng.expovariate(workload.per_min / 60.0)
        if now >= workload.duration_s:
            return requests
        voice = rng.random() < workload.voice_share
        lo, hi = workload.voice_prompt if voice else workload.api_prompt
        requests.append(
            Request(
                at=now,
                priority=Priority.VOICE if voice else Priority.API,
                prompt_tokens=rng.randint(lo, hi),
                completion_tokens=rng.randint(*workload.completion),
            )
        )


class Board:
    """The thermal model: state, physics, and the firmware's throttle."""

    def __init__(self, hw: Hardware) -> None:
        self.hw = hw
        # start at idle equilibrium with the fan off
        r_air = 1.0 / hw.conductance(0.0)
        self.board_c = hw.ambient_c + hw.idle_w * r_air
        self.die_c = self.board_c + hw.idle_w * hw.die_to_board_k_per_w
        self.duty = 0.0
        self.clock_ghz = F_MAX_GHZ

    def firmware(self) -> None:
        """Soft zone: the clock falls in 100 MHz steps from 2.4 GHz at 80 °C to 1.5 at 85."""
        over = (self.die_c - SOFT_LIMIT_C) / (HARD_LIMIT_C - SOFT_LIMIT_C)
        f = F_MAX_GHZ - max(0.0, min(1.0, over)) * (F_MAX_GHZ - F_MIN_GHZ)
        self.clock_ghz = math.ceil(round(f * 10, 6)) / 10

    def power(self, phase: str) -> float:
        hw, ratio = self.hw, self.clock_ghz / F_MAX_GHZ
        core = float(ratio**hw.core_power_exp)
        if phase == "prefill":
            return hw.idle_w + hw.prefill_core_w * core + hw.prefill_mem_w * self.speed(phase)
        if phase == "decode":
            return hw.idle_w + hw.decode_core_w * core + hw.decode_mem_w * self.speed(phase)
        return hw.idle_w

    def speed(self, phase: str) -> float:
        """Fraction of the 2.4 GHz speed at the current clock."""
        ratio = self.clock_ghz / F_MAX_GHZ
        exp = self.hw.decode_clock_exp if phase == "decode" else self.hw.prefill_clock_exp
        return float(ratio**exp)

    def step(self, watts: float, dt: float) -> None:
        hw = self.hw
        to_board = (self.die_c - self.board_c) / hw.die_to_board_k_per_w
        to_air = (self.board_c - hw.ambient_c) * hw.conductance(self.duty)
        self.die_c += (watts - to_board) * dt / hw.die_j_per_k
        self.board_c += (to_board - to_air) * dt / hw.board_j_per_k


class SimClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


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


@dataclass
class Outcome:
    """What one policy did over the run; the first five fields are the headline."""

    served: int = 0
    tokens: int = 0
    throttle_s: float = 0.0
    tok_s_cv: float = 0.0
    p95_wait_s: float = 0.0
    rejected: int = 0
    mean_tok_s: float = 0.0
    max_c: float = 0.0
    mean_c: float = 0.0
    mean_fan: float = 0.0
    rate_per_min: float | None = None  # the fixed rate, for best_fixed
    trace: list[tuple[float, float, float, float, float]] = field(default_factory=list)

    def headline(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("trace")
        if self.rate_per_min is None:
            d.pop("rate_per_min")
        return d


@dataclass
class _Job:
    request: Request
    ticket: Ticket
    prefill_left: float
    decode_left: float
    decode_s: float = 0.0


class _Run:
    """One policy over one arrival sequence, stepped ``STEP_S`` at a time."""

    def __init__(
        self,
        policy: str,
        settings: Thermal,
        hw: Hardware,
        requests: Sequence[Request],
        fixed_rate: float | None,
    ) -> None:
        self.hw = hw
        self.clock = SimClock()
        self.board = Board(hw)
        if policy == "none":  # no governor: the fan stays off, the bucket never runs dry
            settings = dataclasses.replace(settings, rate_per_min=600.0, burst=100)
        self.settings = settings
        self.admission = Admission(settings, clock=self.clock)
        self.governor: Governor | None = None
        if policy != "none":
            controller = FixedRate(fixed_rate) if fixed_rate is not None else None
            self.governor = Governor(
                settings,
                SimThermometer(self.board),
                SimFan(self.board),
                self.admission,
                controller=controller,
                clock=self.clock,
            )
        self.pending = list(reversed(requests))
        self.by_ticket: dict[int, Request] = {}
        self.job: _Job | None = None
        self.out = Outcome(rate_per_min=fixed_rate)
        self.waits: list[float] = []
        self.speeds: list[float] = []
        self.tokens = 0.0
        self.window_tokens = 0.0

    def arrivals(self) -> None:
        while self.pending and self.pending[-1].at <= self.clock.now:
            request = self.pending.pop()
            try:
                ticket = self.admission.admit(request.priority)
            except Busy:
                self.out.rejected += 1
            else:
                self.by_ticket[ticket.number] = request

    def work(self) -> str:
        """Advance the running request by one step; returns the phase for the power model."""
        ticket = self.admission.running
        if self.job is None and ticket is not None:
            request = self.by_ticket.pop(ticket.number)
            self.job = _Job(request, ticket, request.prompt_tokens, request.completion_tokens)
            self.waits.append(ticket.waited_s or 0.0)
        job = self.job
        if job is None:
            return "idle"
        if job.prefill_left > 0:
            job.prefill_left -= self.hw.prefill_tok_s * self.board.speed("prefill") * STEP_S
            return "prefill"
        tok_s = self.hw.decode_tok_s * self.board.speed("decode")
        made = min(job.decode_left, tok_s * STEP_S)
        job.decode_left -= made
        job.decode_s += made / tok_s
        self.tokens += made
        self.window_tokens += made
        if job.decode_left <= 1e-9:
            self.out.served += 1
            self.speeds.append(job.request.completion_tokens / job.decode_s)
            self.admission.release(job.ticket)
            self.job = None
        return "decode"

    def run(self, duration_s: float, trace_every_s: float) -> Outcome:
        out, board = self.out, self.board
        steps = round(duration_s / STEP_S)
        next_tick = next_trace = 0.0
        sum_c = sum_fan = 0.0
        for i in range(steps):
            self.clock.now = now = i * STEP_S
            if self.governor and now >= next_tick - 1e-9:
                self.governor.tick()
                next_tick += self.settings.interval_s
            board.firmware()
            self.arrivals()
            board.step(board.power(self.work()), STEP_S)
            if board.die_c >= SOFT_LIMIT_C:
                out.throttle_s += STEP_S
            out.max_c = max(out.max_c, board.die_c)
            sum_c += board.die_c
            sum_fan += board.duty
            if trace_every_s and now >= next_trace - 1e-9:
                rate = self.admission.bucket.rate_per_min if self.governor else math.nan
                tok_s = self.window_tokens / trace_every_s
                out.trace.append((now, board.die_c, board.duty, rate, tok_s))
                self.window_tokens = 0.0
                next_trace += trace_every_s
        out.tokens = round(self.tokens)
        out.mean_c = sum_c / steps
        out.mean_fan = sum_fan / steps
        if self.speeds:
            out.mean_tok_s = statistics.fmean(self.speeds)
            out.tok_s_cv = statistics.pstdev(self.speeds) / out.mean_tok_s
        if self.waits:
            out.p95_wait_s = _percentile(self.waits, 0.95)
        return out


def run_policy(
    policy: str,
    settings: Thermal,
    hw: Hardware,
    requests: Sequence[Request],
    *,
    duration_s: float = 3600.0,
    fixed_rate: float | None = None,
    trace_every_s: float = 0.0,
) -> Outcome:
    """Run ``none`` (no governor: fan off, every request admitted while the queue has room),
    ``fixed`` (the governor with a fixed rate instead of its controller) or ``governor``."""
    if (policy == "fixed") != (fixed_rate is not None):
        raise ValueError("fixed_rate goes with policy 'fixed' and only with it")
    return _Run(policy, settings, hw, requests, fixed_rate).run(duration_s, trace_every_s)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def compare(
    settings: Thermal,
    hw: Hardware = KIOSK,
    workload: Workload | None = None,
    *,
    rates: Sequence[float] | None = None,
    trace_every_s: float = 0.0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Outcome]:
    """none, best_fixed (a sweep, with hindsight) and the governor on the same arrivals."""
    workload = workload or Workload()
    requests = make_requests(workload)
    results: dict[str, Outcome] = {}
    note = progress or (lambda _msg: None)
    note("none")
    results["none"] = run_policy(
        "none", settings, hw, requests, duration_s=workload.duration_s, trace_every_s=trace_every_s
    )
    sweep = rates or [round(0.25 * k, 2) for k in range(2, int(settings.rate_per_min * 4) + 1)]
    best = Outcome(throttle_s=math.inf)
    for rate in sweep:
        note(f"fixed {rate:g}/min")
        outcome = run_policy(
            "fixed",
            settings,
            hw,
            requests,
            duration_s=workload.duration_s,
            fixed_rate=rate,
            trace_every_s=trace_every_s,
        )
        if _better(outcome, best):
            best = outcome
    results["best_fixed"] = best
    note("governor")
    results["governor"] = run_policy(
        "governor",
        settings,
        hw,
        requests,
        duration_s=workload.duration_s,
        trace_every_s=trace_every_s,
    )
    return results


def _better(a: Outcome, b: Outcome) -> bool:
    """Best fixed rate: the most tokens without throttling; else the least throttling."""
    if (a.throttle_s == 0) != (b.throttle_s == 0):
        return a.throttle_s == 0
    if a.throttle_s == 0:
        return a.tokens > b.tokens
    return a.throttle_s < b.throttle_s


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


def to_json(results: dict[str, Outcome]) -> str:
    keys = ("served", "tokens", "throttle_s", "tok_s_cv", "p95_wait_s")
    policies = {}
    for name, outcome in results.items():
        head = outcome.headline()
        policies[name] = {k: head[k] for k in keys} | {
            k: v for k, v in head.items() if k not in keys
        }
    return json.dumps({"policies": policies}, indent=2)


def render(results: dict[str, Outcome], hw: Hardware, workload: Workload) -> str:
    minutes = workload.duration_s / 60
    lines = [
        f"{minutes:g} simulated minutes · {hw.name} at {hw.ambient_c:g} °C · "
        f"{workload.per_min:g} requests/min arriving ({workload.voice_share:.0%} voice)",
        "",
        f"{'policy':<16}{'served':>7}{'tokens':>8}{'throttle s':>11}{'tok/s cv':>9}"
        f"{'p95 wait s':>11}{'rejected':>9}{'max °C':>8}{'fan':>6}",
    ]
    for name, o in results.items():
        label = f"{name} ({o.rate_per_min:g}/min)" if o.rate_per_min is not None else name
        lines.append(
            f"{label:<16}{o.served:>7}{o.tokens:>8}{o.throttle_s:>11.1f}{o.tok_s_cv:>9.3f}"
            f"{o.p95_wait_s:>11.1f}{o.rejected:>9}{o.max_c:>8.1f}{o.mean_fan:>6.0%}"
        )
    gov, best, none = results["governor"], results["best_fixed"], results["none"]
    if best.tokens and none.tokens:
        lines += [
            "",
            f"governor vs best_fixed tokens: {gov.tokens / best.tokens:.3f} (target >= 0.95); "
            f"vs none: {gov.tokens / none.tokens:.3f}",
        ]
    return "\n".join(lines)


def render_calibration(rows: list[tuple[str, str, float, float]]) -> str:
    lines = [f"{'case (25 °C room, 30 min)':<28}{'published':<36}{'model avg':>10}{'peak':>7}"]
    for name, published, mean, peak in rows:
        lines.append(f"{name:<28}{published:<36}{mean:>10.1f}{peak:>7.1f}")
    return "\n".join(lines)


def check_plotting() -> None:
    """Fail early, in one line, when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise AssistantError(
            "--plot needs matplotlib: pip install 'qwen-assistant[plot]'"
        ) from None


def plot(results: dict[str, Outcome], path: str, hw: Hardware) -> None:
    """Temperature, fan duty, admitted rate and tokens/s over time, one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, figsize=(10, 10), sharex=True)
    for name, outcome in results.items():
        if not outcome.trace:
            continue
        label = f"{name} ({outcome.rate_per_min:g}/min)" if outcome.rate_per_min else name
        t = [row[0] / 60 for row in outcome.trace]
        for ax, col in zip(axes, (1, 2, 3, 4), strict=True):
            values = [row[col] * (100 if col == 2 else 1) for row in outcome.trace]
            ax.plot(t, values, label=label, linewidth=1)
    axes[0].axhline(SOFT_LIMIT_C, color="red", linestyle="--", linewidth=0.8, label="throttle")
    titles = ("SoC °C", "fan duty %", "admitted req/min", "tokens/s (30 s)")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    axes[0].set_title(f"Simulated Pi 5, {hw.name} at {hw.ambient_c:g} °C")
    axes[-1].set_xlabel("minutes")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        raise AssistantError(f"{path}: cannot write the plot: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
