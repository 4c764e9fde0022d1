"""The spoken language (``speech.language``): what it asks of the model, what a voice can read.

:func:`with_language` adds one line to the system prompt asking for answers in the
configured language, so the model does not answer a Chinese question in Chinese to an
English voice. :func:`unreadable` finds the characters a piper voice would read as noise
(Chinese characters for an English voice: espeak-ng spells them out, or drops them, as
"Chinese letter"); :func:`readable` removes them, and the caller reports it once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["LANGUAGES", "Language", "readable", "unreadable", "voice_language", "with_language"]


@dataclass(frozen=True)
class Language:
    code: str
    name: str
    #: the line the system prompt ends with
    directive: str


LANGUAGES = {
    "en": Language("en", "English", "Always answer in English."),
    "zh": Language("zh", "Mandarin Chinese", "请始终用简体中文回答。"),
}

#: Han, kana, Hangul, and the CJK punctuation and full-width forms that come with them
_CJK = re.compile(
    "[\u2e80-\u2fdf\u3000-\u303f\u3040-\u30ff\u3100-\u312f\u3130-\u318f\u31a0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
    "\U00020000-\U0002fa1f]+"
)
#: what a Mandarin voice cannot read: kana and Hangul (Han and Latin it can)
_NOT_ZH = re.compile("[\u3040-\u30ff\u3130-\u318f\uac00-\ud7af]+")


def with_language(system_prompt: str, language: str) -> str:
    """``system_prompt`` ending with the configured language's directive (once)."""
    directive = LANGUAGES[language].directive
    if directive in system_prompt:
        return system_prompt
    return f"{system_prompt.rstrip()} {directive}".strip()


def voice_language(espeak_voice: str) -> str:
    """A piper voice's espeak-ng voice ("en-us", "cmn") → "en", "zh" or the code itself."""
    code = espeak_voice.lower().split("-")[0].split("_")[0]
    return "zh" if code in ("cmn", "zh", "yue") else code


def _pattern(language: str) -> re.Pattern[str]:
    return _NOT_ZH if language == "zh" else _CJK


def unreadable(text: str, language: str) -> str:
    """The characters of ``text`` a voice of ``language`` cannot read ("" = none)."""
    return "".join(_pattern(language).findall(text))


def readable(text: str, language: str) -> str:
    """``text`` without what a voice of ``language`` cannot read ("" = nothing left to say)."""
    kept = re.sub(r"\s+", " ", _pattern(language).sub(" ", text)).strip()
    return kept if any(c.isalnum() for c in kept) else ""
