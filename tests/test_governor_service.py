"""The governor's levers in the running service (`qwen-assistant run`, the real model): a
hot temperature file makes the heat budget bind, the status line sent to systemd and
/metrics name the levers, the clock cap is written to cpufreq (a fake policy directory)
and given back at stop, and answers still come."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.test_notify import NotifySocket
from tests.test_service import Process, free_port

pytestmark = pytest.mark.slow


def fake_policy(root: Path) -> Path:
    root.mkdir()
    (root / "cpuinfo_max_freq").write_text("2400000\n")
    (root / "cpuinfo_min_freq").write_text("1500000\n")
    (root / "scaling_max_freq").write_text("2400000\n")
    return root


def test_a_hot_soc_moves_the_levers_in_the_service_and_answers_still_come(
    tmp_path: Path, smollm_path: Path
) -> None:
    sensor = tmp_path / "temp"
    sensor.write_text("76500\n")  # 1.5 °C over the target: the budget binds, gently
    policy = fake_policy(tmp_path / "policy0")
    port = free_port()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[llm]\nmodel = "{smollm_path}"\nmax_tokens = 16\n'
        f'[thermal]\nsensor_path = "{sensor}"\nstale_s = 3600.0\ninterval_s = 0.2\n'
        f'target_c = 75.0\nclock_path = "{policy}"\n'
        f"[api]\nport = {port}\n[voice]\nenabled = false\n"
        "[service]\nstatus_interval_s = 1.0\n"
    )
    notify = NotifySocket(tmp_path / "notify")
    with Process(config, tmp_path / "run", env={"NOTIFY_SOCKET": notify.path}) as proc:
        notify.until("READY=1")
        line, _ = notify.until("STATUS=cooling")
        assert "fan 100%" in line and "(prompts ≤ " in line, line  # the free lever, the clock
        assert "· 4 answers together (heat budget " in line, line  # the batch, as wide as it goes
        url = f"http://127.0.0.1:{port}"
        reply = httpx.post(
            f"{url}/v1/chat/completions",
            json={"messages": [{"role": "user", "content": "Say hello."}]},
            timeout=60,
        )
        assert reply.status_code == 200, reply.text  # slowed, not refused
        assert reply.json()["choices"][0]["message"]["content"]
        full = httpx.get(f"{url}/status").json()
        assert full["admission"]["slots"] == 4 and full["admission"]["parallel"] == 2
        status = full["thermal"]
        assert status["state"] == "cooling" and status["budget_w"] < status["full_w"]
        assert status["prompt_clock_mhz"] < 2400 and status["clock_problem"] == ""
        metrics = httpx.get(f"{url}/metrics").text
        assert "qwen_assistant_heat_budget_watts " in metrics
        written = int((policy / "scaling_max_freq").read_text())
        assert written == status["clock_mhz"] * 1000  # idle: the decode cap is in force
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(30) == 0
    assert (policy / "scaling_max_freq").read_text() == "2400000\n"  # given back at stop
