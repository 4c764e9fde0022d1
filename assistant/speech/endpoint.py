"""Does what was said so far sound finished? (pure)

The ears ask it at a pause, of the transcript so far: a request that looks complete ("What
time is it?") may end after a short silence, one that trails off ("Turn on the …") is given
the longer one, so a person who pauses to find a word is not cut off.
"""

from __future__ import annotations

import re

__all__ = ["looks_complete", "same_words"]

#: words a finished English request does not end on: articles, prepositions, conjunctions,
#: possessives, auxiliaries, and the sounds of someone still thinking
_DANGLING = """a an the my your his her its our their this that these those some any every no
    to of in on at by for from with about into onto over under after before between
    through during without within than as like near toward towards
    and or but so because if when while although though unless until whether nor
    is are was were be been am do does did can could would should will shall may might must
    what which who whom whose where how why
    um uh er erm hmm please"""
DANGLING = frozenset(_DANGLING.split())

#: a Mandarin request still going on ends on one of these
DANGLING_ZH = tuple("的了在把和跟与或给对从向往被让是要想请")

_WORD = re.compile(r"[\w']+")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def same_words(a: str, b: str) -> bool:
    """``a`` and ``b`` are the same request (case, punctuation and spacing aside)."""
    return words(a) == words(b)


def looks_complete(text: str, language: str = "en") -> bool:
    """True when ``text`` reads as a finished request: at least one word (two Chinese
    characters), not ending on a word that needs another after it, nor on "…" or a
    comma."""
    stripped = text.strip()
    if not stripped or stripped.endswith(("…", "...", ",", "，", "-", "—")):
        return False
    if language == "zh":
        core = re.sub(r"[\s。！？；，、?!.,]+$", "", stripped)
        return len(core) >= 2 and not core.endswith(DANGLING_ZH)
    found = words(stripped)
    return bool(found) and found[-1] not in DANGLING
