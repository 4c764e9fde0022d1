"""`qwen-assistant run` talking to a real datagram socket as NOTIFY_SOCKET: READY only after
the model loads, the watchdog pinged only while every loop makes progress, RELOADING/READY
on SIGHUP (a bad edit keeps the old settings), STOPPING on SIGTERM."""

from __future__ import annotations

import os
import queue
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.test_cli import run
from tests.test_service import Process, free_port

pytestmark = pytest.mark.slow


class NotifySocket:
    """systemd's end of the notify protocol: every datagram lands on a queue."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            self.messages.put(data.decode())

    def next(self, timeout: float = 60) -> str:
        return self.messages.get(timeout=timeout)

    def until(self, prefix: str, timeout: float = 60) -> tuple[str, list[str]]:
        """The first message starting with ``prefix``, and the ones before it."""
        before: list[str] = []
        while True:
            message = self.next(timeout)
            if message.startswith(prefix):
                return message, before
            before.append(message)


def config_text(model: Path, port: int, sensor: Path, rate: float) -> str:
    return (
        f'[llm]\nmodel = "{model}"\nmax_tokens = 16\n'
        f'[thermal]\nsensor_path = "{sensor}"\ninterval_s = 0.2\nrate_per_min = {rate}\n'
        f"burst = 20\n[api]\nport = {port}\n[voice]\nenabled = false\n"
        "[service]\nstatus_interval_s = 1.0\nstall_s = 2.0\n"
    )


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.sock.close()


def test_notify_sequence_watchdog_reload_and_stop(
    tmp_path: Path, smollm_path: Path, notify: NotifySocket
) -> None:
    sensor = tmp_path / "temp"
    sensor.write_text("50000\n")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    config = tmp_path / "config.toml"
    config.write_text(config_text(smollm_path, port, sensor, rate=120.0))
    with Process(
        config,
        tmp_path,
        env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"},  # ping every 0.5 s
    ) as proc:
        # start: more time asked for while loading; READY=1 only once the model answers
        ready, before = notify.until("READY=1")
        assert before and before[0].startswith("EXTEND_TIMEOUT_USEC=")
        assert all("STATUS=ready" not in m for m in before)
        assert httpx.get(f"{url}/health").status_code == 200
        assert "STATUS=ready · 50.0 °C" in ready
        notify.until("WATCHDOG=1")

        # SIGHUP: RELOADING=1 with the monotonic time, the new rate applied, READY=1 again
        config.write_text(config_text(smollm_path, port, sensor, rate=30.0))
        proc.proc.send_signal(signal.SIGHUP)
        reloading, _ = notify.until("RELOADING=1")
        assert int(reloading.split("MONOTONIC_USEC=")[1]) > 0
        notify.until("READY=1")
        assert httpx.get(f"{url}/status").json()["admission"]["configured_per_min"] == 30.0

        # a bad edit: reported with file:line and key, the old settings stay, READY=1 again
        config.write_text(config_text(smollm_path, port, sensor, rate=-5.0))
        proc.proc.send_signal(signal.SIGHUP)
        notify.until("RELOADING=1")
        notify.until("READY=1")
        assert "thermal.rate_per_min" in proc.wait_for("reload rejected")
        assert httpx.get(f"{url}/status").json()["admission"]["configured_per_min"] == 30.0

        # a hung sensor read (a FIFO without a writer) stalls the governor's loop: the
        # status says so and the watchdog is no longer pinged, while the API still answers
        sensor.unlink()
        os.mkfifo(sensor)
        stalled, _ = notify.until("STATUS=", timeout=30)
        while "stalled: thermal governor" not in stalled:
            stalled, _ = notify.until("STATUS=", timeout=30)
        assert "watchdog: stalled: thermal governor" in proc.wait_for("watchdog:")
        for _ in range(3):  # three status periods (six watchdog periods) without a ping
            status, between = notify.until("STATUS=", timeout=30)
            assert "WATCHDOG=1" not in between
            assert "stalled: thermal governor" in status
        assert httpx.get(f"{url}/health").status_code == 200
        # the sensor answers again: pings resume
        fifo = os.open(sensor, os.O_RDWR)  # a writer: the blocked open() returns
        fresh = tmp_path / "temp.new"
        fresh.write_text("51000\n")
        os.replace(fresh, sensor)  # later reads get a regular file again
        os.write(fifo, b"51000\n")
        os.close(fifo)
        notify.until("WATCHDOG=1", timeout=30)
        proc.wait_for("every part makes progress again")

        # SIGTERM: STOPPING=1, exit 0
        proc.proc.send_signal(signal.SIGTERM)
        notify.until("STOPPING=1")
        assert proc.proc.wait(30) == 0


def test_a_broken_model_never_sends_ready(tmp_path: Path, notify: NotifySocket) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF but not really")
    config = tmp_path / "config.toml"
    config.write_text(config_text(bad, free_port(), tmp_path / "none", rate=6.0))
    with Process(config, tmp_path, env={"NOTIFY_SOCKET": notify.path}) as proc:
        assert proc.proc.wait(60) == 78
        _, before = notify.until("STOPPING=1")
        assert not any(m.startswith("READY=1") for m in before)


def test_sigterm_during_generation_stops_cleanly(
    tmp_path: Path, smollm_path: Path, notify: NotifySocket
) -> None:
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        config_text(smollm_path, port, tmp_path / "none", rate=60.0).replace(
            "max_tokens = 16", "max_tokens = 1024"
        )
    )
    with Process(config, tmp_path, env={"NOTIFY_SOCKET": notify.path}) as proc:
        notify.until("READY=1")
        body = {
            "messages": [{"role": "user", "content": "Write a very long story about a robot."}],
            "stream": True,
            "max_tokens": 1024,
        }
        url = f"http://127.0.0.1:{port}/v1/chat/completions"
        with httpx.stream("POST", url, json=body, timeout=60) as response:
            lines = response.iter_lines()
            assert next(line for line in lines if line.startswith("data: {"))
            proc.proc.send_signal(signal.SIGTERM)  # mid-answer
            rest = list(lines)  # the stream ends instead of running to 1024 tokens
        notify.until("STOPPING=1")
        assert proc.proc.wait(30) == 0
        assert len(rest) < 1024
        assert "stopped" in "".join(proc.log)


def test_a_second_sigterm_exits_at_once(
    tmp_path: Path, qwen_path: Path, notify: NotifySocket
) -> None:
    config = tmp_path / "config.toml"
    config.write_text(config_text(qwen_path, free_port(), tmp_path / "none", rate=6.0))
    with Process(config, tmp_path, env={"NOTIFY_SOCKET": notify.path}) as proc:
        notify.until("EXTEND_TIMEOUT_USEC=")  # loading: shutdown would wait for the load
        proc.proc.send_signal(signal.SIGTERM)
        notify.until("STOPPING=1")
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(30) == 0
        assert "second stop signal: exiting now" in "".join(proc.log)


def voice_config(path: Path, qwen: Path, whisper: Path, voice: Path, port: int) -> None:
    path.write_text(
        f'[llm]\nmodel = "{qwen}"\ntemperature = 0.0\nmax_tokens = 32\n'
        f'[speech]\nstt_engine = "whisper"\nstt_model = "{whisper}"\ntts_voice = "{voice}"\n'
        f'[voice]\nwake = "always"\n[thermal]\nsensor_path = ""\n[api]\nport = {port}\n'
        "[service]\nstatus_interval_s = 1.0\n"
    )


def test_no_microphone_still_ready_serving_text_and_saying_mic_lost(
    tmp_path: Path, qwen_path: Path, whisper_dir: Path, voice_path: Path, notify: NotifySocket
) -> None:
    """This machine has no sound card at all: the voice loop keeps retrying the device."""
    port = free_port()
    config = tmp_path / "config.toml"
    voice_config(config, qwen_path, whisper_dir, voice_path, port)
    with Process(
        config, tmp_path, env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "2000000"}
    ) as proc:
        ready, _ = notify.until("READY=1", timeout=120)
        assert "STATUS=mic lost" in ready, ready
        status = httpx.get(f"http://127.0.0.1:{port}/status").json()
        assert status["state"] == "mic lost" and status["voice"] == "mic lost"
        assert "microphone" in status["problem"]
        answer = run("ask", "--server", f"http://127.0.0.1:{port}", "What is 2 + 2?")
        assert answer.returncode == 0 and "4" in answer.stdout
        notify.until("WATCHDOG=1")  # retrying the device is progress, not a stall
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(30) == 0


def test_the_service_answers_a_spoken_question(
    tmp_path: Path, qwen_path: Path, whisper_dir: Path, voice_path: Path, notify: NotifySocket
) -> None:
    from assistant.speech.tts import PiperTTS
    from assistant.voicebench import speak_to_wav

    tts = PiperTTS(voice_path)
    tts.load()
    question, answer = tmp_path / "q.wav", tmp_path / "a.wav"
    speak_to_wav(tts, "What is the capital of France?", question)
    port = free_port()
    config = tmp_path / "config.toml"
    voice_config(config, qwen_path, whisper_dir, voice_path, port)
    with Process(
        config, tmp_path, env={"NOTIFY_SOCKET": notify.path},
        args=["--listen-from", str(question), "--speak-to", str(answer)],
    ) as proc:  # fmt: skip
        assert "'What is the capital of France?'" in proc.wait_for("turn 1 voice", timeout=120)
        line, _ = notify.until("STATUS=listening", timeout=30)
        while "to first audio" not in line:
            line, _ = notify.until("STATUS=", timeout=30)
        assert "s to first audio" in line
        assert answer.stat().st_size > 20_000
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(30) == 0
