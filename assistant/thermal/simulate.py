"""One simulated hour of a Pi 5 under more requests than it can serve.

The proof that the governor works, without a Pi. Everything the daemon runs is real
code here — :class:`~assistant.thermal.governor.Governor`, its heat budget and ladder,
the fan curve, :class:`~assistant.thermal.admission.Admission` with its bucket, queue and
wait limit, and the :class:`~assistant.thermal.actors.Intensity` the engine reads. The
simulation replaces only the thermometer (it reads the model's die temperature), the fan
(it sets the model's airflow), the clock cap (it sets the model's clock) and the clock
(simulated seconds). The board itself is :mod:`.board`, what arrives :mod:`.workload`;
the reports are :mod:`.report`.

Policies, on the same arrivals: ``firmware`` (no daemon: the kernel's fan curve on the fan
header, every request queued, the throttle the only limit), ``none`` (the daemon with no
governor), ``best_fixed`` (every lever at full and the best fixed rate, with hindsight) and
``governor``. Clients give up after ``api.queue_timeout_s`` in the queue, under every policy.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import Thermal
from .admission import Admission, Busy, Priority, Ticket
from .board import (
    ACTIVE_COOLER,
    BARE_BOARD,
    KIOSK,
    SOFT_LIMIT_C,
    STEP_S,
    Board,
    Hardware,
    SimFan,
    SimThermometer,
    calibration,
)
from .budget import FixedRate
from .fan import FanCurve
from .governor import Governor
from .workload import PATIENCE_S, Microphone, Request, Workload, make_requests

__all__ = [
    "ACTIVE_COOLER",
    "BARE_BOARD",
    "KIOSK",
    "PATIENCE_S",
    "POLICIES",
    "Board",
    "Hardware",
    "Outcome",
    "Request",
    "Workload",
    "calibration",
    "make_requests",
    "percentile",
    "run_policy",
]

POLICIES = ("firmware", "none", "best_fixed", "governor")


@dataclass
class Outcome:
    """What one policy did over the run."""

    served: int = 0
    tokens: int = 0
    voice_served: int = 0
    voice_refused: int = 0
    api_refused: int = 0  # refused at the door or gave up waiting
    throttle_s: float = 0.0
    p50_wait_voice_s: float = 0.0
    p95_wait_voice_s: float = 0.0
    p50_wait_api_s: float = 0.0
    p95_wait_api_s: float = 0.0
    tok_s_cv: float = 0.0
    j_per_token: float = 0.0
    mean_tok_s: float = 0.0
    max_c: float = 0.0
    mean_c: float = 0.0
    mean_fan: float = 0.0
    rate_per_min: float | None = None  # the fixed rate, for best_fixed
    #: (minute, °C, fan 0-1, admitted/min, tok/s, budget W, threads, mean clock GHz, pacing,
    #:  refused in the window, mean wait of the requests started in the window)
    trace: list[tuple[float, ...]] = field(default_factory=list)

    @property
    def refused(self) -> int:
        return self.voice_refused + self.api_refused

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
    first_at: float | None = None


class _Run:
    """One policy over one arrival sequence, stepped ``STEP_S`` at a time."""

    def __init__(
        self,
        policy: str,
        settings: Thermal,
        hw: Hardware,
        requests: Sequence[Request],
        *,
        fixed_rate: float | None,
        patience_s: float,
        workload: Workload | None,
    ) -> None:
        self.hw = hw
        self.clock = _SimClock()
        self.board = Board(hw)
        self.patience_s = patience_s
        self.wait_limit: float | None = patience_s
        if policy in ("none", "firmware"):  # nothing paces: the bucket never runs dry
            settings = dataclasses.replace(settings, rate_per_min=600.0, burst=100)
        if policy == "firmware":  # no daemon: every request is queued
            settings = dataclasses.replace(settings, queue_size=1_000_000)
            self.wait_limit = None
        self.settings = settings
        self.admission = Admission(
            settings, clock=self.clock, slots=hw.slots, hot_slots=settings.hot_parallel
        )  # the governor widens it while the heat budget binds
        self.governor: Governor | None = None
        self.kernel_fan: FanCurve | None = None
        if policy in ("fixed", "governor"):
            self.governor = Governor(
                settings,
                SimThermometer(self.board),
                SimFan(self.board),
                self.admission,
                intensity=self.board.intensity,
                clock_cap=self.board.cap,  # type: ignore[arg-type]
                clock=self.clock,
            )
            if fixed_rate is not None:
                self.governor.controller = FixedRate(fixed_rate, settings, self.governor.ladder)
        elif hw.fan_header:  # the kernel drives the Active Cooler with or without a daemon
            self.kernel_fan = FanCurve(Thermal().fan_curve, Thermal().fan_hysteresis_c)
        self.fan = SimFan(self.board)
        self.pending = list(reversed(requests))
        self.mics = (
            [Microphone(workload, i) for i in range(workload.microphones)] if workload else []
        )
        self.queued: dict[int, tuple[Ticket, Request]] = {}
        self.jobs: list[_Job] = []
        self.out = Outcome(rate_per_min=fixed_rate)
        self.waits: dict[Priority, list[float]] = {Priority.VOICE: [], Priority.API: []}
        self.speeds: list[float] = []
        self.tokens = 0.0
        self.lanes = 0  # answers in the last decode step
        self.joules = 0.0
        self.window = [0.0, 0, 0.0, 0, 0.0]  # tokens, refused, waits summed, started, GHz·s

    def _refuse(self, request: Request) -> None:
        if request.priority is Priority.VOICE:
            self.out.voice_refused += 1
        else:
            self.out.api_refused += 1
        self.window[1] += 1
        self._heard(request, None)

    def _heard(self, request: Request, first_at: float | None) -> None:
        if request.microphone >= 0:  # that person may ask again
            self.mics[request.microphone].heard(request, first_at, self.clock.now)

    def arrivals(self) -> None:
        now = self.clock.now
        due = [q for q in (mic.ask(now) for mic in self.mics) if q is not None]
        while self.pending and self.pending[-1].at <= now:
            due.append(self.pending.pop())
        for request in due:
            try:
                ticket = self.admission.admit(request.priority, wait_limit_s=self.wait_limit)
            except Busy:
                self._refuse(request)
            else:
                ticket.max_tokens = 256
                self.queued[ticket.number] = (ticket, request)

    def give_up(self) -> None:
        """Clients whose wait passed their patience leave the queue."""
        now = self.clock.now
        for number, (ticket, request) in list(self.queued.items()):
            if ticket.started_at is None and now - ticket.admitted_at > self.patience_s:
                del self.queued[number]
                self.admission.release(ticket)
                self._refuse(request)

    def work(self) -> str:
        """Advance the running requests by one step; returns the phase for the power model.

        Like the engine: a prompt is evaluated before the answers decode on (voice first),
        and the answers running together share one decode speed, the measured batch
        speed-up (``hw.batch_speedup``) times the speed of one."""
        started = {id(job.ticket) for job in self.jobs}
        for ticket in list(self.admission.runs):
            if id(ticket) in started:
                continue
            _, request = self.queued.pop(ticket.number)
            self.jobs.append(
                _Job(request, ticket, request.prompt_tokens, request.completion_tokens)
            )
            waited = ticket.waited_s or 0.0
            self.waits[request.priority].append(waited)
            self.window[2] += waited
            self.window[3] += 1
        phase = self.board.intensity.phase  # what the engine tells the governor's clock cap
        if not self.jobs:
            phase("idle")
            return "idle"
        prompts = sorted(
            (j for j in self.jobs if j.prefill_left > 0), key=lambda j: j.ticket.priority
        )
        if prompts:
            phase("prompt")
            prompts[0].prefill_left -= self.hw.prefill_tok_s * self.board.speed("prefill") * STEP_S
            return "prefill"
        phase("decode")
        lanes = sorted(self.jobs, key=lambda j: (j.ticket.priority, j.ticket.number))
        api = sum(1 for j in lanes if j.ticket.priority is Priority.API)
        lanes = lanes[: max(self.hw.slots, api)]  # voice past the slots pauses an API answer
        self.lanes = len(lanes)
        speedup = self.hw.speedup(len(lanes))
        tok_s = self.hw.decode_tok_s * self.board.speed("decode") * speedup / len(lanes)
        tok_s *= self.board.intensity.state.pacing
        for job in lanes:
            made = min(job.decode_left, tok_s * STEP_S)
            if job.first_at is None:
                job.first_at = self.clock.now
            job.decode_left -= made
            job.decode_s += made / tok_s
            self.tokens += made
            self.window[0] += made
            done = job.request.completion_tokens - job.decode_left
            job.ticket.progress(math.floor(done), self.clock.now)
            if job.decode_left <= 1e-9:
                self.out.served += 1
                if job.request.priority is Priority.VOICE:
                    self.out.voice_served += 1
                self.speeds.append(job.request.completion_tokens / job.decode_s)
                self.admission.release(job.ticket)
                self.jobs.remove(job)
                self._heard(job.request, job.first_at)
        return "decode"

    def run(self, duration_s: float, trace_every_s: float) -> Outcome:
        out, board = self.out, self.board
        steps = round(duration_s / STEP_S)
        per_s = round(1 / STEP_S)
        next_tick = next_trace = 0.0
        sum_c = sum_fan = 0.0
        for i in range(steps):
            self.clock.now = now = i * STEP_S
            if self.governor and now >= next_tick - 1e-9:
                self.governor.tick()
                next_tick += self.settings.interval_s
            if self.kernel_fan is not None and i % per_s == 0:
                self.fan.set(self.kernel_fan.update(board.die_c))
            if i % per_s == 0:
                self.give_up()
            board.firmware()
            self.arrivals()
            watts = board.power(self.work(), self.lanes)
            board.step(watts, STEP_S)
            self.joules += watts * STEP_S
            self.window[4] += board.clock_ghz * STEP_S
            if board.die_c >= SOFT_LIMIT_C:
                out.throttle_s += STEP_S
            out.max_c = max(out.max_c, board.die_c)
            sum_c += board.die_c
            sum_fan += board.duty
            if trace_every_s and now >= next_trace - 1e-9:
                self._trace(now, trace_every_s)
                next_trace += trace_every_s
        out.tokens = round(self.tokens)
        out.mean_c = sum_c / steps
        out.mean_fan = sum_fan / steps
        out.j_per_token = self.joules / max(1.0, self.tokens)
        if self.speeds:
            out.mean_tok_s = statistics.fmean(self.speeds)
            out.tok_s_cv = statistics.pstdev(self.speeds) / out.mean_tok_s
        voice, api = self.waits[Priority.VOICE], self.waits[Priority.API]
        out.p50_wait_voice_s = percentile(voice, 0.5)
        out.p95_wait_voice_s = percentile(voice, 0.95)
        out.p50_wait_api_s, out.p95_wait_api_s = percentile(api, 0.5), percentile(api, 0.95)
        return out

    def _trace(self, now: float, every_s: float) -> None:
        board, gov = self.board, self.governor
        tokens, refused, waits, started, ghz_s = self.window
        state = board.intensity.state
        budget = gov.controller.budget_w if isinstance(gov, Governor) else math.nan
        if gov is not None and isinstance(gov.controller, FixedRate):
            budget = math.nan  # a fixed rate spends no budget
        self.out.trace.append(
            (
                now / 60,
                board.die_c,
                board.duty,
                self.admission.bucket.rate_per_min if gov else math.nan,
                tokens / every_s,
                budget,
                state.decode_threads,
                ghz_s / every_s if now else board.clock_ghz,
                state.pacing,
                refused,
                waits / started if started else math.nan,
            )
        )
        self.window = [0.0, 0, 0.0, 0, 0.0]


class _SimClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_policy(
    policy: str,
    settings: Thermal,
    hw: Hardware,
    requests: Sequence[Request],
    *,
    duration_s: float = 3600.0,
    fixed_rate: float | None = None,
    trace_every_s: float = 0.0,
    patience_s: float = PATIENCE_S,
    workload: Workload | None = None,
) -> Outcome:
    """Run ``firmware``, ``none``, ``fixed`` (every lever at full and a fixed rate instead of
    the budget) or ``governor`` over ``requests``, and the people at ``workload``'s
    microphones."""
    if (policy == "fixed") != (fixed_rate is not None):
        raise ValueError("fixed_rate goes with policy 'fixed' and only with it")
    run = _Run(
        policy, settings, hw, requests, fixed_rate=fixed_rate, patience_s=patience_s,
        workload=workload,
    )  # fmt: skip
    return run.run(duration_s, trace_every_s)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]
