"""``simulate``: an hour of a Pi 5 under overload, the real governor against a thermal model."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ._base import Add, Progress, bounded, load

__all__ = ["register"]


def register(top: Any, add: Add) -> None:
    sim = add(
        top,
        "simulate",
        "Simulate an hour of a Pi 5 under overload: firmware alone, no governor, best fixed "
        "rate and the governor.",
        cmd_simulate,
        "Run the real governor (heat budget, levers, fan curve, admission) against a thermal "
        "model of a Pi 5 with more requests arriving than it can serve, and compare it with "
        "the firmware alone (no daemon), the daemon without a governor and the best fixed "
        "rate (found by a sweep, with hindsight). Uses the [thermal] settings of the config. "
        "The model, its calibration and the targets: docs/thermal.md.",
    )
    sim.add_argument("--json", action="store_true", help="print one JSON object")
    sim.add_argument(
        "--plot",
        metavar="FILE.png",
        help="draw temperature, fan, tokens/s, budget, clock, waits and refusals",
    )
    sim.add_argument(
        "--sweep",
        action="store_true",
        help="the robustness check: seeds 1-10 x ambients 30/35/40/45 °C (several minutes)",
    )
    sim.add_argument(
        "--seeds",
        type=bounded(int, 1, 100),
        default=10,
        metavar="N",
        help="with --sweep: seeds 1-N (default 10)",
    )
    sim.add_argument(
        "--cooling",
        choices=("kiosk", "bare", "active-cooler"),
        default="kiosk",
        help="kiosk: sealed cabinet, small GPIO case fan (default); bare: no heatsink, "
        "fan off; active-cooler: the official cooler",
    )
    sim.add_argument(
        "--ambient",
        type=bounded(float, -20.0, 60.0),
        metavar="C",
        help="air temperature around the board, °C (default: 40 for kiosk, else 25)",
    )
    sim.add_argument(
        "--demand",
        type=bounded(float, 0.1, 600.0),
        default=8.4,
        metavar="N",
        help="API requests arriving per minute (default 8.4)",
    )
    sim.add_argument(
        "--satellites",
        type=bounded(int, 0, 16),
        default=0,
        metavar="N",
        help="Wyoming satellites: a microphone each, beside the device's own (default 0)",
    )
    sim.add_argument(
        "--minutes",
        type=bounded(float, 1.0, 1440.0),
        default=60.0,
        metavar="M",
        help="simulated minutes (default 60)",
    )
    sim.add_argument("--seed", type=int, default=1, help="arrival sequence seed (default 1)")
    sim.add_argument(
        "--calibration",
        action="store_true",
        help="only show the thermal model against the published Pi 5 figures",
    )


def cmd_simulate(args: argparse.Namespace) -> int:
    import dataclasses

    from ..thermal import report
    from ..thermal import simulate as sim
    from ..thermal.policies import compare, sweep

    if args.calibration:
        print(report.render_calibration(sim.calibration()))
        return 0
    hw = {"kiosk": sim.KIOSK, "bare": sim.BARE_BOARD, "active-cooler": sim.ACTIVE_COOLER}[
        args.cooling
    ]
    if args.ambient is not None:
        hw = dataclasses.replace(hw, ambient_c=args.ambient)
    workload = sim.Workload(
        per_min=args.demand, microphones=1 + args.satellites, duration_s=args.minutes * 60,
        seed=args.seed,
    )  # fmt: skip
    settings = load(args).thermal
    if args.sweep:
        seeds = range(1, args.seeds + 1)
        total = 4 * len(seeds)
        progress = Progress("simulating", total) if sys.stderr.isatty() and not args.json else None
        rows = sweep(settings, seeds, hw=hw, progress=progress.step if progress else None)
        if progress:
            progress.done()
        print(json.dumps({"sweep": rows}, indent=2) if args.json else report.render_sweep(rows))
        return 0
    if args.plot:
        report.check_plotting()
    results = compare(settings, hw, workload, trace_every_s=30.0 if args.plot else 0.0)
    print(report.to_json(results) if args.json else report.render(results, hw, workload))
    if args.plot:
        report.plot(results, args.plot, hw)
        if not args.json:
            print(f"plot: {args.plot}")
    return 0
