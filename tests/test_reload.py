"""Hot reload: good edits apply without a restart, bad edits are rejected with file:line
and the settings in force stay; `qwen-assistant reload` signals a running process."""

from __future__ import annotations

import logging
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from assistant.config import load_config
from assistant.errors import AssistantError
from assistant.reload import reload_config, send_sighup
from assistant.thermal import Admission, Governor, NoFan
from tests.test_cli import run


def write(path: Path, thermal: str, extra: str = "") -> None:
    path.write_text(f'[thermal]\nsensor_path = ""\n{thermal}\n{extra}', encoding="utf-8")


@pytest.fixture
def rig(tmp_path: Path) -> tuple[Path, Governor]:
    path = tmp_path / "config.toml"
    write(path, "rate_per_min = 6.0")
    config = load_config(path)
    t = config.thermal
    return path, Governor(t, None, NoFan(), Admission(t))


def test_good_edit_applies_live(
    rig: tuple[Path, Governor], caplog: pytest.LogCaptureFixture
) -> None:
    path, governor = rig
    config = load_config(path)
    write(path, "rate_per_min = 3.0\ntarget_c = 70.0\nfan_curve = [[45.0, 50.0]]")
    with caplog.at_level(logging.INFO, "assistant.reload"):
        outcome = reload_config(config, governor)
    new = outcome.config
    assert outcome.ok and outcome.applied
    assert (new.thermal.rate_per_min, new.thermal.target_c) == (3.0, 70.0)
    assert governor.settings.rate_per_min == 3.0
    assert governor.admission.snapshot().configured_per_min == 3.0
    assert governor.curve.points == [(45.0, 0.5)]
    assert "thermal.rate_per_min 6.0 → 3.0" in caplog.text


def test_bad_edit_is_rejected_with_file_line_and_key(
    rig: tuple[Path, Governor], caplog: pytest.LogCaptureFixture
) -> None:
    path, governor = rig
    config = load_config(path)
    write(path, "rate_per_min = -2\ncritical_c = 60.0")
    with caplog.at_level(logging.ERROR):
        kept = reload_config(config, governor)
    assert kept.config is config and not kept.ok
    assert kept.problems and f"{path}:3:1: thermal.rate_per_min:" in kept.problems[0]
    assert governor.settings.rate_per_min == 6.0
    assert f"{path}:3:1: thermal.rate_per_min:" in caplog.text
    assert f"{path}:4:1: thermal.critical_c: must be above thermal.target_c" in caplog.text
    assert "keeping the settings in force" in caplog.text


def test_half_written_file_is_rejected(
    rig: tuple[Path, Governor], caplog: pytest.LogCaptureFixture
) -> None:
    path, governor = rig
    config = load_config(path)
    path.write_text('[thermal]\nsensor_path = ""\nrate_per_min = ', encoding="utf-8")
    with caplog.at_level(logging.ERROR):
        assert reload_config(config, governor).config is config
    assert f"{path}:3:" in caplog.text and "syntax" in caplog.text


def test_restart_only_keys_are_named_and_not_applied(
    rig: tuple[Path, Governor], caplog: pytest.LogCaptureFixture
) -> None:
    path, governor = rig
    config = load_config(path)
    write(path, 'rate_per_min = 6.0\nfan_driver = "sysfs"', "[llm]\nn_ctx = 4096\n")
    with caplog.at_level(logging.INFO, "assistant.reload"):
        outcome = reload_config(config, governor)
    new = outcome.config
    assert outcome.pending == ("llm.n_ctx", "thermal.fan_driver")
    assert new.thermal.fan_driver == "none" and new.llm.n_ctx == config.llm.n_ctx
    assert "takes effect after a restart: llm.n_ctx, thermal.fan_driver" in caplog.text


def test_reload_command_without_a_service(tmp_path: Path) -> None:
    result = run("reload", env={"RUNTIME_DIRECTORY": str(tmp_path)})
    assert result.returncode == 3  # LSB "not running"
    assert result.stderr.strip() == (
        f"qwen-assistant: no running service found (no {tmp_path}/qwen-assistant.pid); "
        "start it with `systemctl start qwen-assistant` or `qwen-assistant run`"
    )


def test_send_sighup_signals_and_names_a_gone_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    try:
        send_sighup(child.pid)
        assert child.wait(30) == -1  # SIGHUP's default action ends a process without a handler
    finally:
        child.kill()
    with pytest.raises(AssistantError, match=f"process {child.pid} is not running"):
        send_sighup(child.pid)


def wait_for(lines: queue.Queue[str], text: str) -> str:
    """The first line containing ``text`` (the process's stderr, read by a thread)."""
    while True:
        line = lines.get(timeout=120)
        if text in line:
            return line


@pytest.mark.slow
def test_sighup_reloads_a_running_chat(smollm_path: Path, tmp_path: Path) -> None:
    """A real process: chat runs the governor; `qwen-assistant reload --pid` changes its rate."""
    temp = tmp_path / "temp"
    temp.write_text("50000\n")
    config = tmp_path / "config.toml"
    base = f'[llm]\nmodel = "{smollm_path}"\n[thermal]\nsensor_path = "{temp}"\nstale_s = 3600.0\n'
    config.write_text(base + "rate_per_min = 6.0\n")
    env = {**os.environ, "QWEN_ASSISTANT_CONFIG": str(config)}
    chat = subprocess.Popen(
        [sys.executable, "-m", "assistant", "chat"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert chat.stderr is not None and chat.stdin is not None
    stderr = chat.stderr

    def pump() -> None:
        for line in stderr:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    try:
        # the model loads before SIGHUP is handled: wait for chat to answer first
        chat.stdin.write("/help\n")
        chat.stdin.flush()
        wait_for(lines, "/exit")
        config.write_text(base + "rate_per_min = 2.5\n")
        assert run("reload", "--pid", str(chat.pid)).returncode == 0
        assert "INFO" in wait_for(lines, "thermal.rate_per_min 6.0 → 2.5")
        config.write_text(base + 'rate_per_min = "nope"\n')
        assert run("reload", "--pid", str(chat.pid)).returncode == 0
        assert f"{config}:6:1: thermal.rate_per_min: must be a number" in wait_for(
            lines, "reload rejected"
        )
        wait_for(lines, "keeping the settings in force")
        chat.stdin.close()
        assert chat.wait(60) == 0
    finally:
        chat.kill()
