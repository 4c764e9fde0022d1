"""The simulation's reports: a table, JSON, the calibration table and the plot."""

from __future__ import annotations

import json
import math
from typing import Any

from ..errors import AssistantError
from .board import SOFT_LIMIT_C, Hardware
from .simulate import Outcome, Workload

__all__ = ["check_plotting", "plot", "render", "render_calibration", "render_sweep", "to_json"]

#: The issue's targets for the governor, checked in the table's last lines.
HEADLINE = ("served", "tokens", "throttle_s", "tok_s_cv", "p95_wait_voice_s", "p95_wait_api_s")


def to_json(results: dict[str, Outcome]) -> str:
    policies = {}
    for name, outcome in results.items():
        head = outcome.headline()
        head["refused"] = outcome.refused
        policies[name] = {k: head[k] for k in HEADLINE} | {
            k: v for k, v in head.items() if k not in HEADLINE
        }
    return json.dumps({"policies": policies, "targets": targets(results)}, indent=2)


def targets(results: dict[str, Outcome]) -> dict[str, Any]:
    """The governor against its targets (docs/thermal.md): figure, target, met."""
    gov = results["governor"]
    rows: dict[str, Any] = {}

    def row(name: str, value: float, target: str, met: bool) -> None:
        rows[name] = {"value": round(value, 3), "target": target, "met": met}

    for peer in ("firmware", "none", "best_fixed"):
        if peer in results and results[peer].tokens:
            ratio = gov.tokens / results[peer].tokens
            row(f"tokens_vs_{peer}", ratio, ">= 1.0", ratio >= 1.0)
    if "none" in results:
        row(
            "voice_served_vs_none",
            gov.voice_served - results["none"].voice_served,
            ">= 0",
            gov.voice_served >= results["none"].voice_served,
        )
    row("throttle_s", gov.throttle_s, "0", gov.throttle_s == 0)
    row("p95_wait_voice_s", gov.p95_wait_voice_s, "<= 2", gov.p95_wait_voice_s <= 2.0)
    return rows


def render(results: dict[str, Outcome], hw: Hardware, workload: Workload) -> str:
    minutes = workload.duration_s / 60
    lines = [
        f"{minutes:g} simulated minutes · {hw.name} at {hw.ambient_c:g} °C · "
        f"{workload.per_min:g} API requests/min arriving, {workload.microphones} "
        f"microphone{'s' if workload.microphones != 1 else ''} (a person asks, hears the "
        "answer, maybe asks again)",
        "",
        f"{'policy':<19}{'served':>7}{'tokens':>8}{'voice':>6}{'v ref':>6}{'api ref':>8}"
        f"{'thr s':>7}{'v p50/p95 s':>12}{'api p50/p95 s':>14}{'cv':>6}{'J/tok':>6}"
        f"{'max °C':>7}{'fan':>5}",
    ]
    for name, o in results.items():
        label = f"{name} ({o.rate_per_min:g}/min)" if o.rate_per_min is not None else name
        lines.append(
            f"{label:<19}{o.served:>7}{o.tokens:>8}{o.voice_served:>6}{o.voice_refused:>6}"
            f"{o.api_refused:>8}{o.throttle_s:>7.0f}"
            f"{f'{o.p50_wait_voice_s:.1f}/{o.p95_wait_voice_s:.1f}':>12}"
            f"{f'{o.p50_wait_api_s:.0f}/{o.p95_wait_api_s:.0f}':>14}"
            f"{o.tok_s_cv:>6.3f}{o.j_per_token:>6.2f}{o.max_c:>7.1f}{o.mean_fan:>5.0%}"
        )
    lines.append("")
    for name, t in targets(results).items():
        mark = "met" if t["met"] else "MISSED"
        lines.append(f"governor {name}: {t['value']:g} (target {t['target']}): {mark}")
    return "\n".join(lines)


def render_sweep(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'ambient':>8}{'seed':>5}{'gov tokens':>11}{'vs best_fixed':>14}{'vs none':>8}"
        f"{'vs firmware':>12}{'throttle s':>11}{'voice refused':>14}"
    ]
    worst = worst_none = math.inf
    worst_throttle = worst_voice = 0.0
    for r in rows:
        gov = r["governor"]
        best = gov["tokens"] / max(1, r["best_fixed"]["tokens"])
        worst = min(worst, best)
        worst_none = min(worst_none, gov["tokens"] / max(1, r["none"]["tokens"]))
        worst_throttle = max(worst_throttle, gov["throttle_s"])
        worst_voice = max(worst_voice, gov["p95_wait_voice_s"])
        lines.append(
            f"{r['ambient_c']:>8g}{r['seed']:>5}{gov['tokens']:>11}{best:>14.3f}"
            f"{gov['tokens'] / max(1, r['none']['tokens']):>8.3f}"
            f"{gov['tokens'] / max(1, r['firmware']['tokens']):>12.3f}"
            f"{gov['throttle_s']:>11.0f}{gov['voice_refused']:>14}"
        )
    lines += [
        "",
        f"worst governor/best_fixed tokens: {worst:.3f} (target >= 1.0); "
        f"worst governor/none tokens: {worst_none:.3f} (target >= 1.0)",
        f"most throttled: {worst_throttle:.0f} s of 3600 (target <= 36); "
        f"longest p95 voice wait: {worst_voice:.1f} s (target <= 2)",
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


#: trace column → panel title (scale); see Outcome.trace
PANELS = (
    (1, "SoC °C", 1.0),
    (2, "fan duty %", 100.0),
    (4, "tokens/s (30 s)", 1.0),
    (5, "heat budget W", 1.0),
    (7, "mean clock GHz", 1.0),
    (10, "mean wait s", 1.0),
    (9, "refused / 30 s", 1.0),
)


def plot(results: dict[str, Outcome], path: str, hw: Hardware) -> None:
    """Temperature, fan, tokens/s, the budget, the clock, waits and refusals over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(PANELS), 1, figsize=(10, 14), sharex=True)
    for name, outcome in results.items():
        if not outcome.trace:
            continue
        label = f"{name} ({outcome.rate_per_min:g}/min)" if outcome.rate_per_min else name
        t = [row[0] for row in outcome.trace]
        for ax, (col, _, scale) in zip(axes, PANELS, strict=True):
            ax.plot(t, [row[col] * scale for row in outcome.trace], label=label, linewidth=1)
    axes[0].axhline(SOFT_LIMIT_C, color="red", linestyle="--", linewidth=0.8, label="throttle")
    for ax, (_, title, _) in zip(axes, PANELS, strict=True):
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    axes[0].set_title(f"Simulated Pi 5, {hw.name} at {hw.ambient_c:g} °C")
    axes[-1].set_xlabel("minutes")
    fig.tight_layout()
    try:
        fig.savefig(path, dpi=90)
    except OSError as exc:
        raise AssistantError(f"{path}: cannot write the plot: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
