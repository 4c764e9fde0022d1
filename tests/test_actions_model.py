"""Actions end to end with the real models: a spoken request through `qwen-assistant
listen` (whisper hears it, the Qwen stand-in calls the action, piper says the outcome), a
real HTTP request to a local controller, and honest answers when no action fits."""

from __future__ import annotations

import json
import sys
import wave
from pathlib import Path

import pytest

from tests.hearing import similar
from tests.test_actions import Recorder, controller  # noqa: F401 - the fixture
from tests.test_cli import run
from tests.test_wyoming_model import steady_speech

pytestmark = pytest.mark.slow

LIGHT_ON = """
[[actions]]
name = "light_on"
description = "Turn on the light in a room"
parameters = {{ type = "object", properties = {{ room = {{ type = "string", enum = ["kitchen", "bedroom", "hall"] }} }}, required = ["room"] }}
http = {{ url = "{url}/api/services/light/turn_on", method = "POST", headers = {{ Authorization = "Bearer {{token}}" }}, body = {{ entity_id = "light.{{room}}" }}, token_file = "ha-token" }}
say = "The {{room}} light is on."
"""  # noqa: E501 - TOML inline tables are one line


def setup(tmp_path: Path, qwen: Path, whisper: Path, voice: Path, actions: str) -> Path:
    (tmp_path / "ha-token").write_text("test-token\n")
    config = tmp_path / "config.toml"
    config.write_text(
        f'[llm]\nmodel = "{qwen}"\ntemperature = 0.0\nmax_tokens = 64\n'
        f'[speech]\nstt_engine = "whisper"\nstt_model = "{whisper}"\ntts_voice = "{voice}"\n'
        f"{actions}"
    )
    return config


def listen(tmp_path: Path, config: Path, question: str) -> dict[str, str]:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    # the question in the voice without piper's random variation: the same audio every run
    # (whisper tiny hears a varied "kitchen light" as "kitchen like" now and then)
    wav = tmp_path / "q.wav"
    with wave.open(str(wav), "wb") as out:
        pcm, rate = steady_speech(question)
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(2 * (rate // 4)) + pcm + bytes(2 * rate))  # a second of quiet
    done = run("listen", "--config", str(config), "-i", str(tmp_path / "q.wav"),
               "-o", str(tmp_path / "a.wav"), "--json", "--fast", env=env)  # fmt: skip
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    figures: dict[str, str] = json.loads(done.stdout)
    heard = run("transcribe", "--config", str(config), str(tmp_path / "a.wav"), env=env)
    figures["heard_back"] = heard.stdout.strip()
    return figures


def test_a_spoken_request_makes_one_real_http_request_and_says_so(
    tmp_path: Path,
    controller: str,  # noqa: F811 - the fixture
    qwen_path: Path,
    whisper_dir: Path,
    voice_path: Path,
) -> None:
    config = setup(tmp_path, qwen_path, whisper_dir, voice_path, LIGHT_ON.format(url=controller))
    figures = listen(tmp_path, config, "Turn on the kitchen light please.")
    assert figures["answer"] == "The kitchen light is on.", figures
    ((method, path, auth, body),) = Recorder.requests
    assert (method, path, auth) == ("POST", "/api/services/light/turn_on", "Bearer test-token")
    assert json.loads(body) == {"entity_id": "light.kitchen"}
    assert similar(figures["heard_back"], "The kitchen light is on.") >= 0.75, figures


@pytest.mark.parametrize("configured", [False, True])
def test_a_request_no_action_fits_is_answered_i_cannot(  # noqa: PLR0917 - fixtures
    tmp_path: Path,
    controller: str,  # noqa: F811 - the fixture
    qwen_path: Path,
    whisper_dir: Path,
    voice_path: Path,
    configured: bool,
) -> None:
    actions = LIGHT_ON.format(url=controller) if configured else ""
    config = setup(tmp_path, qwen_path, whisper_dir, voice_path, actions)
    question = "Open the garage door please." if configured else "Turn on the kitchen light please."
    figures = listen(tmp_path, config, question)
    answer = figures["answer"].lower()
    assert "can't" in answer or "cannot" in answer, figures
    assert Recorder.requests == []
    for claim in ("i'll", "i will", "i've", "done", "is now", "unlocked"):
        assert claim not in answer, figures


def test_a_hostile_argument_reaches_the_command_as_one_argument(
    tmp_path: Path, qwen_path: Path
) -> None:
    """What the model writes into a free-text parameter is one literal argv element."""
    log = tmp_path / "argv.json"
    script = tmp_path / "screen"
    script.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"open({str(log)!r}, 'w').write(json.dumps(sys.argv[1:]))\n"
    )
    script.chmod(0o755)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[llm]\nmodel = "{qwen_path}"\ntemperature = 0.0\n[thermal]\nsensor_path = ""\n'
        '[[actions]]\nname = "show_text"\ndescription = "Show a text on the screen"\n'
        'parameters = { type = "object", properties = { text = { type = "string" } }, '
        'required = ["text"] }\n'
        f'command = ["{script}", "show", "{{text}}"]\nsay = "It is on the screen."\n'
    )
    hostile = "hello; rm -rf / && $(reboot)"
    done = run("--config", str(config), "ask", f"Show the text {hostile!r} on the screen.")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "It is on the screen.", done.stdout
    argv = json.loads(log.read_text())
    assert argv[0] == "show" and len(argv) == 2
    assert "rm -rf /" in argv[1] and "$(reboot)" in argv[1]
