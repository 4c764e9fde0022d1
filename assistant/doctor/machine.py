"""The checks of the machine itself: audio devices, thermal sensor and fan, GPIO, groups,
memory."""

from __future__ import annotations

import glob
import grp
import os
from collections.abc import Iterator
from pathlib import Path

from ..config import Config
from .check import Check

__all__ = ["audio", "gpio", "groups", "memory", "thermal"]

MIN_AVAILABLE_MB = 1000  # Qwen 0.5B Q4 + piper + an STT model, with room to spare


def audio(config: Config) -> Iterator[Check]:
    """The devices the service would open: the same lookup by name (``find_device``)."""
    from ..speech.audio import AudioError, find_device, list_devices

    try:
        devices = list_devices()
    except AudioError as exc:  # PortAudio itself is missing
        yield Check("FAIL", "audio", str(exc))
        return
    except Exception as exc:  # noqa: BLE001 - PortAudio reports anything as PortAudioError
        yield Check("FAIL", "audio", f"PortAudio cannot list devices: {exc}")
        return
    level = "FAIL" if config.voice.enabled else "WARN"
    for kind, key, wanted in (
        ("input", "inputs", config.speech.input_device),
        ("output", "outputs", config.speech.output_device),
    ):
        names = [d["name"] for d in devices if d[key]]
        if not names:
            yield Check(level, "audio", f"no {kind} device; plug one in (arecord -l / aplay -l)")
            continue
        try:
            index = find_device(wanted, kind)
        except AudioError as exc:  # names the setting and lists the devices
            yield Check(level, "audio", str(exc))
            continue
        chosen = next((d["name"] for d in devices if d["index"] == index), names[0])
        yield Check("OK", "audio", f"{kind}: {chosen!r}")


def thermal(config: Config) -> Iterator[Check]:
    from ..thermal.actors import CPUFREQ_POLICY, ClockCap
    from ..thermal.sensor import FileThermometer, SensorError, find_sensor

    t = config.thermal
    path, why = find_sensor(t.sensor_path)
    if not path:
        yield Check(
            "WARN",
            "thermal",
            f"{why}: thermal control off (answers are never slowed or refused for heat; a "
            "driven fan runs at full)",
        )
    else:
        try:
            celsius = FileThermometer(path, stale_s=t.stale_s).read()
        except SensorError as exc:
            yield Check(
                "WARN",
                "thermal",
                f"{exc}: the governor runs the fan at full and every lever at its floor "
                f"({t.min_rate_per_min:g} req/min); set thermal.sensor_path",
            )
        else:
            yield Check("OK", "thermal", f"{path}: {celsius:.1f} °C")
    if not t.clock_path:
        yield Check("OK", "clock", 'thermal.clock_path = "": the governor leaves the clock alone')
        return
    if not path:
        yield Check("OK", "clock", "no thermal control: the governor leaves the clock alone")
        return
    cap = ClockCap(CPUFREQ_POLICY if t.clock_path == "auto" else t.clock_path)
    if cap.available:
        yield Check(
            "OK",
            "clock",
            f"{cap.path}: writable, {cap.min_mhz}-{cap.max_mhz} MHz (now ≤ {cap.mhz} MHz)",
        )
    else:
        yield Check(
            "WARN",
            "clock",
            f"{cap.problem}: the governor uses threads, pacing and admission instead",
        )


def gpio(config: Config) -> Iterator[Check]:
    chips = sorted(glob.glob("/dev/gpiochip*"))
    users = []
    if config.thermal.fan_driver.startswith("gpio"):
        users.append(f"thermal.fan_driver = {config.thermal.fan_driver!r}")
    if config.voice.enabled and config.voice.wake == "button":
        users.append('voice.wake = "button"')
    pins = [config.voice.led_listening_pin, config.voice.led_thinking_pin]
    pins += [config.voice.led_speaking_pin, config.voice.led_error_pin]
    if config.voice.enabled and any(pins):
        users.append("voice.led_*_pin")
    level = "FAIL" if users else "WARN"
    if not chips:
        if users:
            yield Check("FAIL", "gpio", f"no /dev/gpiochip* but {' and '.join(users)} needs one")
        else:
            yield Check("OK", "gpio", "no /dev/gpiochip* (not a Pi); nothing configured needs it")
        return
    usable = [c for c in chips if os.access(c, os.R_OK | os.W_OK)]
    if usable:
        yield Check("OK", "gpio", f"{', '.join(usable)} usable")
    else:
        yield Check(level, "gpio", f"{chips[0]} not writable; add the user to the gpio group")


def groups() -> Iterator[Check]:
    mine = set(os.getgroups())
    user = os.environ.get("USER") or str(os.getuid())
    for name in ("audio", "gpio"):
        try:
            gid = grp.getgrnam(name).gr_gid
        except KeyError:
            yield Check("WARN", "groups", f"no {name!r} group on this system")
            continue
        if os.getuid() == 0 or gid in mine:
            yield Check("OK", "groups", f"in {name!r}")
        else:
            yield Check("WARN", "groups", f"not in {name!r}: sudo usermod -aG {name} {user}")


def memory() -> Iterator[Check]:
    try:
        fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        available = int(fields["MemAvailable"].split()[0]) // 1024
    except (OSError, KeyError, ValueError) as exc:
        yield Check("WARN", "memory", f"cannot read /proc/meminfo: {exc}")
        return
    if available >= MIN_AVAILABLE_MB:
        yield Check("OK", "memory", f"{available} MB available")
    else:
        yield Check(
            "WARN",
            "memory",
            f"{available} MB available, under {MIN_AVAILABLE_MB} MB: stop other services",
        )
