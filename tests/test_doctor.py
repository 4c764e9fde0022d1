"""`qwen-assistant doctor`: one line per check, the fix with every problem, exit 1 on FAIL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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
    # no speech-to-text model in that models directory: a WARN with voice off, and the fix
    (stt,) = [line for line in lines if line.startswith(("WARN  stt", "FAIL  stt"))]
    assert stt.startswith("WARN") and "models fetch stt" in stt, stt
    assert any(line.startswith("OK    wake") and "wake word okay_nabu" in line for line in lines)
    assert "Traceback" not in result.stdout + result.stderr


def test_doctor_fails_a_missing_speech_model_when_voice_is_on(tmp_path: Path) -> None:
    from assistant.doctor.software import speech as _speech

    config = tmp_path / "config.toml"
    config.write_text(f'[speech]\nstt_model = "{tmp_path}/nothing"\n')
    stt, _vad, _front, _wake = _speech(load_config(config))
    assert stt.level == "FAIL" and f"{tmp_path}/nothing: no such speech-to-text model" in stt.detail


def test_doctor_checks_the_clock_lever(tmp_path: Path) -> None:
    from assistant.doctor.machine import thermal as _thermal

    sensor = tmp_path / "temp"
    sensor.write_text("61000\n")
    policy = tmp_path / "policy0"
    policy.mkdir()
    for name, khz in (("cpuinfo_max_freq", 2400000), ("cpuinfo_min_freq", 1500000)):
        (policy / name).write_text(f"{khz}\n")
    (policy / "scaling_max_freq").write_text("2400000\n")
    config = tmp_path / "config.toml"
    config.write_text(f'[thermal]\nsensor_path = "{sensor}"\nclock_path = "{policy}"\n')
    rows = [(c.level, c.name, c.detail) for c in _thermal(load_config(config))]
    assert rows == [
        ("OK", "thermal", f"{sensor}: 61.0 °C"),
        ("OK", "clock", f"{policy / 'scaling_max_freq'}: writable, 1500-2400 MHz (now ≤ 2400 MHz)"),
    ]
    config.write_text(f'[thermal]\nsensor_path = "{sensor}"\nclock_path = "{tmp_path}/none"\n')
    clock = list(_thermal(load_config(config)))[1]
    assert (clock.level, clock.name) == ("WARN", "clock")
    assert clock.detail == (
        f"{tmp_path}/none: no cpufreq policy on this machine: the governor uses threads, "
        "pacing and admission instead"
    )


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


def test_audio_devices_are_looked_up_by_name_like_the_service(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import dataclasses

    from assistant.config import Config
    from assistant.doctor.machine import audio as _audio
    from assistant.speech import audio

    devices = [
        {"index": 0, "name": "bcm2835 Headphones", "inputs": 0, "outputs": 2, "rate": 44100},
        {"index": 3, "name": "USB PnP Sound Device", "inputs": 1, "outputs": 2, "rate": 48000},
    ]
    monkeypatch.setattr(audio, "list_devices", lambda: devices)
    config = Config()
    speech = dataclasses.replace(config.speech, input_device="ReSpeaker", output_device="usb")
    checks = list(_audio(dataclasses.replace(config, speech=speech)))
    assert [(c.level, c.detail) for c in checks] == [
        (
            "FAIL",
            "speech.input_device 'ReSpeaker' not found; input devices: 'USB PnP Sound Device'",
        ),
        ("OK", "output: 'USB PnP Sound Device'"),
    ]


def test_doctor_checks_each_actions_program_and_token_file(tmp_path: Path) -> None:
    from assistant.doctor.software import actions as _actions

    assert [c.level for c in _actions(load_config(None))] == ["OK"]
    (tmp_path / "token").write_text("t")
    config = tmp_path / "config.toml"
    config.write_text(
        '[[actions]]\nname = "ok"\ndescription = "d"\ncommand = ["/bin/true"]\n'
        '[[actions]]\nname = "gone"\ndescription = "d"\ncommand = ["/no/robot"]\n'
        '[[actions]]\nname = "ha"\ndescription = "d"\n'
        'http = { url = "http://a/x", headers = { A = "{token}" }, token_file = "token" }\n'
        '[[actions]]\nname = "ha2"\ndescription = "d"\n'
        'http = { url = "http://a/x", headers = { A = "{token}" }, token_file = "nope" }\n'
    )
    checks = list(_actions(load_config(config)))
    assert [c.level for c in checks] == ["OK", "FAIL", "WARN", "FAIL"]
    assert "/no/robot is not an executable file" in checks[1].detail
    # the token file under /tmp: readable here, hidden from the service (PrivateTmp)
    assert "the service's sandbox cannot reach /tmp (PrivateTmp=yes: its own" in checks[2].detail
    assert f"cannot read {tmp_path / 'nope'}" in checks[3].detail
    robot = tmp_path / "robot"
    robot.write_text("#!/bin/sh\n")
    robot.chmod(0o755)
    config.write_text(f'[[actions]]\nname = "r"\ndescription = "d"\ncommand = ["{robot}"]\n')
    (check,) = _actions(load_config(config))  # `doctor` said OK for a program under /tmp
    assert check.level == "WARN" and "cannot reach /tmp" in check.detail


@pytest.mark.parametrize(
    ("word", "level", "text"),
    [
        ("hey_jarvis", "OK", "the voice loop wakes on the wake word hey_jarvis (microwakeword)"),
        ("hey_siri", "FAIL", "voice.wake_word: 'hey_siri': no such microWakeWord model"),
    ],
)
def test_doctor_checks_the_wake_word(tmp_path: Path, word: str, level: str, text: str) -> None:
    from assistant.doctor.software import speech as _speech

    config = tmp_path / "config.toml"
    config.write_text(f'[voice]\nwake = "word"\nwake_word = "{word}"\n')
    _stt, _vad, _front, wake = _speech(load_config(config))
    assert wake.level == level and text in wake.detail, wake


@pytest.mark.parametrize(
    ("speech", "text"),
    [
        ("", "speex noise suppression 1 (-15 dB) for the recognizer and the wake word; "),
        (
            'wake_hears = "raw"\nauto_gain_dbfs = 12',
            "noise suppression 1 (-15 dB), auto gain 12 dBFS for the recognizer; ",
        ),
        ("noise_suppression = 0", "off (speech.noise_suppression = 0, auto_gain_dbfs = 0)"),
    ],
)
def test_doctor_shows_the_audio_front_end(tmp_path: Path, speech: str, text: str) -> None:
    from assistant.doctor.software import front_end

    config = tmp_path / "config.toml"
    config.write_text(f"[speech]\n{speech}\n")
    check = front_end(load_config(config), 16000)
    assert check.level == "OK" and text in check.detail, check
    assert check.detail.endswith("of a core") or "off" in check.detail
