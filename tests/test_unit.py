"""systemd/qwen-assistant.service: hardened (systemd-analyze security), valid (verify), and
keeping what the assistant needs (the sound card, the GPIO chip, cffi, onnxruntime)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "qwen-assistant.service"

analyze = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    analyze is None, reason="systemd-analyze missing (scripts/test.sh installs it)"
)


def settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


@needs_analyze
def test_exposure_is_at_most_2() -> None:
    result = subprocess.run(
        [str(analyze), "security", "--offline=yes", "--threshold=20", str(UNIT)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    exposure = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert exposure, result.stdout
    assert float(exposure.group(1)) <= 2.0


@needs_analyze
def test_verify_is_clean(tmp_path: Path) -> None:
    """``verify`` checks that ExecStart exists: point it at this checkout's entry point."""
    entry = Path(sys.executable).parent / "qwen-assistant"
    assert entry.exists()
    unit = tmp_path / UNIT.name
    unit.write_text(
        UNIT.read_text().replace("/opt/qwen-assistant/venv/bin/qwen-assistant", str(entry))
    )
    result = subprocess.run(
        [str(analyze), "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and result.stdout + result.stderr == "", result.stderr


def test_the_sandbox_keeps_the_sound_card_and_the_gpio_chip() -> None:
    s = settings()
    assert s["DevicePolicy"] == ["closed"]
    assert {"char-alsa rw", "char-gpiochip rw"} <= set(s["DeviceAllow"])
    assert s["SupplementaryGroups"] == ["audio gpio"]
    # each of these would break the assistant on the Pi
    assert s.get("PrivateDevices", ["no"]) == ["no"]  # hides /dev/snd and /dev/gpiochip*
    assert "MemoryDenyWriteExecute" not in s  # cffi callbacks, onnxruntime
    assert s.get("ProcSubset", ["all"]) == ["all"]  # onnxruntime reads /proc/cpuinfo


def test_the_unit_tells_systemd_the_truth() -> None:
    s = settings()
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert s["Restart"] == ["on-failure"] and s["RestartPreventExitStatus"] == ["78"]
    assert int(s["WatchdogSec"][0]) >= 10
    assert s["ExecStart"][0].startswith("/opt/qwen-assistant/venv/bin/qwen-assistant run ")
    for key in ("StateDirectory", "CacheDirectory", "RuntimeDirectory"):
        assert s[key] == ["qwen-assistant"]


def test_the_clock_lever_is_granted_one_cpufreq_file_and_nothing_else() -> None:
    from assistant.thermal.actors import CPUFREQ_POLICY

    s = settings()
    cap = str(CPUFREQ_POLICY / "scaling_max_freq")  # what the governor writes
    assert s["ReadWritePaths"] == [f"-{cap}"]  # "-": no cpufreq, no failure
    assert s["ExecStartPre"] == [
        f"-+/bin/chgrp qwen-assistant {cap}",
        f"-+/bin/chmod g+w {cap}",
    ]
    assert s["ProtectKernelTunables"] == ["yes"]  # the rest of /sys stays read-only
