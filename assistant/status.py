"""One status snapshot, three renderings: systemd's STATUS= line, GET /status, GET /metrics."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol

__all__ = ["snapshot", "status_line"]


class _Snapshots(Protocol):
    def snapshot(self) -> Any: ...


class BrainView(Protocol):
    """What the status reads of the Brain."""

    @property
    def admission(self) -> _Snapshots: ...

    @property
    def turns(self) -> Sequence[Any]: ...

    @property
    def ready(self) -> bool: ...

    @property
    def problem(self) -> str: ...

    @property
    def closing(self) -> str: ...


class GovernorView(Protocol):
    def status(self) -> Any: ...


class VoiceView(Protocol):
    @property
    def state(self) -> str: ...

    @property
    def problem(self) -> str: ...


def snapshot(
    brain: BrainView,
    governor: GovernorView,
    *,
    model: str = "",
    speaking: bool = False,
    stalled: Sequence[str] = (),
    starting: bool = False,
    voice: VoiceView | None = None,
    voice_off: str = "",
    reload: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The service's state as plain JSON-able data.

    ``stalled`` names the parts that made no progress for ``service.stall_s`` (the watchdog
    is no longer pinged); they lead the problem text. ``starting``: the service has not
    finished starting (the voice is still loading), so it reads "loading" like the model.
    ``voice`` is the :class:`~assistant.voiceloop.VoiceLoop` (None: text only): its "mic lost"
    and "listening" states show; ``voice_off`` says why there is none. ``reload`` is the
    last reload's outcome: a rejected one stays in the problem text until a good reload.
    """
    voice_state = voice.state if voice is not None else ""
    thermal = dataclasses.asdict(governor.status())
    admission = dataclasses.asdict(brain.admission.snapshot())
    turns = [dataclasses.asdict(t) for t in brain.turns]
    # the last answer the model gave (a yes to "Shall I …?" has no speed to show)
    last: dict[str, Any] = next((t for t in reversed(turns) if t["completion_tokens"]), {})
    if brain.closing:  # a stop: running answers finish, nothing new is admitted
        state = "stopping"
    elif not brain.ready or starting:
        state = "error" if brain.problem else "loading"
    elif thermal["state"] == "sensor lost":
        state = "sensor lost"
    elif voice_state == "mic lost":
        state = "mic lost"
    elif speaking:
        state = "speaking"
    elif admission["running"]:
        state = "thinking"
    elif thermal["state"] in ("cooling", "hot"):
        state = "cooling"
    elif voice_state == "listening":
        state = "listening"
    else:
        state = "ready"
    rejected = ""
    if reload is not None and not reload["ok"]:
        problems = reload["problems"]
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        rejected = f"reload rejected: {problems[0] if problems else '?'}{more}"
    return {
        "state": state,
        "ready": brain.ready,
        "problem": (
            ("stalled: " + ", ".join(stalled) if stalled else "")
            or brain.closing
            or brain.problem
            or thermal["problem"]
            or admission["stopped"]
            or (voice.problem if voice is not None and voice_state == "mic lost" else "")
            or rejected
        ),
        "voice": voice_state or "off",
        "voice_off": "" if voice_state else voice_off or "no voice loop",
        "reload": reload,
        "stalled": list(stalled),
        "model": model,
        "thermal": thermal,
        "admission": admission,
        "last": {
            "decode_tok_s": last.get("decode_tok_s"),
            "first_token_s": last.get("first_token_s"),
            "first_audio_s": last.get("first_audio_s"),
        },
        "turns": turns,
    }


def status_line(s: dict[str, Any]) -> str:
    """One line, e.g. ``ready · 61.2 °C · fan 49% · 30.0/30 req/min · queue 0 · last 24.1
    tok/s, 0.4 s to first token``; while the heat budget binds, the levers it moved follow
    the fan: ``cooling · 77.1 °C · fan 100% · threads 2/4 · clock ≤ 1.8 GHz · …``.
    """
    t, a, last = s["thermal"], s["admission"], s["last"]
    parts = [s["state"]]
    if t["state"] == "off":
        parts.append("no thermal sensor")
    else:
        parts.append(f"{t['celsius']:.1f} °C" if t["celsius"] is not None else "no temperature")
    parts.append(f"fan {t['fan_duty'] * 100:.0f}%")
    if t.get("levers"):  # and why, while the heat holds them
        parts.append(t["levers"] + (f" ({t['held_by']})" if t.get("held_by") else ""))
    if a.get("paced", True):
        parts.append(f"{a['rate_per_min']:.1f}/{a['configured_per_min']:g} req/min")
    else:
        parts.append("no rate limit")
    parts.append(f"queue {a['queue']}")
    if last.get("first_audio_s") is not None:
        parts.append(
            f"last {last['decode_tok_s']:.1f} tok/s, {last['first_audio_s']:.1f} s to first audio"
        )
    elif last["decode_tok_s"] is not None:
        parts.append(
            f"last {last['decode_tok_s']:.1f} tok/s, {last['first_token_s']:.1f} s to first token"
        )
    if s["problem"]:
        parts.append(s["problem"])
    return " · ".join(parts)


def _levers(t: dict[str, Any]) -> str:
    """``qwen-assistant status``'s row for the governor's levers (a status.json written by an
    older service lacks them: "-")."""
    if t.get("state") == "off":
        return f"no thermal control ({t.get('no_sensor') or 'no sensor'})"
    if "threads" not in t:
        return "-"
    budget = t.get("budget_w")
    head = f"budget {budget:.1f} of {t.get('full_w', 0):.1f} W" if budget is not None else "-"
    if t.get("clock_mhz"):
        clock = f"clock ≤ {t['clock_mhz'] / 1000:.1f} GHz"
        if t.get("prompt_clock_mhz") and t["prompt_clock_mhz"] < t["clock_mhz"]:
            clock += f" (prompts ≤ {t['prompt_clock_mhz'] / 1000:.1f})"
    else:
        clock = f"clock not capped ({t.get('clock_problem') or 'no cap needed'})"
    return (
        f"{head}, threads {t['threads']}/{t.get('max_threads', '?')} "
        f"(prompt {t.get('batch_threads', '?')}/{t.get('max_batch_threads', '?')}), {clock}, "
        f"pacing {t.get('pacing', 1.0):.1f}"
    )


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def _wyoming(w: dict[str, Any] | None) -> str:
    if not w:
        return "off"
    if not w["url"]:
        return f"off ({w['off']})"
    n = w["connections"]
    return f"{w['url']}, {n} connection{'s' if n != 1 else ''}"


def describe(s: dict[str, Any], now: float) -> str:
    """``qwen-assistant status``: the running service's status.json, for a person to read."""
    t, a = s["thermal"], s["admission"]
    rows = [
        ("state", s["state"] + (f" ({s['problem']})" if s["problem"] else "")),
        ("pid", f"{s['pid']}, up {_ago(now - s['started_at'])}"),
        ("config", s.get("config") or "built-in defaults"),
        ("model", s.get("model") or "(loading)"),
        (
            "temperature",
            (f"{t['celsius']:.1f} °C" if t["celsius"] is not None else "no reading")
            + f", fan {t['fan_duty'] * 100:.0f}%"
            + (f", throttled: {t['throttled']}" if t.get("throttled") else ""),
        ),
        ("levers", _levers(t)),
        (
            "requests",
            (
                f"{a['rate_per_min']:.1f} of {a['configured_per_min']:g} per minute admitted"
                if a.get("paced", True)
                else "no rate limit (no thermal control)"
            )
            + f", queue {a['queue']}, {int(a['running'])} of {a.get('slots', 1)} slots running",
        ),
        ("api", s.get("api") or "off"),
        ("voice", s["voice"] + (f" ({s['voice_off']})" if s.get("voice_off") else "")),
        ("wyoming", _wyoming(s.get("wyoming"))),
        ("runtime", s.get("runtime_dir") or "(none)"),
    ]
    if s.get("model_sha256"):
        rows.insert(4, ("sha256", s["model_sha256"]))
    if s.get("backend"):
        rows.insert(4, ("backend", s["backend"]))
    if s.get("reload"):
        r = s["reload"]
        rows.append(
            (
                "reload",
                f"#{r['generation']} {'applied' if r['ok'] else 'rejected'} "
                f"{_ago(now - r['at'])} ago",
            )
        )
    width = max(len(k) for k, _ in rows)
    lines = [f"qwen-assistant: {s['line']}"]
    lines += [f"  {k:<{width}}  {v}" for k, v in rows]
    turns = s.get("turns") or []
    lines.append("  last turns" if turns else "  no turns yet")
    for turn in turns[-5:][::-1]:
        lines.append(
            f"    #{turn['id']} {turn['kind']} {turn['outcome']} · "
            f"{turn['completion_tokens']} tokens · "
            f"{turn['first_token_s']:.2f} s to first token · "
            f"{turn['decode_tok_s']:.1f} tok/s · {_ago(now - turn['finished_at'])} ago"
        )
    return "\n".join(lines)
