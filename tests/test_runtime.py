"""One service per runtime directory: the pidfile's flock decides who owns it, stale files
of a killed service are replaced, and only the owner removes them."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.runtime import (
    AlreadyRunning,
    NotRunning,
    RuntimeDir,
    lock_held,
    read_status,
    running_pid,
)
from tests.test_cli import run

PID = "qwen-assistant.pid"


def test_a_claim_locks_the_pidfile_and_a_second_claim_names_the_owner(tmp_path: Path) -> None:
    first = RuntimeDir.claim(tmp_path)
    assert first is not None
    assert (tmp_path / PID).read_text() == f"{os.getpid()}\n"
    assert lock_held(tmp_path / PID)
    first.write_status({"state": "ready", "updated_at": 0})
    with pytest.raises(AlreadyRunning, match=rf"another qwen-assistant \(pid {os.getpid()}\)"):
        RuntimeDir.claim(tmp_path)
    # the refused one touched nothing of the owner's
    assert (tmp_path / PID).read_text() == f"{os.getpid()}\n"
    assert json.loads((tmp_path / "status.json").read_text())["state"] == "ready"
    assert running_pid(tmp_path) == (tmp_path, os.getpid())
    first.release()
    assert not (tmp_path / PID).exists() and not (tmp_path / "status.json").exists()
    second = RuntimeDir.claim(tmp_path)  # free again
    assert second is not None
    second.release()


def test_stale_files_of_a_killed_service_are_detected_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # what SIGKILL leaves: a pidfile naming a live pid (pid reuse) whose lock nobody holds
    (tmp_path / PID).write_text(f"{os.getppid()}\n")
    (tmp_path / "status.json").write_text('{"state": "ready", "updated_at": 0}\n')
    assert not lock_held(tmp_path / PID)
    with pytest.raises(NotRunning, match=f"pid {os.getppid()} .* is gone: stale files"):
        read_status(tmp_path)
    with caplog.at_level(logging.WARNING):
        claim = RuntimeDir.claim(tmp_path)
    assert claim is not None
    assert f"replacing the stale files of pid {os.getppid()}" in caplog.text
    assert not (tmp_path / "status.json").exists()
    assert (tmp_path / PID).read_text() == f"{os.getpid()}\n"
    claim.release()


def test_the_lock_is_seen_from_another_process(tmp_path: Path) -> None:
    claim = RuntimeDir.claim(tmp_path)
    assert claim is not None
    claim.write_status({"state": "ready", "updated_at": 0, "line": "ready"})
    probe = "import sys; from assistant.runtime import lock_held; print(lock_held(sys.argv[1]))"
    seen = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / PID)],
        check=True,
        capture_output=True,
        text=True,
    )
    assert seen.stdout.strip() == "True"
    claim.release()
    seen = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / PID)],
        check=True,
        capture_output=True,
        text=True,
    )
    assert seen.stdout.strip() == "False"


def test_status_and_reload_take_runtime_dir(tmp_path: Path) -> None:
    result = run("status", "--runtime-dir", str(tmp_path / "elsewhere"))
    assert result.returncode == 3
    assert f"no {tmp_path / 'elsewhere' / PID}" in result.stderr
    result = run("reload", "--runtime-dir", str(tmp_path / "elsewhere"))
    assert result.returncode == 3
