"""What whisper tiny heard, compared the way a listener would.

Piper's voice varies from run to run, and its audio differs slightly from one CPU to another
(``QWEN_ASSISTANT_SEED`` repeats it on one machine, not across machines). Whisper tiny then
mishears a word of it now and then: CI heard "The kitchen light is on." as "The kitchen
might as on", and "Paris" as "terrace". So a check that audio says a sentence asks that
most of the sentence's words were heard in order, and a word heard as a close-sounding
one ("might" for "light") counts. Checks of an answer's own text stay exact.
"""

from __future__ import annotations

import difflib
import re


def words(text: str) -> list[str]:
    return re.sub(r"[^\w\s]", " ", text.lower()).split()


def alike(a: str, b: str) -> bool:
    """The same word, or one that sounds close: "might" for "light" (short words must match:
    "as" is not "is")."""
    if a == b:
        return True
    return min(len(a), len(b)) >= 4 and difflib.SequenceMatcher(None, a, b).ratio() >= 0.75


def _in_order(want: list[str], got: list[str]) -> int:
    """How many of ``want`` are heard in ``got`` in order (the longest common
    subsequence, with `alike` words equal)."""
    row = [0] * (len(got) + 1)
    for w in want:
        prev, row = row, [0]
        for j, g in enumerate(got):
            row.append(prev[j] + 1 if alike(w, g) else max(prev[j + 1], row[j]))
    return row[-1]


def similar(a: str, b: str) -> float:
    """0 to 1: how alike two whole utterances are, word by word."""
    wa, wb = words(a), words(b)
    return 2 * _in_order(wa, wb) / (len(wa) + len(wb)) if wa or wb else 1.0


def heard(phrase: str, transcript: str) -> float:
    """0 to 1: the share of ``phrase``'s words ``transcript`` has, in order."""
    want = words(phrase)
    return _in_order(want, words(transcript)) / len(want)


def nothing_more(text: str, transcript: str) -> bool:
    """Whether ``transcript`` is no longer than ``text`` and two words (whisper adds one
    now and then): audio spoken twice, or with noise read as words, is longer."""
    return len(words(transcript)) <= len(words(text)) + 2


def mentions(transcript: str, *names: str) -> bool:
    """Whether any of ``names`` was heard (or a word that sounds close to one)."""
    return any(alike(name, w) for name in names for w in words(transcript))
