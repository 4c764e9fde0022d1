"""The command line as a user meets it: help, exit codes, one-line errors, real answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from assistant.cli import build_parser, main
from tests.test_gguf import make_gguf

COMMANDS = [
    [],
    ["ask"],
    ["chat"],
    ["config"],
    ["config", "check"],
    ["config", "show"],
    ["models"],
    ["models", "fetch"],
    ["models", "list"],
    ["bench"],
    ["bench", "llm"],
    ["bench", "api"],
    ["status"],
    ["listen"],
    ["say"],
    ["transcribe"],
    ["wake"],
    ["audio"],
    ["audio", "devices"],
    ["bench", "voice"],
    ["bench", "stt"],
    ["bench", "wake"],
    ["doctor"],
    ["run"],
    ["reload"],
    ["simulate"],
]


def run(
    *args: str, env: dict[str, str] | None = None, stdin: str = "", timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )


PREFIX = ".venv/bin/qwen-assistant "


def documented_commands(text: str) -> list[list[str]]:
    """The command lines a document shows (those starting with the venv's command), as argv."""
    import shlex

    return [shlex.split(line) for line in text.splitlines() if line.startswith(PREFIX)]


def run_as_documented(
    words: list[str], cwd: Path, *, timeout: float = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a documented command exactly as written: the venv's command, the default config
    (no --config, no $QWEN_ASSISTANT_CONFIG, no model paths), what `models fetch` installed;
    ``env``: the variables the document sets before the command.
    It must exit 0 without a traceback."""
    exe = Path(sys.executable).parent / "qwen-assistant"
    env = {k: v for k, v in os.environ.items() if k != "QWEN_ASSISTANT_CONFIG"} | (env or {})
    done = subprocess.run(
        [str(exe), *words[1:]], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    assert done.returncode == 0, (words, done.stderr)
    assert "Traceback" not in done.stderr
    return done


def test_bench_stt_with_no_voice_named_is_one_usage_line() -> None:
    done = run("bench", "stt", "--voice", " , ", "--json")
    assert done.returncode == 64 and done.stdout == "", done
    assert done.stderr.strip().splitlines()[-1] == (
        "qwen-assistant bench stt: error: argument --voice: names no espeak-ng voice: ' , '"
    )


def test_bench_stt_without_its_model_is_one_line_with_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "no-model"
    done = run("bench", "stt", "--stt-model", str(missing), "--json")
    assert done.returncode == 78 and done.stdout == "", done
    assert done.stderr.strip().splitlines() == [
        f"qwen-assistant: {missing}: no such speech-to-text model; run `qwen-assistant "
        "models fetch stt` or set speech.stt_model"
    ], done.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: qwen-assistant {' '.join(command)}".rstrip())
    assert "--config" in out or command == []


def test_global_options_work_after_the_command(tmp_path: Path) -> None:
    args = build_parser().parse_args(["config", "check", "--config", "x.toml", "--debug"])
    assert (args.config, args.debug) == ("x.toml", True)


def test_missing_command_is_a_usage_error() -> None:
    result = run()
    assert result.returncode == 64  # EX_USAGE
    assert "required: COMMAND" in result.stderr.replace("arguments are ", "")


def test_config_check_ok_and_bad(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("[llm]\nn_ctx = 4096\n")
    result = run("config", "check", "--config", str(good))
    assert (result.returncode, result.stdout) == (0, f"{good}: OK\n")
    bad = tmp_path / "bad.toml"
    bad.write_text("[llm]\nn_ctx = 100000\nmax_token = 3\n")
    result = run("config", "check", "--config", str(bad))
    assert result.returncode == 78
    assert result.stderr.splitlines() == [
        f"{bad}:2:1: llm.n_ctx: must be between 512 and 32768, got 100000",
        f"{bad}:3:1: llm.max_token: unknown key; did you mean 'max_tokens'?",
    ]
    assert result.stdout == ""


def test_config_from_the_environment(tmp_path: Path) -> None:
    bad = tmp_path / "env.toml"
    bad.write_text("[voice]\nwake = 3\n")
    result = run("config", "check", env={"QWEN_ASSISTANT_CONFIG": str(bad)})
    assert result.returncode == 78
    assert result.stderr == f"{bad}:2:1: voice.wake: must be a string, got 3\n"


@pytest.mark.parametrize("value", ["abc", "-1", "2147483648", "1.5"])
def test_a_bad_seed_in_the_environment_is_one_line_and_exit_78(value: str) -> None:
    result = run("config", "check", env={"QWEN_ASSISTANT_SEED": value})
    assert result.returncode == 78
    assert result.stderr == (
        f"$QWEN_ASSISTANT_SEED: {value!r} is not a seed; use a whole number from 0 to "
        "2147483647, or unset it\n"
    )


@pytest.mark.slow
def test_one_seed_repeats_an_answer_and_a_voice(tmp_path: Path) -> None:
    """docs/cli.md's two seeded commands, as written, with the default config (temperature
    0.7, piper's variation on): each run twice gives the same answer and the same audio; the
    voice under another seed is other audio."""
    import shlex

    lines = [
        line
        for line in (Path(__file__).parent.parent / "docs/cli.md").read_text().splitlines()
        if line.startswith("QWEN_ASSISTANT_SEED=")
    ]
    assert len(lines) == 2
    (setting, *ask), (_, *say) = (shlex.split(line) for line in lines)
    assert (ask[1], say[1], say[-2]) == ("ask", "say", "-o")
    seed = dict([setting.split("=", 1)])

    def said(env: dict[str, str]) -> bytes:
        run_as_documented(say, tmp_path, env=env)
        out = tmp_path / say[-1]
        data = out.read_bytes()
        out.unlink()
        return data

    first = run_as_documented(ask, tmp_path, env=seed).stdout
    assert first.strip() and run_as_documented(ask, tmp_path, env=seed).stdout == first
    assert said(seed) == said(seed) != said({"QWEN_ASSISTANT_SEED": "8"})


def test_config_show_is_valid_toml_with_the_model_resolved(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[paths]\nmodels_dir = "m"\n')
    result = run("config", "show", "--config", str(config))
    assert result.returncode == 0
    shown = tomllib.loads(result.stdout)
    assert shown["paths"]["models_dir"] == str(tmp_path / "m")
    assert shown["llm"]["n_ctx"] == 2048
    assert (
        f'llm.model = "auto" -> {tmp_path / "m" / "qwen2.5-0.5b-instruct-q4_k_m.gguf"}'
        in result.stdout
    )


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (None, "no such model file"),
        (b"", "is empty (0 bytes)"),
        (os.urandom(8192).replace(b"GGUF", b"...."), "is not a GGUF model file"),
        (b"<html>Not Found</html>", "is not a GGUF model file"),
        (make_gguf()[:-7], "is truncated"),
    ],
    ids=["missing", "zero-length", "random", "html", "truncated"],
)
def test_bad_model_file_is_one_line_and_exit_78(
    tmp_path: Path, content: bytes | None, detail: str
) -> None:
    model = tmp_path / "model.gguf"
    if content is not None:
        model.write_bytes(content)
    result = run("ask", "--model", str(model), "hello", timeout=60)
    assert result.returncode == 78
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"qwen-assistant: {model}: {detail}")
    assert line.endswith(
        "run `qwen-assistant models fetch` or point llm.model at a valid .gguf file"
    )
    debug = run("ask", "--debug", "--model", str(model), "hello", timeout=60)
    assert debug.returncode == 78
    assert "Traceback" in debug.stderr


def test_auto_model_not_fetched_says_run_models_fetch(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[paths]\nmodels_dir = "{tmp_path / "empty"}"\n')
    result = run("ask", "--config", str(config), "hi", timeout=60)
    assert result.returncode == 78
    assert result.stderr == (
        f"qwen-assistant: {tmp_path / 'empty' / 'qwen2.5-0.5b-instruct-q4_k_m.gguf'}: no such "
        "model file; run `qwen-assistant models fetch` or point llm.model at a valid .gguf file\n"
    )


def test_models_list_on_an_empty_directory(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f'[paths]\nmodels_dir = "{tmp_path}"\n')
    result = run("models", "list", "--config", str(config))
    assert result.returncode == 0
    for role in ("llm", "stt", "tts"):
        assert f"{role:<5} not installed: run `qwen-assistant models fetch {role}`" in result.stdout
    catalog = run("models", "list", "--catalog")
    assert "qwen2.5-0.5b-instruct" in catalog.stdout
    assert "qwen2.5-coder-0.5b-instruct" in catalog.stdout


@pytest.mark.slow
def test_ask_streams_an_answer_with_stats(smollm_path: Path) -> None:
    result = run(
        "ask",
        "--model",
        str(smollm_path),
        "--stats",
        "--temperature",
        "0",
        "--max-tokens",
        "24",
        "What",
        "is",
        "the",
        "capital",
        "of",
        "France?",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "[first token " in result.stderr and " tok/s · " in result.stderr


@pytest.mark.slow
def test_chat_takes_several_turns_from_a_pipe(smollm_path: Path) -> None:
    result = run(
        "chat",
        "--model",
        str(smollm_path),
        "--temperature",
        "0",
        "--max-tokens",
        "16",
        "--stats",
        stdin="Hello there\n\n/reset\nWhat is two plus two?\n/exit\nnever\n",
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("[first token ") == 2
    assert "[new conversation]" in result.stderr


@pytest.mark.slow
def test_bench_llm_json_has_every_key(smollm_path: Path) -> None:
    result = run(
        "bench", "llm", "--json", "--model", str(smollm_path), "--tokens", "16", "--runs", "1"
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    for key in (
        "load_s",
        "prefill_tok_s",
        "decode_tok_s",
        "bare_decode_tok_s",
        "decode_ratio",
        "cold_prefill_s",
        "cached_prefill_s",
        "prefill_ratio",
        "peak_rss_mb",
        "threads",
        "cpu_count",
    ):
        assert isinstance(data[key], int | float), key
    assert data["cached_prefill_s"] < data["cold_prefill_s"]
    table = run("bench", "llm", "--model", str(smollm_path), "--tokens", "8", "--runs", "1")
    assert "decode ratio" in table.stdout and "prefill ratio" in table.stdout


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--max-tokens", "0", "must be between 1 and 8192, got 0"),
        ("--temperature", "-1", "must be between 0 and 2, got -1"),
        ("--temperature", "hot", "not a number: 'hot'"),
    ],
)
def test_bad_option_values_are_usage_errors(flag: str, value: str, message: str) -> None:
    result = run("ask", flag, value, "hi")
    assert result.returncode == 64  # EX_USAGE
    assert message in result.stderr


@pytest.mark.slow
def test_closed_stdout_ends_ask_at_once_without_a_traceback(smollm_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "assistant",
            "ask",
            "--model",
            str(smollm_path),
            "--temperature",
            "0",
            "Write a long story about a robot.",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.read(1)
    proc.stdout.close()  # like `qwen-assistant ask … | head -c 1`
    assert proc.wait(timeout=60) == 0  # the engine was released: no deadlock on close
    assert b"Traceback" not in proc.stderr.read()


@pytest.mark.slow
def test_chat_reports_a_too_long_message_and_keeps_going(smollm_path: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("[llm]\nn_ctx = 512\nmax_tokens = 32\n")
    result = run(
        "chat",
        "--config",
        str(config),
        "--model",
        str(smollm_path),
        "--stats",
        stdin="word " * 800 + "\nSay hello.\n",
    )
    assert result.returncode == 0, result.stderr
    assert (
        "needs" in result.stderr
        and "llm.n_ctx = 512: shorten it or raise llm.n_ctx" in result.stderr
    )
    assert result.stderr.count("[first token ") == 1  # the next question was answered


def test_ask_when_too_hot_is_busy_before_loading_the_model(tmp_path: Path) -> None:
    temp = tmp_path / "temp"
    temp.write_text("84000\n")
    config = tmp_path / "config.toml"
    config.write_text(
        f'[llm]\nmodel = "{tmp_path / "never-loaded.gguf"}"\n'
        f'[thermal]\nsensor_path = "{temp}"\nstale_s = 3600.0\n'
    )
    result = run("ask", "--config", str(config), "hello")
    assert result.returncode == 75  # EX_TEMPFAIL
    assert result.stderr.strip().splitlines()[-1] == (
        "qwen-assistant: busy: SoC at 84.0 °C, above thermal.critical_c 82.0; retry in 60 s"
    )


@pytest.mark.slow
def test_chat_without_a_sensor_runs_at_the_floor_and_says_why(
    smollm_path: Path, tmp_path: Path
) -> None:
    sensor = tmp_path / "no-sensor"
    config = tmp_path / "config.toml"
    config.write_text(
        f'[llm]\nmodel = "{smollm_path}"\nmax_tokens = 4\n[thermal]\nsensor_path = "{sensor}"\n'
    )
    questions = "".join(f"question {n}\n" for n in range(1, 8))
    result = run("chat", "--config", str(config), stdin=questions)
    assert result.returncode == 0  # five answers from the burst, then the floor's rate
    assert len(result.stdout.strip().splitlines()) >= 5
    refusal = (
        "qwen-assistant: busy: admitting 0.5 requests/min now (thermal sensor lost: "
        f"{sensor}: no such file); retry in "
    )
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith(refusal) for line in lines), lines


@pytest.mark.slow
def test_chat_on_a_machine_without_a_thermal_sensor_answers_every_question() -> None:
    """The default config, nothing named: `sensor_path = "auto"` finds no thermal zone on a
    VM (this project's machines have none), so there is no thermal control and no refusal.
    (With a zone, the questions are answered too: the SoC is cool.)"""
    from assistant.thermal.sensor import find_sensor

    # more than thermal.burst, back to back: no bucket paces them without thermal control
    questions = [f"What is {n} plus {n}? Answer with one number." for n in range(1, 8)]
    result = run("chat", stdin="".join(q + "\n" for q in questions), timeout=600)
    assert result.returncode == 0, result.stderr
    assert "busy" not in result.stderr and "retry in" not in result.stderr
    answers = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(answers) >= len(questions), result.stdout
    if not find_sensor("auto")[0]:
        assert "thermal" not in result.stderr  # quiet: the CLI keeps the governor's warning


def exit_table() -> dict[int, str]:
    """docs/cli.md's exit statuses: {status: name}."""
    rows = (Path(__file__).parent.parent / "docs" / "cli.md").read_text().splitlines()
    table = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            table[int(cells[0])] = cells[1]
    return table


@pytest.mark.parametrize(
    ("args", "stdin", "name", "message"),
    [
        (["ask", ""], None, "usage", "the question is empty"),
        (["ask", "  "], None, "usage", "the question is empty"),
        (["ask", "-"], "", "usage", "stdin was empty"),
        (["ask", "--temperature", "hot", "hi"], None, "usage", "not a number"),
        (["ask", "--json-schema", "/nonexistent/s.json", "hi"], None, "usage", "s.json: cannot"),
        (["ask", "--json-schema", "/etc/hostname", "hi"], None, "usage", "hostname: not JSON"),
        (["status", "--runtime-dir", "/nonexistent/qa"], None, "not running", "no running"),
        (["reload", "--runtime-dir", "/nonexistent/qa"], None, "not running", "no running"),
        (["ask", "--server", "http://127.0.0.1:9", "hi"], None, "unavailable", "cannot reach"),
        (["config", "check", "--config", "/nonexistent/c.toml"], None, "configuration", "no such"),
        (["wake", "/dev/null", "--word", "hey_siri"], None, "usage", "not one of okay_nabu"),
        (["say", ""], None, "usage", "say: the text is empty"),
        (["say", " ", "..."], None, "usage", "say: the text is empty"),
        (["say", "Hello", "-o", "/no/such/dir/x.wav"], None, "cannot create", "x.wav: cannot"),
    ],
)
def test_exit_statuses_follow_the_documented_table(
    args: list[str], stdin: str | None, name: str, message: str
) -> None:
    result = run(*args, stdin=stdin or "")
    assert exit_table()[result.returncode] == name, (result.returncode, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    if name != "usage" or "--json-schema" in args:  # argparse prints its usage line first
        assert result.stderr.count("\n") == 1, result.stderr


def test_the_exit_table_names_every_code_the_code_uses() -> None:
    from assistant import errors

    codes = {v for k, v in vars(errors).items() if k.startswith("EX_")}
    assert codes <= set(exit_table()), codes
    assert {0, 1, 3, 64, 65, 69, 73, 75, 77, 78} <= set(exit_table())


def test_chat_prompt_ctrl_c_clears_the_line_and_a_second_within_2_s_leaves(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from assistant.cli.text import Prompt

    now = [100.0]
    ki = KeyboardInterrupt()
    # (seconds since the previous key, what arrives)
    typed: list[tuple[float, object]] = [(0.5, ki), (0.5, "hello")]
    typed += [(0.5, ki), (3.0, ki), (0.5, "again"), (0.5, ki), (0.5, ki)]

    def read(_prompt: str) -> str:
        gap, item = typed.pop(0)
        now[0] += gap
        if isinstance(item, BaseException):
            raise item
        return str(item)

    prompt = Prompt(True, read=read, clock=lambda: now[0])
    assert prompt.next() == "hello"  # the first Ctrl-C only cleared the line
    assert prompt.next() == "again"  # two Ctrl-C, but 3 s apart: still chatting
    assert prompt.next() is None  # two within 2 s: leave
    assert capsys.readouterr().err.count("line cleared; Ctrl-C again within 2 s") == 4


def test_wake_reports_no_detection_in_a_recording_without_the_word(tmp_path: Path) -> None:
    from assistant.speech.audio import WavSpeaker
    from tests.test_voice import RATE, tone

    path = tmp_path / "tone.wav"
    wav = WavSpeaker(path)
    wav.start(RATE)
    wav.write(tone(2.0))  # a 220 Hz hum
    wav.stop()
    out = run("wake", str(path))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("no detections in 2.0 s of audio (okay_nabu, hey_jarvis")
    shown = json.loads(run("wake", str(path), "--json", "--word", "alexa").stdout)
    assert shown["detections"] == [] and shown["audio_s"] == 2.0 and shown["rtf"] > 0
