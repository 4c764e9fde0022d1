"""The policies side by side (:func:`compare`): firmware, no governor, the best fixed rate
found with hindsight, and the governor on the same arrivals; and the robustness sweep over
seeds and ambients (:func:`sweep`). One run is :mod:`.simulate`'s."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

from ..config import Thermal
from .simulate import KIOSK, Hardware, Outcome, Workload, make_requests, run_policy

__all__ = ["compare", "sweep", "sweep_row"]


def compare(
    settings: Thermal,
    hw: Hardware = KIOSK,
    workload: Workload | None = None,
    *,
    rates: Sequence[float] | None = None,
    trace_every_s: float = 0.0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Outcome]:
    """firmware, none, best_fixed (a sweep, with hindsight) and governor on the same arrivals."""
    workload = workload or Workload()
    requests = make_requests(workload)
    note = progress or (lambda _msg: None)

    def run(policy: str, rate: float | None = None) -> Outcome:
        return run_policy(
            policy,
            settings,
            hw,
            requests,
            duration_s=workload.duration_s,
            fixed_rate=rate,
            trace_every_s=trace_every_s,
            patience_s=workload.patience_s,
            workload=workload,
        )

    results: dict[str, Outcome] = {}
    for policy in ("firmware", "none"):
        note(policy)
        results[policy] = run(policy)
    top = min(settings.rate_per_min, workload.per_min)
    sweep_rates = rates or [round(0.5 * k, 2) for k in range(1, int(top * 2) + 1)]
    best = Outcome(throttle_s=math.inf)
    for rate in sweep_rates:
        note(f"fixed {rate:g}/min")
        outcome = run("fixed", rate)
        if _better(outcome, best):
            best = outcome
    if rates is None and best.rate_per_min is not None:  # refine around the best
        for rate in (best.rate_per_min - 0.25, best.rate_per_min + 0.25):
            if 0 < rate <= top:
                outcome = run("fixed", rate)
                if _better(outcome, best):
                    best = outcome
    results["best_fixed"] = best
    note("governor")
    results["governor"] = run("governor")
    return results


def _better(a: Outcome, b: Outcome) -> bool:
    """Best fixed rate: the most tokens without throttling; else the least throttling."""
    if (a.throttle_s == 0) != (b.throttle_s == 0):
        return a.throttle_s == 0
    if a.throttle_s == 0:
        return a.tokens > b.tokens
    return a.throttle_s < b.throttle_s


def sweep(
    settings: Thermal,
    seeds: Sequence[int] = range(1, 11),
    ambients: Sequence[float] = (30.0, 35.0, 40.0, 45.0),
    hw: Hardware = KIOSK,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """The robustness check: every policy over seeds x ambients, one row each."""
    rows = []
    for ambient in ambients:
        for seed in seeds:
            if progress:
                progress(f"{ambient:g} °C, seed {seed}")
            scenario = dataclasses.replace(hw, ambient_c=ambient)
            rows.append(sweep_row(ambient, seed, compare(settings, scenario, Workload(seed=seed))))
    return rows


def sweep_row(ambient: float, seed: int, results: dict[str, Outcome]) -> dict[str, Any]:
    """One scenario of the sweep: what each policy made, threw away and kept waiting."""
    return {"ambient_c": ambient, "seed": seed} | {
        name: {
            "tokens": o.tokens,
            "throttle_s": o.throttle_s,
            "voice_refused": o.voice_refused,
            "p95_wait_voice_s": o.p95_wait_voice_s,
        }
        for name, o in results.items()
    }
