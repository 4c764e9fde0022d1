"""speech.language: the prompt's language line, what a voice can read, the models' language."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from assistant.config import load_config
from assistant.errors import ModelError
from assistant.language import readable, unreadable, voice_language, with_language
from assistant.models.catalog import lookup
from assistant.speech.stt import make_recognizer
from assistant.speech.tts import PiperTTS


def test_with_language_names_it_or_adds_the_line_once() -> None:
    assert with_language("Answer in {language}, briefly.", "zh") == (
        "Answer in Simplified Chinese, briefly. 请用简体中文回答。"
    )
    assert with_language("Answer in {language}, briefly.", "en") == "Answer in English, briefly."
    assert with_language("Be brief.", "en") == "Be brief. Answer in English."
    assert with_language("Be brief. Answer in English.", "en").count("English") == 1
    assert with_language("", "zh") == "请用简体中文回答。"


@pytest.mark.parametrize(
    ("voice", "language"), [("en-us", "en"), ("cmn", "zh"), ("zh_CN", "zh"), ("de", "de")]
)
def test_voice_language(voice: str, language: str) -> None:
    assert voice_language(voice) == language


def test_what_an_english_voice_cannot_read() -> None:
    assert unreadable("Paris is the capital.", "en") == ""
    assert unreadable("巴黎是首都。", "en") == "巴黎是首都。"
    assert readable("The word 巴黎 means Paris.", "en") == "The word means Paris."
    assert readable("巴黎是首都。", "en") == ""  # nothing left: say nothing, not noise
    assert readable("ＡＢＣ。", "en") == ""  # full-width forms too
    # a Mandarin voice reads Chinese and Latin letters, not kana or Hangul
    assert unreadable("Paris 是法国的首都。", "zh") == ""
    assert readable("こんにちは 你好", "zh") == "你好"


def _voice(tmp_path: Path, espeak: str) -> PiperTTS:
    tts = PiperTTS(tmp_path / "v.onnx")
    tts._voice = SimpleNamespace(config=SimpleNamespace(espeak_voice=espeak, sample_rate=22050))
    return tts


def test_the_voice_reports_unreadable_text_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tts = _voice(tmp_path, "en-us")
    with caplog.at_level(logging.WARNING, "assistant.speech.tts"):
        assert tts.readable("Hello.") == "Hello." and not caplog.records
        assert tts.readable("巴黎是法国的首都。") == ""
        assert tts.readable("它很大。") == "" and tts.readable("Paris 巴黎.") == "Paris ."
    (record,) = caplog.records
    assert "v.onnx (en) cannot read '巴黎是法国的首都。'" in record.getMessage()
    assert 'speech.language = "zh"' in record.getMessage()
    assert list(tts.synthesize("巴黎。")) == []  # nothing reaches piper


def test_an_english_stt_model_with_mandarin_configured_is_one_line(tmp_path: Path) -> None:
    """The installed catalog model's language is checked before it loads."""
    models = tmp_path / "models"
    whisper = models / lookup("whisper-tiny-en").main
    whisper.mkdir(parents=True)
    (whisper / "model.bin").write_bytes(b"")
    (models / "manifest.json").write_text(
        json.dumps({"models": {}, "roles": {"stt": "whisper-tiny-en"}})
    )
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\nmodels_dir = "{models}"\n[speech]\nlanguage = "zh"\n')
    with pytest.raises(ModelError) as info:
        make_recognizer(load_config(config))
    assert str(info.value) == (
        f'{whisper} is a speech-to-text model for English but speech.language is "zh"; '
        "run `qwen-assistant models fetch stt` for Mandarin Chinese, or set "
        'speech.language = "en"'
    )


def test_doctor_warns_when_the_voice_speaks_another_language(tmp_path: Path) -> None:
    from assistant.doctor.software import voice as _voice

    models = tmp_path / "models"
    models.mkdir()
    (models / "en_US-joe-medium.onnx").write_bytes(b"")
    (models / "manifest.json").write_text(
        json.dumps({"models": {}, "roles": {"tts": "piper-joe-medium"}})
    )
    config = tmp_path / "config.toml"
    config.write_text(f'[paths]\nmodels_dir = "{models}"\n[speech]\nlanguage = "zh"\n')
    (check,) = _voice(load_config(config))
    assert check.level == "WARN" and "speaks English" in check.detail, check
    assert "models fetch tts" in check.detail
    config.write_text(f'[paths]\nmodels_dir = "{models}"\n')
    (check,) = _voice(load_config(config))
    assert check.level == "OK" and check.detail.endswith("(English)"), check
