"""The Pi's architecture, as scripts/test-arm64.sh found it (build/arm64/result.json).

scripts/test.sh runs the check before pytest: install.sh's Raspberry Pi 5 flags
cross-compile llama.cpp for aarch64, every runtime dependency resolves for cp311
manylinux aarch64, and under qemu-aarch64 (-cpu cortex-a76) the project answers, speaks,
transcribes, and its doctor and `bench pi` make sense. Without a result (pytest run on its
own) the test is skipped, except in CI, where the check must have run.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent
RESULT = ROOT / "build" / "arm64" / "result.json"


@pytest.fixture(scope="module")
def result() -> dict[str, Any]:
    if not RESULT.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{RESULT} is missing: scripts/test.sh runs scripts/test-arm64.sh first")
        pytest.skip("run bash scripts/test-arm64.sh first (scripts/test.sh does)")
    data: dict[str, Any] = json.loads(RESULT.read_text())
    assert "error" not in data, data["error"]
    return data


def test_the_pi_flags_cross_compile_llama_cpp(result: dict[str, Any]) -> None:
    install = (ROOT / "scripts" / "install.sh").read_text()
    assert f'cmake_args="{result["flags"]}"' in install  # exactly install.sh's Pi 5 flags
    assert "GGML_CPU_ARM_ARCH=armv8.2-a+dotprod+fp16" in result["flags"]
    llama = result["llama"]
    assert llama["machine"] == ["AArch64"], llama
    assert any("ggml-cpu" in lib for lib in llama["libraries"]), llama
    assert llama["dotprod_instructions"] > 0, "no sdot/udot in libggml-cpu: dotprod not enabled"


def test_every_runtime_dependency_resolves_for_aarch64(result: dict[str, Any]) -> None:
    deps = {d["name"]: d for d in result["deps"]}
    missing = [
        d for d in deps.values() if d["kind"] not in ("wheel", "sdist, pure Python", "compiles")
    ]
    assert not missing, missing
    for name in ("numpy", "onnxruntime", "piper-tts", "vosk", "ctranslate2", "pymicro-wakeword"):
        assert deps[name]["kind"] == "wheel", deps[name]
    compiles = {n for n, d in deps.items() if d["kind"] == "compiles"}
    assert {"llama-cpp-python", "systemd-python"} <= compiles
    install = (ROOT / "scripts" / "install.sh").read_text()
    step1 = install.split("# -- 1. packages", 1)[1].split("# -- 2.", 1)[0]
    for name in compiles:  # install.sh's step 1 gives each the apt packages it compiles with
        for package in deps[name]["apt"]:
            assert re.search(rf"\b{re.escape(package)}\b", step1), (name, package)


def test_the_stand_in_model_answers_under_emulation(result: dict[str, Any]) -> None:
    runs = result["runs"]
    assert runs["machine"]["stdout"].startswith("aarch64 3.11"), runs["machine"]
    info = runs["llama_system_info"]["stdout"]
    assert "DOTPROD = 1" in info and "NEON = 1" in info, info  # the A76's features in use
    assert runs["ask"]["rc"] == 0 and "Paris" in runs["ask"]["stdout"], runs["ask"]
    assert runs["say"]["rc"] == 0 and "wrote" in runs["say"]["stdout"], runs["say"]
    heard = runs["transcribe"]
    assert heard["rc"] == 0 and "paris" in heard["stdout"].lower(), heard


def test_doctor_rows_make_sense_there(result: dict[str, Any]) -> None:
    rows = result["doctor_rows"]
    for name in ("model", "stt", "voice", "wake", "config"):
        assert rows.get(name, "").startswith("OK"), (name, rows.get(name))
    # no thermal sensor, no GPIO and no sound card in the emulator: said, not hidden
    assert "thermal" in rows and "audio" in rows, rows


def test_bench_pi_runs_there_and_its_format_holds(result: dict[str, Any]) -> None:
    bench = json.loads(result["runs"]["bench_pi"]["stdout"])
    assert bench["format"] == 1 and bench["device"]["machine"] == "aarch64"
    assert [row["threads"] for row in bench["rows"]] == [1, 2]
    assert all(row["decode_tok_s"] > 0 and row["prompt_tok_s"] > 0 for row in bench["rows"])
    assert len(bench["model"]["sha256"]) == 64
    assert bench["packages"]["llama-cpp-python"] and bench["packages"]["qwen-assistant"]
    assert set(bench["before"]) == set(bench["after"]) >= {"temperature_c", "throttled"}


def test_the_check_fits_in_ci(result: dict[str, Any]) -> None:
    assert result["ok"]["all"], result["ok"]
    assert result["total_s"] < 45 * 60, result["timings"]
