"""The notify protocol over a real datagram socket, liveness, the runtime files, `status`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.config import Thermal
from assistant.runtime import NotRunning, RuntimeDir, read_status, write_status
from assistant.systemd import Liveness, Notifier
from assistant.thermal.admission import Admission
from assistant.thermal.fan import NoFan
from assistant.thermal.governor import Governor
from assistant.thermal.sensor import FileThermometer
from tests.test_cli import run


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    yield sock, path
    sock.close()


def test_each_message_is_one_datagram_through_systemd_python(
    notify_socket: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = notify_socket
    monkeypatch.setenv("NOTIFY_SOCKET", path)  # sd_notify reads it from the environment
    notifier = Notifier(clock_ns=lambda: 12_345_678_000)
    notifier.extend_timeout(30)
    notifier.ready("ready · 50.0 °C")
    notifier.status("thinking")
    notifier.watchdog()
    notifier.reloading()
    notifier.stopping()
    got = [sock.recv(4096).decode() for _ in range(6)]
    assert got == [
        "EXTEND_TIMEOUT_USEC=30000000",
        "READY=1\nSTATUS=ready · 50.0 °C",
        "STATUS=thinking",
        "WATCHDOG=1",
        "RELOADING=1\nMONOTONIC_USEC=12345678",
        "STOPPING=1\nSTATUS=stopping",
    ]


def test_outside_systemd_the_notifier_is_a_quiet_no_op() -> None:
    sent: list[str] = []

    def send(message: str) -> bool:
        sent.append(message)
        return True

    notifier = Notifier(send, environ={})
    notifier.ready("x")
    notifier.watchdog()
    assert not notifier.enabled and sent == [] and notifier.watchdog_s is None


def test_a_vanished_notify_socket_does_not_raise(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    notifier = Notifier()
    notifier.ready()  # systemd-python returns an error; nothing raises


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for another pid
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_period_comes_from_the_environment(
    env: dict[str, str], expected: float | None
) -> None:
    assert Notifier(environ=env).watchdog_s == expected


def test_liveness_names_the_parts_that_stopped_making_progress() -> None:
    now = [0.0]
    live = Liveness(clock=lambda: now[0])
    governor = live.register("thermal governor", 10)
    inference = live.register("inference", 60)
    inference.paused = True  # loading
    now[0] = 30.0
    assert live.stalled() == ["thermal governor (no progress for 30 s)"]
    governor.beat()
    assert live.stalled() == []
    inference.paused = False
    now[0] = 91.0
    assert live.stalled() == [
        "thermal governor (no progress for 61 s)",
        "inference (no progress for 91 s)",
    ]


def test_a_hung_sensor_read_stops_the_governors_beats_but_not_its_status(
    tmp_path: Path,
) -> None:
    """A FIFO without a writer blocks open(): a real hang of the governor's loop."""
    sensor = tmp_path / "temp"
    sensor.write_text("50000\n")
    settings = Thermal(sensor_path=str(sensor), interval_s=0.1, fan_driver="none")
    governor = Governor(settings, FileThermometer(sensor), NoFan(), Admission(settings))
    beats = threading.Semaphore(0)
    stop = threading.Event()
    thread = threading.Thread(target=governor.run, args=(stop, beats.release), daemon=True)
    thread.start()
    assert beats.acquire(timeout=10)
    sensor.unlink()
    os.mkfifo(sensor)
    while beats.acquire(timeout=0.5):  # the beats already on their way
        pass
    assert not beats.acquire(timeout=0.5)  # hung in open(): no more beats
    assert governor.status().state in ("ok", "cooling", "sensor lost")  # the lock is free
    stop.set()
    with open(sensor, "w") as fifo:  # a writer arrives: the read completes
        fifo.write("51000\n")
    thread.join(10)
    assert not thread.is_alive()


def test_status_json_round_trip_and_not_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path))
    with pytest.raises(NotRunning, match="no running service found"):
        read_status()
    claim = RuntimeDir.claim()
    assert claim is not None
    write_status(tmp_path, {"state": "ready", "updated_at": time.time() - 2})
    data = read_status()
    assert data["state"] == "ready" and 1.5 < data["age_s"] < 60
    assert {p.name for p in tmp_path.iterdir()} == {"qwen-assistant.pid", "status.json"}
    claim.release()
    write_status(tmp_path, {"state": "ready", "updated_at": time.time() - 2})
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    (tmp_path / "qwen-assistant.pid").write_text(gone.stdout)
    with pytest.raises(NotRunning, match="is gone"):
        read_status()


def status_file(tmp_path: Path, age_s: float) -> RuntimeDir:
    """status.json of a 'service' that is this test process (it holds the pidfile's lock)."""
    now = time.time()
    claim = RuntimeDir.claim(tmp_path)
    assert claim is not None
    thermal = {
        "state": "ok",
        "celsius": 61.2,
        "fan_duty": 0.49,
        "rate_per_min": 4.0,
        "configured_per_min": 6.0,
        "problem": "",
        "throttled": None,
    }
    admission = {
        "rate_per_min": 4.0,
        "configured_per_min": 6.0,
        "tokens": 1.0,
        "queue": 0,
        "running": False,
        "stopped": "",
        "outcomes": {},
    }
    turn = {
        "id": 7,
        "kind": "api",
        "outcome": "stop",
        "prompt_tokens": 40,
        "cached_tokens": 30,
        "completion_tokens": 24,
        "first_token_s": 0.4,
        "decode_tok_s": 24.1,
        "total_s": 1.4,
        "finished_at": now - 12,
    }
    write_status(tmp_path, {
        "state": "ready", "ready": True, "problem": "", "model": "qwen2.5-0.5b",
        "thermal": thermal, "admission": admission, "turns": [turn], "stalled": [],
        "last": {"decode_tok_s": 24.1, "first_token_s": 0.4},
        "line": "ready · 61.2 °C · fan 49% · 4.0/6 req/min · queue 0",
        "pid": os.getpid(), "updated_at": now - age_s, "started_at": now - 300,
        "interval_s": 5.0, "api": "http://127.0.0.1:8088", "voice": "off",
        "voice_off": "voice.enabled = false", "config": "/etc/x", "runtime_dir": str(tmp_path),
    })  # fmt: skip
    return claim


def test_status_command_reads_the_running_services_status(tmp_path: Path) -> None:
    _claim = status_file(tmp_path, age_s=1)
    result = run("status", env={"RUNTIME_DIRECTORY": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "qwen-assistant: ready · 61.2 °C · fan 49% · 4.0/6 req/min · queue 0"
    assert "  temperature  61.2 °C, fan 49%" in lines
    assert "  requests     4.0 of 6 per minute admitted, queue 0, 0 of 1 slots running" in lines
    assert f"  pid          {os.getpid()}, up 5 min" in lines
    assert "  voice        off (voice.enabled = false)" in lines
    assert lines[-1] == (
        "    #7 api stop · 24 tokens · 0.40 s to first token · 24.1 tok/s · 12 s ago"
    )
    as_json = run("status", "--json", env={"RUNTIME_DIRECTORY": str(tmp_path)})
    assert json.loads(as_json.stdout)["model"] == "qwen2.5-0.5b"


def test_status_command_says_when_the_status_is_stale(tmp_path: Path) -> None:
    _claim = status_file(tmp_path, age_s=120)
    result = run("status", env={"RUNTIME_DIRECTORY": str(tmp_path)})
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "qwen-assistant: the status is 120 s old (the service refreshes it every 5 s): "
        "the service is stalled"
    )


def test_status_command_without_a_service(tmp_path: Path) -> None:
    result = run("status", env={"RUNTIME_DIRECTORY": str(tmp_path)})
    assert result.returncode == 3
    assert result.stderr.startswith("qwen-assistant: no running service found")
    assert "Traceback" not in result.stderr
