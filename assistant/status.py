"""One status snapshot, three renderings: systemd's STATUS= line, GET /status, GET /metrics."""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["snapshot", "status_line"]


def snapshot(
    brain: Any, governor: Any, *, model: str = "", speaking: bool = False
) -> dict[str, Any]:
    """The service's state as plain JSON-able data."""
    thermal = dataclasses.asdict(governor.status())
    admission = dataclasses.asdict(brain.admission.snapshot())
    turns = [dataclasses.asdict(t) for t in brain.turns]
    last = turns[-1] if turns else {}
    if not brain.ready:
        state = "error" if brain.load_error else "loading"
    elif thermal["state"] == "sensor lost":
        state = "sensor lost"
    elif speaking:
        state = "speaking"
    elif admission["running"]:
        state = "thinking"
    elif thermal["state"] in ("cooling", "hot"):
        state = "cooling"
    else:
        state = "ready"
    return {
        "state": state,
        "ready": brain.ready,
        "problem": brain.load_error or thermal["problem"] or admission["stopped"],
        "model": model,
        "thermal": thermal,
        "admission": admission,
        "last": {
            "decode_tok_s": last.get("decode_tok_s"),
            "first_token_s": last.get("first_token_s"),
        },
        "turns": turns,
    }


def status_line(s: dict[str, Any]) -> str:
    """One line, e.g.
    ``ready · 61.2 °C · fan 49% · 4.0/6 req/min · queue 0 · last 24.1 tok/s, 0.4 s to first token``
    """
    t, a, last = s["thermal"], s["admission"], s["last"]
    parts = [s["state"]]
    parts.append(f"{t['celsius']:.1f} °C" if t["celsius"] is not None else "no temperature")
    parts.append(f"fan {t['fan_duty'] * 100:.0f}%")
    parts.append(f"{a['rate_per_min']:.1f}/{a['configured_per_min']:g} req/min")
    parts.append(f"queue {a['queue']}")
    if last["decode_tok_s"] is not None:
        parts.append(
            f"last {last['decode_tok_s']:.1f} tok/s, {last['first_token_s']:.1f} s to first token"
        )
    if s["problem"]:
        parts.append(s["problem"])
    return " · ".join(parts)
