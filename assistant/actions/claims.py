"""Claims: the model's own words never say an action ran — only the Runner acts.

A sentence of model text is a claim when it matches the word lists (:func:`claims_action`:
"Done.", "I've turned on the light.", "The kitchen light is on.") or when it *echoes what
an action says*: :class:`Claims` knows each configured action's ``say`` template and the
outcomes said earlier in the conversation, and judges a sentence that repeats or
paraphrases one of them ("It's on the screen." after a real ``show_text``, "Moving backward
2 meters." after a real ``move``), or that says it is doing an action's own verb
("Vacuuming.", "I'm moving back."), as a claim. A call written inside a code fence is
never shown or spoken as JSON. :class:`ClaimGuard` applies it sentence by sentence to a
streamed answer. Pure.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator, AsyncIterable, Iterable

from ..llm.grammar import JsonPiece
from ..speech.sentences import FIRST_MIN_CHARS, HAN_END, first_cut

__all__ = ["CANNOT", "ClaimGuard", "Claims", "claims_action", "honest_words"]

log = logging.getLogger(__name__)

CANNOT = "Sorry, I can't do that."

_VERBS = (
    r"(turn|turned|switch|switched|open|opened|close|closed|unlock|unlocked|lock|locked"
    r"|move|moved|dim|dimmed|play|played)"
)
_CLAIMS = [
    re.compile(r"^\W*(done|ok|okay|all set)\W*$", re.I),
    re.compile(
        r"\b(i'?ve|i have|i'?ll|i will|i am going to|i'?m going to|i just|let'?s|let me)"
        r"\s+(now\s+)?" + _VERBS + r"\b",
        re.I,
    ),
    re.compile(r"\b(turning|switching|opening|unlocking|locking|moving)\s+(on|off|the|it)\b", re.I),
    re.compile(r"\b(is|are) now (on|off|open|closed|locked|unlocked)\b", re.I),
    re.compile(r"\bi can (now )?" + _VERBS + r"\b", re.I),  # "Sure, I can turn on the light."
    re.compile(
        r"\b(light|lights|lamp|door|heating|music|tv|television|fan|robot)\b[^.!?]{0,24}?"
        r"\b(is|are) (now )?(on|off|open|closed|locked|unlocked|playing)\b",
        re.I,
    ),  # "The kitchen light is on."
]


def claims_action(sentence: str) -> bool:
    """Does this sentence of the model's own text claim (or promise) that it acted?

    Only the Runner acts, and what it says is not model text: a model sentence like
    "Done." or "I'll turn on the light." is never true, so it is not said.
    """
    return any(p.search(sentence) for p in _CLAIMS)


#: words a claim's paraphrase may add or drop without changing what it claims
_FILLER = frozenset(
    re.findall(
        r"\S+",
        "a an the it its it's is are was were be been being i i'm im i've ive i'll ill we "
        "we're you your my me now just all already right ok okay sure alright yes done has "
        "have had will for you there here very and of as",
    )
)
_OPENERS = r"^\W*(?:(?:ok(?:ay)?|sure|alright|right|yes|now|great)\W+)*"
#: a sentence's length in words beyond the echoed claim's that still counts as an echo
_SLACK = 3
#: the subjects of a promise or a report of acting
_SUBJECTS = (
    r"(?:i'?m|i am|i'?ve|i have|i'?ll|i will|we'?re|i just|let me|let'?s|i'?m going to"
    r"|i am going to)"
)
#: an acted-out sentence ("Vacuuming the living room.") is short and has no verb of its own
_ACTING_WORDS = 7
_FINITE = re.compile(
    r"\b(?:is|are|was|were|can|could|will|would|should|may|might|must|means?|helps?|makes?"
    r"|takes?|needs?|requires?|keeps?)\b",
    re.I,
)
#: a description's first word that is no verb ("The front door lock", "A light in …")
_NOT_VERBS = frozenset(
    re.findall(
        r"\S+",
        "the a an this that these my your our its to for in on at of with when what which how "
        "if it all any each every",
    )
)
_SLOT = "slotplaceholder"  # a template's {placeholder} while it is tokenised
_ANY = r"\S+(?: \S+){0,3}"  # what a placeholder stands for: one to four words


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower().replace("\u2019", "'"))


def _first(text: str) -> str:
    words = _tokens(text)
    return words[0] if words else ""


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _content(tokens: Iterable[str]) -> set[str]:
    return {_stem(t) for t in tokens if t not in _FILLER}


class Claims:
    """Is a sentence of model text a claim? The word lists, plus echoes of ``said`` (each
    action's ``say`` template, ``{placeholders}`` standing for anything, and outcomes said
    in this conversation) and progressive or first-person uses of ``verbs`` (the actions'
    own verbs: "move" → "Moving backward.", "I'm moving.")."""

    def __init__(self, said: Iterable[str] = (), verbs: Iterable[str] = ()) -> None:
        self._templates: list[tuple[re.Pattern[str], int]] = []
        self._paraphrases: list[set[str]] = []
        for text in dict.fromkeys(t.strip() for t in said if t.strip()):
            words = _tokens(re.sub(r"\{\w+\}", f" {_SLOT} ", text))
            content = _content(w for w in words if w != _SLOT)
            pattern = " ".join(_ANY if w == _SLOT else re.escape(w) for w in words)
            if any(w != _SLOT for w in words):  # "{output}" alone would match anything
                self._templates.append((re.compile(rf"(?:^| ){pattern}(?: |$)"), len(content)))
            if len(content) >= 2:
                self._paraphrases.append(content)
        verbs = [*verbs, *(w[:-3] for t in said if (w := _first(t)).endswith("ing"))]
        verbs = [v.lower() for v in verbs if v.lower() not in _NOT_VERBS]
        stems = sorted({v[:-1] if v.endswith("e") else v for v in verbs} - {""})
        verb = "(?:" + "|".join(re.escape(v) for v in stems if len(v) >= 3) + r")\w{0,4}"
        known = any(len(v) >= 3 for v in stems)
        #: "Moving backward." (short, no verb of its own: not "Moving house is hard.")
        self._acting = re.compile(rf"{_OPENERS}{verb}ing\b", re.I) if known else None
        #: "I'm moving back.", "I'll show it.", "Let me drive there." (not "I'll show you how")
        subject = rf"\b{_SUBJECTS}\s+(?:now\s+|just\s+|already\s+)?"
        self._doing = re.compile(rf"{subject}{verb}\b(?!\s+you\b)", re.I) if known else None

    def __call__(self, sentence: str) -> bool:
        return claims_action(sentence) or self.echoes(sentence)

    def echoes(self, sentence: str) -> bool:
        """Does ``sentence`` repeat, paraphrase or act out what an action says?"""
        sentence = sentence.replace("\u2019", "'")
        tokens = _tokens(sentence)
        if self._doing is not None and self._doing.search(sentence):
            return True
        acted = self._acting is not None and self._acting.search(sentence)
        if acted and len(tokens) <= _ACTING_WORDS and not _FINITE.search(sentence):
            return True
        joined = " ".join(tokens)
        content = _content(tokens)
        for pattern, size in self._templates:
            found = pattern.search(joined)
            # a short claim ("Vacuuming.") only as the whole sentence, a longer one anywhere
            if found and (size >= 2 or len(content) <= size + 1):
                return True
        return any(
            known <= content and len(content) <= len(known) + _SLACK for known in self._paraphrases
        )


class ClaimGuard:
    """Model text → text safe to show, sentence by sentence; a sentence that claims an
    action (:class:`Claims`) ends the answer with :data:`CANNOT` (``hit`` tells the caller
    to stop).

    The first sentence may go out a clause at a time (up to its last ``,`` ``;`` ``:``
    once 16 characters are held, or where the voice may end its first chunk:
    :func:`~assistant.speech.sentences.first_cut`), so the voice can start speaking before
    the sentence ends: what goes out early claims nothing, and the whole sentence is still
    checked when it ends (a claim that spans the clause is cut there, after what was
    already said). A boundary goes out with the space after it, so the voice's splitter
    knows it at once: a sentence checked at the end of a piece ("sunny.") is held until the
    next character shows whether it ended there ("3." of "3.5" did not).
    """

    _END = re.compile(r"[.!?…]+[\"')\]]*(\s+|$)|" + HAN_END + r"|\n")
    _CLAUSE = re.compile(r"[,;:](?=\s)")

    def __init__(self, claims: Claims | None = None) -> None:
        self._claims = claims if claims is not None else Claims()
        self._held = ""
        self._head = ""  # the part of the current sentence already let out
        self._sentences = 0  # sentences let out
        self._checked = 0  # a sentence at the start of _held, checked but held (its end unseen)
        self._last = ""  # the last character let through
        self._code = False  # a fenced block that is code, not a call: let through
        self.hit = False

    def _cannot(self, before: str) -> str:
        self.hit, self._held = True, ""
        last = before[-1:] or self._last
        return f"{before}{' ' if last and not last.isspace() else ''}{CANNOT}"

    def _out(self, text: str) -> str:
        self._last = text[-1:] or self._last
        return text

    def feed(self, piece: str) -> str:
        if self.hit:
            return ""
        self._held += piece
        limit = len(self._held)
        fence = -1 if self._code else self._held.find(FENCE)
        if fence >= 0:
            verdict = _fenced_call(self._held[fence + len(FENCE) :])
            if verdict is None:  # not yet known: hold the fence and what follows
                limit = fence
            elif verdict:  # a call written as text would be shown or spoken as JSON
                out = self._release(fence)
                return out if self.hit else self._cannot(out)
            else:
                self._code = True  # a code block, not a call
        if not self._code:  # a call written bare ({"name": …} or <tool_call>) in the text
            at, call = _bare_call(self._held[:limit])
            if call:
                out = self._release(at)
                return out if self.hit else self._cannot(out)
            limit = at if at >= 0 else limit  # perhaps the start of one: held
        return self._release(limit)

    def _release(self, limit: int) -> str:
        """The whole sentences of the first ``limit`` held characters that claim nothing
        (and the first sentence's early clause); a claim ends the answer."""
        out, start = "", 0
        if 0 < self._checked <= limit:  # more came after it: it ended there (and its space)
            start = self._checked
            while start < limit and self._held[start].isspace():
                start += 1
            out = self._held[:start]
            self._head, self._sentences = "", self._sentences + 1
        self._checked = 0
        for end in self._END.finditer(self._held, start, limit):
            sentence = self._held[start : end.end()]
            if self._claims(self._head + sentence):
                return self._cannot(out)
            if end.end() == len(self._held) and not end.group()[-1:].isspace():
                self._checked = end.end() - start  # the piece ended here: held a character
                break
            out, start = out + sentence, end.end()
            self._head, self._sentences = "", self._sentences + 1
        self._held = self._held[start:]
        if self._sentences == 0 and not self._checked:
            out += self._first_clause(limit - start)
        return self._out(out)

    def _first_clause(self, limit: int) -> str:
        """Up to the last clause boundary of the unfinished first sentence (within the
        first ``limit`` held characters) and the space after it, or where the voice's first
        chunk may end, if that part claims nothing ("" otherwise)."""
        held = self._held[: max(0, limit)]
        ends = [m.end() for m in self._CLAUSE.finditer(held)]
        cut = next((c + 1 for c in reversed(ends) if len(self._head) + c >= FIRST_MIN_CHARS), 0)
        if not self._head and (first := first_cut(held)) is not None:
            cut = max(cut, first[1])
        clause = held[:cut]
        if not clause or self._claims(self._head + clause):
            return ""
        self._head += clause
        self._held = self._held[cut:]
        return clause

    def flush(self) -> str:
        if self.hit:
            self._held = ""
            return ""
        rest, self._held, self._checked = self._held, "", 0
        fence = -1 if self._code else rest.find(FENCE)
        if fence >= 0 and _fenced_call(rest[fence + len(FENCE) :] + "\n") is not False:
            before = rest[:fence]
            return self._cannot("" if self._claims(self._head + before) else self._out(before))
        at, call = (-1, False) if self._code else _bare_call(rest)
        if call:
            before = rest[:at]
            return self._cannot("" if self._claims(self._head + before) else self._out(before))
        return self._cannot("") if self._claims(self._head + rest) else self._out(rest)


_CALL = re.compile(r'<tool_call>|\{\s*"name"\s*:')


def _bare_call(text: str) -> tuple[int, bool]:
    """Where a call written as text starts in ``text`` and True; or where one might be
    starting at its end ("{", '{"na', "<tool") and False; or -1 and False."""
    if found := _CALL.search(text):
        return found.start(), True
    for at in (text.rfind("{"), text.rfind("<")):
        tail = re.sub(r"\s", "", text[at:])
        if at >= 0 and ('{"name":'.startswith(tail) or "<tool_call>".startswith(tail)):
            return at, False
    return -1, False


#: a Markdown code fence: the model sometimes writes its call inside one
FENCE = "```"


def _fenced_call(after: str) -> bool | None:
    """Whether the text after a code fence is a call written as JSON (True), code or
    anything else (False), or not known yet (None)."""
    if re.match(r"\s*[\w+-]*[ \t]*\{", after):  # "{", or "json {" on the fence's line
        return True
    line_end = after.find("\n")
    if line_end < 0:  # the fence's language tag, still coming
        return None if len(after) < 24 else False
    body = after[line_end + 1 :].lstrip()
    return None if not body else body.startswith("{")


async def honest_words(
    pieces: AsyncIterable[str], turn_id: int = 0, guard: ClaimGuard | None = None
) -> AsyncGenerator[str, None]:
    """The model's own words from a job's ``pieces``: without a call's JSON, and through a
    :class:`ClaimGuard` (a sentence that claims an action ends them with :data:`CANNOT`;
    pass ``guard`` to read its ``hit`` afterwards)."""
    guard = guard if guard is not None else ClaimGuard()
    async for piece in pieces:
        if isinstance(piece, JsonPiece):
            continue
        if text := guard.feed(piece):
            yield text
        if guard.hit:
            log.info("turn %d: the model claimed an action it did not call", turn_id)
            break
    if tail := guard.flush():
        yield tail
