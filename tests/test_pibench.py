"""bench pi: the device report's readings (fake /sys and /proc), and the real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.llm.pibench import _clock_mhz, _cpu, _device, _state, _temperature
from tests.test_cli import run


def fake_pi(tmp_path: Path) -> tuple[Path, Path]:
    sys_root, proc = tmp_path / "sys", tmp_path / "proc"
    zone = sys_root / "class" / "thermal" / "thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "temp").write_text("61350\n")
    freq = sys_root / "devices" / "system" / "cpu" / "cpu0" / "cpufreq"
    freq.mkdir(parents=True)
    (freq / "scaling_cur_freq").write_text("1500000\n")
    (freq / "cpuinfo_max_freq").write_text("2400000\n")
    (proc / "device-tree").mkdir(parents=True)
    (proc / "device-tree" / "model").write_text("Raspberry Pi 5 Model B Rev 1.0\0")
    (proc / "cpuinfo").write_text(
        "processor\t: 0\nBogoMIPS\t: 108.00\n"
        "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
        "asimdrdm lrcpc dcpop asimddp\nCPU part\t: 0xd0b\n"
    )
    return sys_root, proc


def test_the_readings_of_a_pi(tmp_path: Path) -> None:
    sys_root, proc = fake_pi(tmp_path)
    assert _temperature(sys_root) == 61.4
    assert _clock_mhz(sys_root) == {"cur_mhz": 1500.0, "max_mhz": 2400.0}
    assert _cpu(proc) == {"part": "0xd0b", "features": ["fphp", "asimdhp", "asimddp"]}
    device = _device(sys_root, proc)
    assert device["board"] == "Raspberry Pi 5 Model B Rev 1.0"
    state = _state(sys_root)
    assert state["temperature_c"] == 61.4 and "throttled" in state  # None without vcgencmd


def test_a_machine_without_them(tmp_path: Path) -> None:
    empty = tmp_path / "nothing"
    assert _temperature(empty) is None
    assert _clock_mhz(empty) == {"cur_mhz": None, "max_mhz": None}
    assert _cpu(empty) == {"part": "", "features": []}


@pytest.mark.parametrize("bad", ["0", "1,x", "", "1,,2", "65"])
def test_bad_thread_lists_are_one_line(bad: str) -> None:
    out = run("bench", "pi", "--threads", bad)
    assert out.returncode == 64 and "Traceback" not in out.stderr  # EX_USAGE
    assert "--threads" in out.stderr, out.stderr


@pytest.mark.slow
def test_bench_pi_reports_each_thread_count(tmp_path: Path) -> None:
    """The default config, the installed model: one JSON object with the figures."""
    out = run("bench", "pi", "--json", "--threads", "2,1", "--tokens", "8")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert [row["threads"] for row in report["rows"]] == [2, 1]
    assert all(row["decode_tok_s"] > 0 and row["prompt_tok_s"] > 0 for row in report["rows"])
    assert len(report["model"]["sha256"]) == 64 and report["decode_tokens"] == 8
    assert report["packages"]["llama-cpp-python"] and report["device"]["python"].startswith("3.11")
    text = run("bench", "pi", "--threads", "1", "--tokens", "4")
    assert text.returncode == 0 and "decode tok/s" in text.stdout, text.stderr
    from assistant.config import load_config

    small = Path(load_config(None).paths.models_dir) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    other = run("bench", "pi", "--json", "--model", str(small), "--threads", "1", "--tokens", "4")
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout)["model"]["file"] == small.name
