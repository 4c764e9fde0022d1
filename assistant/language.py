"""The spoken language (``speech.language``): what it asks of the model, what a voice can read.

:func:`with_language` makes the system prompt ask for answers in the configured language,
so the model does not answer a Chinese question in Chinese to an English voice: the
default prompt says "Answer in {language}, …" and gets the language's name; a prompt of
the user's own without ``{language}`` gets one line at its end. :func:`unreadable` finds
the characters a piper voice would read as noise (Chinese characters for an English voice:
espeak-ng spells them out as "Chinese letter", or drops them); :func:`readable` removes
them, and the caller reports it once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["LANGUAGES", "Language", "readable", "unreadable", "voice_language", "with_language"]


@dataclass(frozen=True)
class Language:
    code: str
    name: str
    #: what ``{language}`` in the system prompt becomes
    answer_in: str
    #: the line a system prompt without ``{language}`` ends with
    directive: str


LANGUAGES = {
    "en": Language("en", "English", "English", "Answer in English."),
    "zh": Language("zh", "Mandarin Chinese", "Simplified Chinese", "请用简体中文回答。"),
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
    """``system_prompt`` asking for ``language``: ``{language}`` replaced by its name, or,
    without one, its directive at the end (once)."""
    lang = LANGUAGES[language]
    if "{language}" in system_prompt:
        named = system_prompt.replace("{language}", lang.answer_in)
        # an English prompt alone did not make the stand-in model answer an English
        # question in Chinese; the same request in Chinese at its end did
        return named if language == "en" else f"{named} {lang.directive}"
    if lang.directive in system_prompt or f"Answer in {lang.answer_in}" in system_prompt:
        return system_prompt  # it says so already
    return f"{system_prompt.rstrip()} {lang.directive}".strip()


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
