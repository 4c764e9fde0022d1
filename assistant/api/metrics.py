"""Prometheus text exposition (format 0.0.4) for /metrics, without a client library.

Counters and histograms live here; gauges are read from the status snapshot when scraped,
so /metrics, /status and the STATUS= line always agree.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ..turn import Done, Refused, Speculated, TurnEvent

__all__ = ["Histogram", "Metrics", "render"]

PREFIX = "qwen_assistant_"
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)


class Histogram:
    def __init__(self, buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.buckets = tuple(sorted(buckets))
        self.counts = [0] * len(self.buckets)  # per bucket, not cumulative
        self.count = 0
        self.sum = 0.0

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self.buckets, value)
        if i < len(self.counts):
            self.counts[i] += 1
        self.count += 1
        self.sum += value

    def lines(self, name: str) -> list[str]:
        out = []
        running = 0
        for bound, n in zip(self.buckets, self.counts, strict=True):
            running += n
            out.append(f'{name}_bucket{{le="{bound:g}"}} {running}')
        out += [f'{name}_bucket{{le="+Inf"}} {self.count}', f"{name}_sum {self.sum:.6f}"]
        out.append(f"{name}_count {self.count}")
        return out


class Metrics:
    """What the API counts. Thread-safe: the inference thread may record too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: Counter[str] = Counter()
        self.first_token = Histogram()
        self.first_audio = Histogram()
        self.completion_tokens = 0
        #: Wyoming requests: (program, outcome) → count
        self.wyoming: Counter[tuple[str, str]] = Counter()
        #: turns of every door: (door, outcome) → count
        self.turns: Counter[tuple[str, str]] = Counter()
        #: answers prepared ahead ("used" or "dropped") → count, and their tokens
        self.ahead: Counter[str] = Counter()
        self.ahead_tokens: Counter[str] = Counter()

    def turn(self, event: TurnEvent) -> None:
        """A turn's event, from any door (a :class:`~assistant.turn.Turns` listener): its
        outcome, tokens and latencies count the same whichever door it came in by."""
        if isinstance(event, Speculated):
            result = "used" if event.used else "dropped"
            with self._lock:
                self.ahead[result] += 1
                self.ahead_tokens[result] += event.tokens
        elif isinstance(event, Refused):
            with self._lock:
                self.turns[event.door, event.reason] += 1
        elif isinstance(event, Done):
            record = event.record
            with self._lock:
                self.turns[event.door, record.outcome] += 1
                self.completion_tokens += record.completion_tokens
                if record.completion_tokens:
                    self.first_token.observe(record.first_token_s)
                if record.first_audio_s is not None:
                    self.first_audio.observe(record.first_audio_s)

    def wyoming_request(self, program: str, outcome: str) -> None:
        """One Wyoming request (asr, tts, wake, handle) and how it ended (ok, or an error
        code such as busy_hot, too_long, bad_event)."""
        with self._lock:
            self.wyoming[program, outcome] += 1

    def outcome(self, outcome: str) -> None:
        with self._lock:
            self.requests[outcome] += 1

    def observe_first_token(self, seconds: float) -> None:
        with self._lock:
            self.first_token.observe(seconds)

    def observe_first_audio(self, seconds: float) -> None:
        with self._lock:
            self.first_audio.observe(seconds)

    def tokens(self, n: int) -> None:
        with self._lock:
            self.completion_tokens += n


#: every outcome a request can have, so a dashboard sees zeros rather than gaps
OUTCOMES = (
    "ok",
    "length",
    "cancelled",
    "rate_limited",
    "queue_full",
    "too_hot",
    "not_ready",
    "bad_request",
    "unauthorized",
    "error",
)


def _gauge(name: str, help: str, value: float | None) -> list[str]:
    shown = "NaN" if value is None or math.isnan(value) else f"{value:g}"
    return [
        f"# HELP {PREFIX}{name} {help}",
        f"# TYPE {PREFIX}{name} gauge",
        f"{PREFIX}{name} {shown}",
    ]


def render(metrics: Metrics, status: dict[str, Any]) -> str:
    """The exposition text for one scrape; ``status`` is the /status snapshot."""
    thermal, admission, last = status["thermal"], status["admission"], status["last"]
    lines: list[str] = []
    lines += _gauge("up", "1 once the model is loaded", 1.0 if status["ready"] else 0.0)
    lines += _gauge("temperature_celsius", "SoC temperature (NaN: sensor lost)", thermal["celsius"])
    lines += _gauge("fan_duty_ratio", "fan duty, 0-1", thermal["fan_duty"])
    lines += _gauge(
        "heat_budget_watts", "work power the governor allows (NaN: no control)", thermal["budget_w"]
    )
    lines += _gauge("decode_threads", "llama.cpp threads for decode now", thermal["threads"])
    lines += _gauge("prompt_threads", "llama.cpp threads for prompts now", thermal["batch_threads"])
    lines += _gauge(
        "clock_cap_mhz", "cpufreq cap the governor set (NaN: none)", thermal["clock_mhz"]
    )
    lines += _gauge("pacing_ratio", "decode speed allowed by pacing, 0-1", thermal["pacing"])
    lines += _gauge(
        "admitted_rate_per_minute", "requests/min admitted now", admission["rate_per_min"]
    )
    lines += _gauge(
        "configured_rate_per_minute", "thermal.rate_per_min", admission["configured_per_min"]
    )
    lines += _gauge("queue_length", "requests waiting for the engine", admission["queue"])
    lines += _gauge("busy", "1 while the engine generates", 1.0 if admission["running"] else 0.0)
    lines += _gauge("running", "answers being generated together", float(admission["running"]))
    lines += _gauge(
        "slots",
        "answers decoded together now (llm.parallel; thermal.hot_parallel while the heat binds)",
        admission["slots"],
    )
    lines += _gauge("tokens_per_second", "decode speed of the last request", last["decode_tok_s"])
    with metrics._lock:
        name = f"{PREFIX}requests_total"
        lines += [f"# HELP {name} API requests by outcome", f"# TYPE {name} counter"]
        for outcome in sorted(set(OUTCOMES) | set(metrics.requests)):
            lines.append(f'{name}{{outcome="{outcome}"}} {metrics.requests[outcome]}')
        name = f"{PREFIX}turns_total"
        lines += [f"# HELP {name} turns by door and outcome", f"# TYPE {name} counter"]
        for (door, outcome), count in sorted(metrics.turns.items()):
            lines.append(f'{name}{{door="{door}",outcome="{outcome}"}} {count}')
        name = f"{PREFIX}completion_tokens_total"
        lines += [f"# HELP {name} tokens generated, every door", f"# TYPE {name} counter"]
        lines.append(f"{name} {metrics.completion_tokens}")
        for key, counts, help in (
            ("answers_ahead_total", metrics.ahead, "voice answers prepared at a pause"),
            ("answers_ahead_tokens_total", metrics.ahead_tokens, "their tokens (dropped: wasted)"),
        ):
            name = PREFIX + key
            lines += [f"# HELP {name} {help}, by result", f"# TYPE {name} counter"]
            lines += [f'{name}{{result="{r}"}} {counts[r]}' for r in ("used", "dropped")]
        name = f"{PREFIX}wyoming_requests_total"
        lines += [
            f"# HELP {name} Wyoming requests by program and outcome",
            f"# TYPE {name} counter",
        ]
        for (program, outcome), count in sorted(metrics.wyoming.items()):
            lines.append(f'{name}{{program="{program}",outcome="{outcome}"}} {count}')
        for hist, key, help in (
            (metrics.first_token, "time_to_first_token_seconds", "arrival to first token"),
            (metrics.first_audio, "time_to_first_audio_seconds", "arrival to first sound"),
        ):
            name = PREFIX + key
            lines += [f"# HELP {name} {help}", f"# TYPE {name} histogram", *hist.lines(name)]
    return "\n".join(lines) + "\n"
