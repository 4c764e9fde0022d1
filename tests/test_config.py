"""Config loading: every problem at once, each as FILE:LINE:COL: section.key: message."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from assistant.config import (
    Config,
    data_dir,
    default_config_path,
    find_config,
    load_config,
)
from assistant.errors import EX_CONFIG, ConfigError

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.exit_code == EX_CONFIG
    return info.value.problems


def test_shipped_file_is_complete_and_equals_the_schema_defaults() -> None:
    shipped = load_config(ROOT / "config.toml")
    defaults = load_config(None)  # the schema's defaults, as loaded (paths, language)
    for f in dataclasses.fields(Config):
        if f.name not in ("source", "paths"):
            assert getattr(shipped, f.name) == getattr(defaults, f.name), f.name
    text = (ROOT / "config.toml").read_text()
    assert "\n# [[actions]]\n" in text  # a commented example: no actions by default
    for f in dataclasses.fields(Config):
        if f.name in ("source", "actions"):
            continue
        assert f"[{f.name}]" in text
        for key in dataclasses.fields(getattr(defaults, f.name)):
            assert f"\n{key.name} = " in text, f"{f.name}.{key.name} missing from config.toml"


def test_package_ships_the_same_file() -> None:
    assert default_config_path().read_bytes() == (ROOT / "config.toml").read_bytes()


def test_range_error_has_file_line_column_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "# comment\n[llm]\nn_threads = 2\nn_ctx = 100000\n")
    assert problems(path) == [f"{path}:4:1: llm.n_ctx: must be between 512 and 32768, got 100000"]


def test_every_problem_is_reported_together_in_file_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        (
            "[llm]\n"
            "n_ctx = 100000\n"
            "temprature = 0.5\n"
            'mlock = "yes"\n'
            "[speech]\n"
            'stt_engine = "wisper"\n'
            "[thermals]\n"
            "target_c = 70\n"
            "[api]\n"
            "port = 0\n"
        ),
    )
    assert problems(path) == [
        f"{path}:2:1: llm.n_ctx: must be between 512 and 32768, got 100000",
        f"{path}:3:1: llm.temprature: unknown key; did you mean 'temperature'?",
        f'{path}:4:1: llm.mlock: must be true or false, got "yes"',
        f"{path}:6:1: speech.stt_engine: must be one of 'auto', 'vosk', 'whisper', got 'wisper'",
        f"{path}:7:1: thermals: unknown section; did you mean 'thermal'?",
        f"{path}:10:1: api.port: must be between 1 and 65535, got 0",
    ]


def test_type_errors_name_the_expected_type(tmp_path: Path) -> None:
    path = write(tmp_path, '[llm]\nn_ctx = "big"\ntemperature = true\nsystem_prompt = 3\n')
    assert problems(path) == [
        f'{path}:2:1: llm.n_ctx: must be a whole number, got "big"',
        f"{path}:3:1: llm.temperature: must be a number, got true",
        f"{path}:4:1: llm.system_prompt: must be a string, got 3",
    ]


def test_cross_field_checks(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        (
            "[llm]\nn_ctx = 512\nmax_tokens = 500\n"
            "[thermal]\ntarget_c = 75.0\ncritical_c = 70.0\n"
            "fan_curve = [[60.0, 49], [50.0, 29]]\n"
            '[api]\nhost = "0.0.0.0"\n'
        ),
    )
    assert problems(path) == [
        f"{path}:3:1: llm.max_tokens: must leave at least 64 tokens of llm.n_ctx (512) for the "
        "prompt, got 500",
        f"{path}:6:1: thermal.critical_c: must be above thermal.target_c (75.0), got 70.0",
        f"{path}:7:1: thermal.fan_curve: temperatures must strictly increase",
        f"{path}:9:1: api.host: binding '0.0.0.0' exposes the assistant to the network; set "
        "api.api_key or use 127.0.0.1",
    ]


def test_non_loopback_bind_is_allowed_with_an_api_key(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[api]\nhost = "0.0.0.0"\napi_key = "s3cret"\n'))
    assert config.api.host == "0.0.0.0"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[llm\nn_ctx = 1\n", "1:5: syntax: Expected ']' at the end of a table declaration"),
        ("[llm]\nn_ctx = \n", "2:9: syntax: Invalid value"),
        ('[llm]\nmodel = "unterminated\n', "2:22: syntax: Illegal character '\\n'"),
    ],
)
def test_syntax_errors_give_line_and_column(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    assert problems(path) == [f"{path}:{expected}"]


def test_half_written_file_is_a_syntax_error_not_a_crash(tmp_path: Path) -> None:
    full = (ROOT / "config.toml").read_text()
    cut = full[: full.index("fan_curve = [[50.0") + 20]
    (message,) = problems(write(tmp_path, cut))
    assert ": syntax: " in message


def test_multiline_values_and_dotted_keys_are_located(tmp_path: Path) -> None:
    path = write(
        tmp_path, ("[thermal]\nfan_curve = [\n  [50.0, 29],\n  [60.0, 149],\n]\ntarget_c = 90\n")
    )
    assert problems(path) == [
        f"{path}:2:1: thermal.fan_curve: duties must be percentages between 0 and 100",
        f"{path}:6:1: thermal.target_c: must be between 40 and 79.5, got 90",
    ]
    dotted = write(tmp_path, 'llm.n_ctx = 1\nvoice = { wake = "clap" }\n')
    assert problems(dotted) == [
        f"{dotted}:1:1: llm.n_ctx: must be between 512 and 32768, got 1",
        f"{dotted}:2:11: voice.wake: must be one of 'phrase', 'word', 'button', 'always', "
        "got 'clap'",
    ]


def test_section_that_is_not_a_table(tmp_path: Path) -> None:
    path = write(tmp_path, "llm = 3\n")
    assert problems(path) == [f"{path}:1:1: llm: must be a table ([llm]), got 3"]


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.toml") == [
        f"{tmp_path / 'nope.toml'}: no such file; check --config or $QWEN_ASSISTANT_CONFIG"
    ]
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    (message,) = problems(binary)
    assert message.startswith(f"{binary}: cannot read: ")


def test_partial_file_keeps_defaults_and_resolves_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("MODELS_HOME", str(tmp_path / "m"))
    written = load_config(
        write(tmp_path, '[paths]\nmodels_dir = "$MODELS_HOME/x"\n[llm]\nmodel = "weights/a.gguf"\n')
    )
    assert written.paths.models_dir == str(tmp_path / "m" / "x")
    assert written.llm.model == str(tmp_path / "weights" / "a.gguf")
    assert written.llm.n_ctx == 2048
    relative = load_config(write(tmp_path, '[paths]\nmodels_dir = "mine"\n'))
    assert relative.paths.models_dir == str(tmp_path / "mine")
    defaults = load_config(write(tmp_path, "[llm]\nn_ctx = 4096\n"))
    assert defaults.paths.models_dir == str(data_dir() / "models")
    assert data_dir() == tmp_path / "data" / "qwen-assistant"
    assert load_config(None).llm.model == "auto"


def test_find_config_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("assistant.config.load.SYSTEM_CONFIG", tmp_path / "etc.toml")
    assert find_config(None) is None
    (tmp_path / "etc.toml").write_text("")
    assert find_config(None) == tmp_path / "etc.toml"
    monkeypatch.setenv("QWEN_ASSISTANT_CONFIG", str(tmp_path / "env.toml"))
    assert find_config(None) == tmp_path / "env.toml"
    assert find_config(tmp_path / "cli.toml") == tmp_path / "cli.toml"


def test_config_is_frozen() -> None:
    config = load_config(None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.llm.n_ctx = 4096  # type: ignore[misc]


def test_to_toml_round_trips(tmp_path: Path) -> None:
    config = load_config(ROOT / "config.toml")
    again = load_config(write(tmp_path, config.to_toml()))
    assert dataclasses.replace(again, source=None) == dataclasses.replace(config, source=None)


@pytest.mark.slow
def test_built_wheel_carries_the_default_config(tmp_path: Path) -> None:
    """assistant/config.toml is a symlink in the repo; the wheel must hold the file itself."""
    import subprocess
    import sys
    import zipfile

    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("qwen_assistant-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        assert zf.read("assistant/config.toml") == (ROOT / "config.toml").read_bytes()
        assert "assistant/py.typed" in zf.namelist()


def test_the_governors_lever_keys_reject_bad_values_each_on_its_line(tmp_path: Path) -> None:
    """`qwen-assistant config check` on out-of-range lever settings: exit 78, one line each."""
    from tests.test_cli import run

    path = write(
        tmp_path,
        "[thermal]\nmin_clock_mhz = 3000\nmin_pacing = 0.0\nmin_threads = 0\nclock_path = 7\n",
    )
    result = run("config", "check", "--config", str(path))
    assert result.returncode == 78
    assert result.stderr.strip().splitlines() == [
        f"{path}:2:1: thermal.min_clock_mhz: must be between 1500 and 2400, got 3000",
        f"{path}:3:1: thermal.min_pacing: must be between 0.1 and 1, got 0",
        f"{path}:4:1: thermal.min_threads: must be between 1 and 64, got 0",
        f"{path}:5:1: thermal.clock_path: must be a string, got 7",
    ]
    assert "Traceback" not in result.stderr


def test_the_system_prompt_asks_for_the_configured_language(tmp_path: Path) -> None:
    """The default system prompt names speech.language ("Answer in {language}, …"); a
    prompt of the user's own gets one line asking for it at its end, and a prompt that
    already says it (config show's output loaded again) is not told twice."""
    english = load_config(None).llm.system_prompt
    assert english == Config().llm.system_prompt and "Answer in English, in one" in english
    mandarin = load_config(write(tmp_path, '[speech]\nlanguage = "zh"\n')).llm.system_prompt
    assert "Answer in Simplified Chinese, in one" in mandarin and "English" not in mandarin
    assert mandarin.endswith("emoji. 请用简体中文回答。")
    own = write(tmp_path, '[llm]\nsystem_prompt = "Be brief."\n[speech]\nlanguage = "zh"\n')
    assert load_config(own).llm.system_prompt == "Be brief. 请用简体中文回答。"
    again = write(tmp_path, f"[llm]\nsystem_prompt = {json.dumps(english)}\n")
    assert load_config(again).llm.system_prompt == english
    assert problems(write(tmp_path, '[speech]\nlanguage = "fr"\n')) == [
        f"{tmp_path / 'config.toml'}:2:1: speech.language: must be one of 'en', 'zh', got 'fr'"
    ]


def test_decode_nice_is_a_nice_value(tmp_path: Path) -> None:
    (problem,) = problems(write(tmp_path, "[llm]\ndecode_nice = 20\n"))
    assert "llm.decode_nice" in problem and "20" in problem
    assert load_config(write(tmp_path, "[llm]\ndecode_nice = 0\n")).llm.decode_nice == 0


def test_a_quantized_kv_cache_without_flash_attention_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[llm]\nflash_attn = "off"\nkv_type = "q8_0"\n')
    (problem,) = problems(path)
    assert "llm.kv_type: a q8_0 KV cache needs flash attention" in problem
    path = write(tmp_path, '[llm]\nkv_type = "q9"\n')
    assert "llm.kv_type: must be one of" in problems(path)[0]
    assert load_config(write(tmp_path, '[llm]\nflash_attn = "on"\nkv_type = "q8_0"\n'))


def test_the_front_end_keys_reject_bad_values_each_on_its_line(tmp_path: Path) -> None:
    """`qwen-assistant config check` on a noise suppression, gain or wake_hears out of range:
    exit 78, one line each naming the file, line, key and what it takes."""
    from tests.test_cli import run

    path = write(
        tmp_path,
        '[speech]\nnoise_suppression = 5\nauto_gain_dbfs = -1\nwake_hears = "loud"\n'
        "whisper_window_s = 3\n",
    )
    result = run("config", "check", "--config", str(path))
    assert result.returncode == 78
    assert result.stderr.strip().splitlines() == [
        f"{path}:2:1: speech.noise_suppression: must be between 0 and 4, got 5",
        f"{path}:3:1: speech.auto_gain_dbfs: must be between 0 and 31, got -1",
        f"{path}:4:1: speech.wake_hears: must be one of 'raw', 'clean', got 'loud'",
        f"{path}:5:1: speech.whisper_window_s: must be between 5 and 30, got 3",
    ]
    assert "Traceback" not in result.stderr
