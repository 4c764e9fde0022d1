"""One answer in the batch (:class:`Seq`) and how its next token is taken: sampled freely,
or under its grammar once the constrained JSON starts, each piece handed to its reader.
The scheduler (:mod:`.batch`) decides *when* a sequence samples; this decides *what*."""

from __future__ import annotations

import codecs
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..errors import GenerationError
from .grammar import Constraint, GrammarSampler, JsonPiece
from .policy import Generation, Sampling, should_stop

if TYPE_CHECKING:
    from ..thermal.actors import Intensity

__all__ = [
    "END",
    "Rules",
    "Seq",
    "advanced",
    "fill",
    "fits",
    "llama_seed",
    "sample",
    "say",
    "seed_of",
    "width",
]

log = logging.getLogger(__name__)

#: put on a sequence's queue after its last piece
END = object()


@dataclass(eq=False)
class Seq:
    """One answer in the batch (built by the engine, run by the scheduler)."""

    gen: Generation
    tokens: list[int]
    sampling: Sampling
    cancel: threading.Event
    constraint: Constraint | None = None
    #: 0 voice, 1 API (lower runs first, and keeps its lane)
    priority: int = 1
    out: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue)
    done: threading.Event = field(default_factory=threading.Event)
    #: set when the reader stopped reading (a stop string, a client gone)
    left: threading.Event = field(default_factory=threading.Event)
    #: called with each piece on the decode thread instead of queueing it; False: stop
    sink: Callable[[str], bool] | None = None
    # -- the scheduler's state -------------------------------------------------------
    slot: int = 0
    number: int = 0
    pending: list[int] = field(default_factory=list)  # prompt tokens not yet evaluated
    feed: list[int] = field(default_factory=list)  # tokens to evaluate next step
    pos: int = 0  # the position of the next evaluated token
    sampler: Any = None
    grammar: GrammarSampler | None = None
    rng: Any = None
    start: float = 0.0
    decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")("replace"))


@dataclass(frozen=True)
class Rules:
    """What the decode loop needs of its engine, as values and callables (the scheduler
    knows no engine): the loaded ``llama``, the tokens that end an answer, the sampling
    seed, the governor's levers (read between steps) and where a constrained answer's
    JSON starts (``lead``: None while a token is free text, else the tokens to keep)."""

    llama: Any
    stop_ids: frozenset[int]
    seed: Callable[[], int]
    levers: Callable[[], Intensity]
    lead: Callable[[Constraint | None, Generation, int], list[int] | None]
    #: the decode threads' nice value (llm.decode_nice)
    nice: int = 0


def seed_of(seq: Seq, rules: Rules) -> int:
    """The answer's sampling seed: its own, else the engine's (-1: a fresh one)."""
    own = seq.sampling.seed
    return rules.seed() if own is None else own


def llama_seed(seed: int) -> int:
    """``seed`` as llama.cpp takes it: -1 (a fresh one each time) is LLAMA_DEFAULT_SEED."""
    return seed if seed >= 0 else 0xFFFFFFFF


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def fits(seq: Seq, busy: Sequence[Seq], cells: int, n_ctx: int) -> bool:
    """May ``seq`` take a slot now: do the cells every busy answer may fill (its prompt and
    ``max_tokens``) and its own fit the cache's ``cells``, with a voice turn's ``n_ctx``
    kept free while an API answer is placed and no voice turn runs? Any ``parallel + 1``
    answers fit (the cache is sized for them), so only a batch wider than llm.parallel
    (while the heat binds) ever waits here, and never a voice turn for one."""

    def need(q: Seq) -> int:
        return len(q.tokens) + q.sampling.max_tokens

    voice = seq.priority == 0 or any(q.priority == 0 for q in busy)
    return sum(map(need, busy)) + need(seq) + (0 if voice else n_ctx) <= cells


def width(active: Sequence[Seq], parallel: int, lanes: int) -> int:
    """Answers a step advances at most: ``parallel``, or as many as the API answers placed
    (a wider batch while the heat binds), up to ``lanes``. An answer keeps its lane once
    placed; a voice turn past them pauses an API answer (:func:`advanced`)."""
    return min(lanes, max(parallel, sum(1 for q in active if q.priority > 0)))


def advanced(active: list[Seq], parallel: int) -> list[Seq]:
    """The sequences this step advances: all of them, or, past ``parallel`` (a voice
    turn beyond the API's lanes), all but one API answer that waits: the youngest
    whose pause leaves consecutive sequence ids (one llama.cpp pass over per-sequence
    streams), else the youngest."""
    ranked = sorted(active, key=lambda q: (q.priority, q.number))
    if len(ranked) <= parallel:
        return ranked
    api = [q for q in ranked if q.priority > 0]
    for waiting in reversed(api):
        rest = [q for q in ranked if q is not waiting]
        ids = sorted(q.slot for q in rest)
        if ids == list(range(ids[0], ids[0] + len(ids))) and len(rest) <= parallel:
            return rest
    return ranked[:parallel]


def sample(seq: Seq, rules: Rules, row: int, now: float) -> str:
    """Take ``seq``'s next token from logits row ``row``: why the answer ends now ("stop",
    "tool_call", a cap's reason), or "" with the token(s) to evaluate next in ``seq.feed``."""
    gen = seq.gen
    stats, s = gen.stats, seq.sampling
    if seq.grammar is None:
        token = int(seq.sampler.sample(rules.llama._ctx, row))
        if not gen.token_ids and not stats.first_token_s:
            stats.first_token_s = now - seq.start
        lead = rules.lead(seq.constraint, gen, token)
        if lead is None:
            if token in rules.stop_ids:
                return "stop"
            _accept(seq, rules, token, str)
            reason = should_stop(gen.token_ids, s, now - seq.start, seq.cancel)
            if not reason:
                seq.feed = [token]
            return reason
        _start_json(seq, rules)
        if lead:
            gen.token_ids += lead
            seq.feed = lead  # evaluated next step; the grammar samples after it
            return ""
    grammar = seq.grammar
    if grammar is None:  # (set by _start_json above)
        raise GenerationError("the grammar did not start")
    token = grammar.sample(s.temperature, s.top_k, s.top_p, seq.rng, row)
    stats.grammar_tokens, stats.grammar_masked = grammar.steps, grammar.masked_steps
    _accept(seq, rules, token, JsonPiece)
    if grammar.complete:
        lazy = seq.constraint is not None and seq.constraint.start != "now"
        return "tool_call" if lazy else "stop"
    reason = should_stop(
        gen.token_ids,
        replace(s, repetition_abort_tokens=0),  # JSON repeats its quotes and braces
        now - seq.start,
        seq.cancel,
    )
    if not reason:
        seq.feed = [token]
    return reason


def fill(batch: Any, lanes: list[Seq], n_batch: int) -> tuple[list[tuple[Seq, bool]], bool, bool]:
    """This step's ``llama_batch``, filled in place: each decoding lane's next token(s),
    then prompt tokens (voice first) up to ``n_batch``; while a voice prompt is evaluated,
    only that. Returns the rows (sequence, has logits), whether any lane decodes and
    whether any prompt is evaluated."""
    rows: list[tuple[Seq, bool]] = []

    def add(seq: Seq, token: int, logits: bool) -> None:
        n = len(rows)
        batch.token[n] = token
        batch.pos[n] = seq.pos
        batch.n_seq_id[n] = 1
        batch.seq_id[n][0] = seq.slot
        batch.logits[n] = logits
        seq.pos += 1
        rows.append((seq, logits))

    decoding = prompt = False
    if any(q.priority == 0 and q.pending for q in lanes):
        # a voice prompt is evaluated alone: its first token comes one prompt
        # evaluation after the step in flight; the others lose one step
        lanes = [q for q in lanes if q.priority == 0]
    lanes = sorted(lanes, key=lambda q: q.slot)  # consecutive ids: one pass
    for seq in lanes:  # one token each (a tool call's lead: a few)
        if seq.feed and not seq.pending:
            feed, seq.feed = seq.feed, []
            for i, token in enumerate(feed):
                add(seq, token, i == len(feed) - 1)
            decoding = True
    for seq in sorted(lanes, key=lambda q: (q.priority, q.number)):  # voice first
        room = n_batch - len(rows)
        if seq.pending and room > 0:
            chunk, seq.pending = seq.pending[:room], seq.pending[room:]
            for i, token in enumerate(chunk):
                add(seq, token, not seq.pending and i == len(chunk) - 1)
            prompt = True
    batch.n_tokens = len(rows)
    return rows, decoding, prompt


def _start_json(seq: Seq, rules: Rules) -> None:
    import numpy as np

    constraint = seq.constraint
    if constraint is None:  # (a lead comes only with a constraint)
        raise GenerationError("no constraint to decode under")
    seq.grammar = GrammarSampler(rules.llama, constraint.gbnf, sorted(rules.stop_ids))
    seed = seed_of(seq, rules)
    seq.rng = np.random.default_rng(seed if seed >= 0 else None)
    # the free text ends here: flush its decoder, the JSON gets its own
    say(seq, seq.decoder.decode(b"", final=True), str)
    seq.decoder = codecs.getincrementaldecoder("utf-8")("replace")


def _accept(seq: Seq, rules: Rules, token: int, kind: type[str]) -> None:
    gen = seq.gen
    gen.token_ids.append(token)
    gen.stats.completion_tokens = len(gen.token_ids)
    say(seq, seq.decoder.decode(rules.llama.detokenize([token])), kind)


def say(seq: Seq, text: str, kind: type[str]) -> None:
    """``text`` joins the answer's free text or its JSON and goes to the reader."""
    if not text:
        return
    if kind is JsonPiece:
        seq.gen.json += text
    else:
        seq.gen.text += text
    _emit(seq, kind(text))


def _emit(seq: Seq, piece: str) -> None:
    """A piece to the reader: its ``sink`` right here on the decode thread (no thread wakes
    per token), else the queue its iterator reads."""
    if seq.sink is None:
        seq.out.put(piece)
        return
    try:
        more = seq.sink(piece)
    except Exception as exc:  # the reader's failure ends only its answer
        log.exception("an answer's reader failed")
        seq.out.put(exc)
        more = False
    if not more:
        seq.left.set()


def wrap_up(seq: Seq, now: float) -> None:
    """The answer ended: its stats are final, its last text goes out, its samplers close."""
    stats = seq.gen.stats
    stats.total_s = now - seq.start if seq.start else 0.0
    stats.stop_reason = stats.stop_reason or "cancelled"
    kind: type[str] = JsonPiece if seq.grammar is not None else str
    say(seq, seq.decoder.decode(b"", final=True), kind)
    if seq.grammar is not None:
        seq.grammar.close()
    if seq.sampler is not None:
        seq.sampler.close()
        seq.sampler = None
