"""`qwen-assistant doctor`: one line per check, the fix with every problem, exit 1 on FAIL."""

from __future__ import annotations

import re
from pathlib import Path

from assistant.config import load_config
from assistant.doctor import run_checks
from tests.test_cli import run


def test_doctor_names_each_problem_and_its_fix(tmp_path: Path) -> None:
    sensor = tmp_path / "temp"
    sensor.write_text("48250\n")
    config = tmp_path / "config.toml"
    config.write_text(
        f'[paths]\nmodels_dir = "{tmp_path}/models"\n'
        f'[llm]\nmodel = "{tmp_path}/missing.gguf"\n'
        f'[thermal]\nsensor_path = "{sensor}"\n[voice]\nenabled = false\n'
    )
    result = run("doctor", "--config", str(config))
    assert result.returncode == 1, result.stdout
    lines = result.stdout.splitlines()
    assert all(re.match(r"(OK  |WARN|FAIL)  \S", line) for line in lines), lines
    assert any(
        line.startswith("FAIL  model") and "missing.gguf" in line and "models fetch" in line
        for line in lines
    )
    assert any(line.startswith("OK    thermal") and "48.2 °C" in line for line in lines), lines
    assert any(line.startswith("OK    config") for line in lines)
    assert any(line.startswith("OK    memory") for line in lines)
    assert "Traceback" not in result.stdout + result.stderr


def test_doctor_reports_a_bad_config_and_checks_the_rest(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[thermal]\nrate_per_min = -1\n")
    result = run("doctor", "--config", str(config))
    assert result.returncode == 1
    first = result.stdout.splitlines()[0]
    assert first.startswith("FAIL  config") and "thermal.rate_per_min" in first
    assert "llama.cpp" in result.stdout  # the other checks still ran


def test_a_good_model_passes_with_its_hash(smollm_path: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[llm]\nmodel = "{smollm_path}"\n[voice]\nenabled = false\n')
    checks = run_checks(load_config(config))
    model = next(c for c in checks if c.name == "model")
    assert model.level == "OK" and "llama" in model.detail
    assert any(c.name == "llama.cpp" and c.level == "OK" and "CPU" in c.detail for c in checks)
