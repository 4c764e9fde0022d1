"""``qwen-assistant bench pi``: one report a user runs on the device and sends back.

Decode and prompt tokens/s of the configured model for 1 to 4 threads (greedy, the
benchmarks' museum prompt), the SoC temperature and ``vcgencmd get_throttled`` before and
after, the CPU clock, what the board and the CPU say they are, the model's sha256, and the
versions of the packages that do the work. Nothing leaves the device: the user decides
what to send (docs/performance.md). Under emulation (the arm64 check) it runs the same and
its figures mean nothing; the format is what is checked there.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import os
import platform
import time
from pathlib import Path
from typing import Any

from ..config import Config
from .bench import DECODE_PROMPT, decode_prompt, loaded_engine, speeds

__all__ = ["PACKAGES", "bench_pi", "render_pi"]

#: the packages whose versions decide the figures (and whether the device works at all)
PACKAGES = (
    "qwen-assistant",
    "llama-cpp-python",
    "numpy",
    "vosk",
    "faster-whisper",
    "ctranslate2",
    "piper-tts",
    "onnxruntime",
    "pymicro-wakeword",
    "wyoming",
    "gpiozero",
    "lgpio",
    "systemd-python",
)
SYS = Path("/sys")
PROC = Path("/proc")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").replace("\0", "").strip()
    except OSError:
        return ""


def _temperature(sys_root: Path) -> float | None:
    from ..thermal.sensor import find_sensor

    path, _ = find_sensor("auto", sys_root / "class" / "thermal")
    text = _read(Path(path)) if path else ""
    return round(int(text) / 1000, 1) if text.lstrip("-").isdigit() else None


def _throttled() -> str | None:
    from ..thermal.sensor import read_throttled

    flags = read_throttled()
    return f"0x{flags.raw:x}" if flags is not None else None


def _clock_mhz(sys_root: Path) -> dict[str, float | None]:
    cpu = sys_root / "devices" / "system" / "cpu" / "cpu0" / "cpufreq"
    out: dict[str, float | None] = {}
    for key, name in (("cur_mhz", "scaling_cur_freq"), ("max_mhz", "cpuinfo_max_freq")):
        text = _read(cpu / name)
        out[key] = round(int(text) / 1000, 1) if text.isdigit() else None
    return out


def _cpu(proc_root: Path) -> dict[str, Any]:
    """What /proc/cpuinfo says: the core's part number and the features llama.cpp uses."""
    info = _read(proc_root / "cpuinfo")
    fields: dict[str, str] = {}
    for line in info.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    features = fields.get("Features") or fields.get("flags") or ""
    wanted = ("asimddp", "fphp", "asimdhp", "i8mm", "sve", "avx2", "fma", "f16c")
    return {
        "part": fields.get("CPU part") or fields.get("model name") or "",
        "features": [f for f in features.split() if f in wanted],
    }


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _device(sys_root: Path, proc_root: Path) -> dict[str, Any]:
    os_release = dict(
        line.split("=", 1) for line in _read(Path("/etc/os-release")).splitlines() if "=" in line
    )
    return {
        "board": _read(proc_root / "device-tree" / "model") or None,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count() or 0,
        "kernel": platform.release(),
        "os": os_release.get("PRETTY_NAME", "").strip('"') or None,
        "python": platform.python_version(),
        "cpu": _cpu(proc_root),
    }


def _state(sys_root: Path) -> dict[str, Any]:
    return {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "temperature_c": _temperature(sys_root),
        "throttled": _throttled(),
        **_clock_mhz(sys_root),
    }


def bench_pi(
    config: Config,
    *,
    model: str | Path | None = None,
    threads: tuple[int, ...] = (1, 2, 3, 4),
    tokens: int = 64,
    runs: int = 1,
    short: bool = False,
    sys_root: Path = SYS,
    proc_root: Path = PROC,
) -> dict[str, Any]:
    """The report (see the module's docstring) on ``model`` (None: the configured one);
    ``threads`` in the order measured.
    ``short``: the question alone, without the museum system prompt (the arm64 check under
    emulation, where only the format counts)."""
    top = max(threads)
    llm = dataclasses.replace(config.llm, n_threads=top, n_threads_batch=top)
    config = dataclasses.replace(config, llm=llm)
    before = _state(sys_root)
    began = time.monotonic()
    with loaded_engine(config, model) as engine:
        load_s = time.monotonic() - began
        prompt = decode_prompt(engine)
        if short:
            fmt = engine.chat_format
            prompt = [*fmt.message("user", DECODE_PROMPT), *fmt.header("assistant")]
        rows = []
        for t in threads:
            decode, prefill = speeds(
                engine, prompt, tokens, runs, decode_threads=(t, t), prefill_threads=(t, t)
            )
            rows.append({"threads": t, "decode_tok_s": decode, "prompt_tok_s": prefill})
        info = engine.info
        loaded = {
            "file": engine.model_path.name,
            "name": info.name if info else "",
            "sha256": engine.sha256 or None,
            "load_s": round(load_s, 2),
            "backend": engine.backend.device,
        }
    return {
        "format": 1,
        "device": _device(sys_root, proc_root),
        "model": loaded,
        "prompt_tokens": len(prompt),
        "short": short,
        "decode_tokens": tokens,
        "runs": runs,
        "rows": rows,
        "before": before,
        "after": _state(sys_root),
        "packages": _versions(),
    }


def render_pi(r: dict[str, Any]) -> str:
    d, m = r["device"], r["model"]
    lines = [
        f"{d['board'] or d['machine']} · {d['os'] or '?'} · Python {d['python']} · "
        f"{d['cpu_count']} CPUs ({', '.join(d['cpu']['features']) or 'no listed features'})",
        f"{m['file']} ({m['sha256'] or 'sha256 unknown'}) · loaded in {m['load_s']} s",
        "",
        f"{'threads':>8}{'decode tok/s':>14}{'prompt tok/s':>14}",
    ]
    lines += [
        f"{row['threads']:>8}{row['decode_tok_s']:>14}{row['prompt_tok_s']:>14}"
        for row in r["rows"]
    ]
    for when in ("before", "after"):
        s = r[when]
        temp = "no sensor" if s["temperature_c"] is None else f"{s['temperature_c']} °C"
        flags = "no vcgencmd" if s["throttled"] is None else f"throttled={s['throttled']}"
        clock = "no cpufreq" if s["cur_mhz"] is None else f"{s['cur_mhz']} of {s['max_mhz']} MHz"
        lines.append(f"{when:<7} {temp} · {flags} · {clock}")
    lines.append("packages: " + ", ".join(f"{k} {v}" for k, v in r["packages"].items() if v))
    return "\n".join(lines)
