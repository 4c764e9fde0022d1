"""Token stream → speakable chunks, so piper starts on the first clause, not the whole answer.

:class:`SentenceSplitter` is pure (text in, chunks out). The first chunk ends at the first
clause boundary (``,`` ``;`` ``:``, a sentence end, or before a word that opens a phrase,
such as "because", "when" or "by") once it has a few words; later chunks end at sentence
ends or line breaks.
Chinese is cut the same way without spaces: at ``。！？；``, and a long first clause (8
characters or more) at ``，、：``. It does not split decimals ("3.5"), abbreviations
("e.g.", "Dr."), initials ("J. Smith") or list numbers ("1. eggs"); fenced code blocks are
left out; :func:`speakable` strips markdown, reads URLs as their site name and drops
symbols piper would spell out.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import urlparse

__all__ = ["FIRST_MIN_CHARS", "SentenceSplitter", "first_cut", "speakable", "split_all"]

#: the first chunk has at least this many characters (a Chinese character counts two)
FIRST_MIN_CHARS = 16

ABBREVIATIONS = frozenset(
    {"e.g", "i.e", "etc", "vs", "dr", "mr", "mrs", "ms", "prof", "st", "jr", "sr", "no"}
    | {"fig", "approx", "cf", "al", "inc", "ltd", "co", "mt"}
)
#: a Chinese sentence's end (no space follows it): the splitter's and the claim guard's
HAN_END = "[。！？；]+[”’」』）]*"
_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s)|" + HAN_END)
_CLAUSE = re.compile(r"[,;:](?=\s)|[，、：]")
#: Chinese characters: one is a syllable, so it counts as two letters of a first clause
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
#: words that open a clause: the first chunk may end before one (a pause a speaker makes)
_CONJUNCTION = re.compile(
    r"(?<=\s)(?:because|but|and then|so that|which|while|although|since|unless|whereas"
    r"|when|where|if)(?=\s)"
)
#: words that open a phrase: a long first sentence may end its first chunk before one, a
#: word later than before a conjunction (not "of", "to", "about": they bind to the words
#: before them, "a cup of tea"), so piper starts before the whole sentence is decoded
_PHRASE = re.compile(r"(?<=\s)(?:by|from|with|in|on|at|for|into|through|during|using)(?=\s)")
_FENCE = "```"
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>()\[\]]+", re.IGNORECASE)
_LINK = re.compile(r"\[([^\]]+)\]\(([^)]+)\)")
_EMPHASIS = re.compile(r"(\*\*|__|\*|_|~~)(?=\S)(.+?)(?<=\S)\1")
_BULLET = re.compile(r"^\s*(?:[-*+•]\s+|#{1,6}\s+|>\s*)+")
_SYMBOLS = re.compile(r"[*#_`|~<>^=\\{}\[\]]")


def _site(match: re.Match[str]) -> str:
    url = match.group(0).rstrip(".,;:!?")
    host = urlparse(url if "://" in url else f"http://{url}").hostname or ""
    return host.removeprefix("www.") or "a link"


def _clean(text: str) -> str:
    text = _LINK.sub(r"\1", text)
    text = _URL.sub(_site, text)
    text = _BULLET.sub("", text)
    text = re.sub(r"`([^`]*)`", r"\1", text)
    for _ in range(2):  # nested **_x_**
        text = _EMPHASIS.sub(r"\2", text)
    text = text.replace("&", " and ")
    text = _SYMBOLS.sub(" ", text)
    text = "".join(
        " " if unicodedata.category(c) == "Cc" else c  # control characters: a gap, not a glyph
        for c in text
        if unicodedata.category(c) not in ("So", "Cs", "Co", "Cn")
    )
    return re.sub(r"\s+", " ", text).strip()


def speakable(chunk: str) -> str:
    """Markdown, URLs and symbols → what a person would read aloud ("" = nothing to say)."""
    text, before = _clean(chunk), chunk
    while text != before:  # removing one thing can expose another ("-[x" → "- x" → "x")
        text, before = _clean(text), text
    return text if any(c.isalnum() for c in text) else ""


class SentenceSplitter:
    def __init__(self, *, first_min_chars: int = FIRST_MIN_CHARS, max_chars: int = 240) -> None:
        self.first_min_chars = first_min_chars
        self.max_chars = max_chars
        self._buf = ""
        self._in_code = False
        self._emitted = 0

    def feed(self, text: str) -> list[str]:
        """Add generated text; return the chunks now complete (already :func:`speakable`)."""
        self._buf += text
        return self._drain(final=False)

    def flush(self) -> list[str]:
        """The end of the answer: whatever is left, as chunks."""
        return self._drain(final=True)

    # -- internals ---------------------------------------------------------------------------
    def _drain(self, final: bool) -> list[str]:
        out: list[str] = []
        while True:
            self._skip_code(final)
            if self._in_code:
                break
            cut = self._boundary(final)
            if cut is None:
                break
            raw, self._buf = self._buf[:cut], self._buf[cut:]
            said = speakable(raw)
            if said:
                out.append(said)
                self._emitted += 1
        return out

    def _skip_code(self, final: bool) -> None:
        """Leave out fenced code: hold text back until a fence closes (or the answer ends)."""
        if self._in_code:
            end = self._buf.find(_FENCE)
            if end < 0:
                if final:
                    self._buf, self._in_code = "", False
                return
            line_end = self._buf.find("\n", end + 3)
            self._buf = "" if line_end < 0 else self._buf[line_end + 1 :]
            self._in_code = False

    def _boundary(self, final: bool) -> int | None:  # noqa: PLR0911 - one rule per return
        buf = self._buf
        fence = buf.find(_FENCE)
        if fence >= 0:
            if fence > 0 and buf[:fence].strip():
                return fence  # speak what comes before the code first
            self._buf, self._in_code = buf[fence + 3 :], True
            self._skip_code(final)
            return None if self._in_code else self._boundary(final)
        if not final and buf.endswith(tuple("`")):
            return None  # maybe the start of a fence
        for match in _END.finditer(buf):
            if not self._false_end(buf, match.start()):
                return match.end()
        newline = buf.find("\n")
        if newline >= 0:
            return newline + 1
        if self._emitted == 0 and (early := first_cut(buf, self.first_min_chars)) is not None:
            return early[0]
        if len(buf) > self.max_chars:
            return _long_cut(buf, self.max_chars)
        if final and buf.strip():
            return len(buf)
        if final:
            self._buf = ""
        return None

    @staticmethod
    def _false_end(buf: str, dot: int) -> bool:
        """A "." that does not end a sentence: abbreviations, initials, list numbers."""
        if buf[dot] != ".":
            return False
        start = dot
        while start > 0 and (buf[start - 1].isalnum() or buf[start - 1] == "."):
            start -= 1
        word = buf[start:dot]
        if word.lower() in ABBREVIATIONS:
            return True
        if len(word) == 1 and word.isupper():
            return True  # an initial: "J. Smith"
        line_start = buf.rfind("\n", 0, start) + 1
        return word.isdigit() and not buf[line_start:start].strip()  # "1. eggs"


def _long_cut(text: str, max_chars: int) -> int:
    """Where a sentence longer than ``max_chars`` is cut: after its last clause mark within
    them (a pause a speaker makes) when that keeps a third of them, else at its last space."""
    clauses = [m.end() for m in _CLAUSE.finditer(text, 0, max_chars)]
    if clauses and clauses[-1] >= max_chars // 3:
        return clauses[-1] + 1 if text[clauses[-1] : clauses[-1] + 1].isspace() else clauses[-1]
    space = max(text.rfind(" ", 0, max_chars), text.rfind("，", 0, max_chars))
    return space + 1 if space > 0 else max_chars


def first_cut(text: str, min_chars: int = FIRST_MIN_CHARS) -> tuple[int, int] | None:
    """Where the first chunk of an answer may end in ``text``, its unfinished first sentence:
    at a clause boundary, or before a word that opens a clause or phrase. ``(cut, seen)``:
    the chunk is ``text[:cut]``, and ``text[:seen]`` is what shows the cut (the mark or the
    opening word, and the space after it), so text let out through ``seen`` (the claim
    guard's) is cut at once by the :class:`SentenceSplitter` that gets it. None: not yet."""
    for match in _CLAUSE.finditer(text):
        clause = text[: match.end()]
        if len(clause) + len(_HAN.findall(clause)) >= min_chars:
            end = match.end()
            return end, end + 1 if text[end : end + 1].isspace() else end
    for pattern, words in ((_CONJUNCTION, 4), (_PHRASE, 5)):  # "The sky is blue | because"
        for match in pattern.finditer(text):
            before = text[: match.start()]
            if len(before) >= min_chars and len(before.split()) >= words:
                return match.start(), match.end() + 1
    return None


def split_all(pieces: list[str], **options: int) -> list[str]:
    """Feed ``pieces`` (as the tokens came) and flush: the chunks piper will speak."""
    splitter = SentenceSplitter(**options)
    chunks = [c for p in pieces for c in splitter.feed(p)]
    return chunks + splitter.flush()
