"""Continuous batching: every running answer advanced by one llama.cpp batch per step.

One scheduler thread owns the llama context and runs every ``llama_decode`` (the canary's
and a benchmark's too, through ``call``): OpenMP gives each thread that decodes a team of
its own, and with two alive libgomp sleeps at each barrier (more threads than cores): 38
tokens/s instead of 50 here (docs/performance.md). It runs at ``llm.decode_nice``, as do
its OpenMP workers. Each step it builds one ``llama_batch``: the last sampled token of
every decoding sequence, then prompt tokens of the sequences still evaluating theirs
(voice first, up to ``n_batch`` in all); one ``llama_decode`` evaluates them all and every
sequence with logits samples its next token with its own sampler (the chain
``Llama.generate`` builds, so a lone greedy answer is the one it always was). A new answer
joins at the next step; a cancelled one (barge-in, a client gone, a stop string) leaves at
the next. One pass over the weights advances several for about the price of one.

Sequence ids: 0 is llama-cpp-python's own (``Llama.eval``): it holds the system prompt,
evaluated once at load. Slots are sequences 1..``lanes + 1``, each with the tokens its KV
cells hold (the layout: :mod:`.context`). ``lanes`` is llm.parallel, or
thermal.hot_parallel where the unified cache lets more answers share its cells while the
heat budget binds (admission then grants more); an answer is placed only while the cells
every busy answer may fill fit, else it waits for one to end. An answer attends over its
own cells only, so a lone answer is the same whatever the idle slots keep. A new answer
takes the free slot with the longest common prefix with its prompt; when sequence 0's
system prompt is longer, the slot gets its cells (``llama_memory_seq_cp``: copied, or
shared in a unified cache). Streams with consecutive ids take one pass: rows go in id
order. A full cache drops the idle slots' caches, then sequence 0's. An answer past the
lanes (voice while the API holds every lane) runs instead of an API answer, which waits,
its KV kept, until a lane frees.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import GenerationError
from .context import Reuse, lower_priority, plan_reuse
from .sequence import (
    END,
    Rules,
    Seq,
    advanced,
    common_prefix,
    fill,
    fits,
    llama_seed,
    sample,
    seed_of,
    width,
    wrap_up,
)

if TYPE_CHECKING:
    from ..thermal.actors import Intensity

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)


@dataclass
class _Slot:
    seq_id: int
    tokens: list[int] = field(default_factory=list)  # what its KV region holds
    busy: Seq | None = None


class Scheduler:
    """The decode loop of one engine: ``parallel`` lanes (``lanes`` while the heat binds),
    one more slot for voice; its answers may fill the context's KV cells, ``n_ctx`` each."""

    def __init__(
        self,
        rules: Rules,
        *,
        parallel: int,
        n_ctx: int,
        lanes: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self.rules = rules
        self.llama = rules.llama
        self.ctx = self.llama._ctx.ctx
        self.mem = llama_cpp.llama_get_memory(self.ctx)
        self._shift = bool(llama_cpp.llama_memory_can_shift(self.mem))  # RoPE models: yes
        self.parallel = parallel
        self.lanes = max(parallel, lanes)
        self.cells, self.n_ctx = int(self.llama.n_ctx()), n_ctx  # the cache's, an answer's
        self.clock = clock
        self.n_batch = int(self.llama.n_batch)
        self._slots = [_Slot(i + 1) for i in range(self.lanes + 1)]
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self._cv = threading.Condition()
        self._incoming: list[Seq] = []
        self._active: list[Seq] = []
        self._calls: list[tuple[Callable[[], Any], queue.SimpleQueue[Any]]] = []
        self._numbers = 0
        self._closed = False
        #: why the decode loop ended by failing ("" while it runs, or after a clean close)
        self.failure = ""
        self._dirty = True  # sequence 0 and the slots are to be brought in line
        #: set when an answer arrives, a reader leaves or a call waits (ends a pause)
        self.wake = threading.Event()
        #: steps run, and sequences they advanced (the mean batch width)
        self.stats = {"steps": 0, "tokens": 0, "sampled": 0}
        self._thread = threading.Thread(target=self._loop, name="decode", daemon=True)
        self._thread.start()

    # -- from other threads ------------------------------------------------------------
    def submit(self, seq: Seq) -> None:
        with self._cv:
            if self._closed:
                raise GenerationError("the model is not loaded")
            self._numbers += 1
            seq.number = self._numbers
            self._incoming.append(seq)
            self.wake.set()
            self._cv.notify()

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the decode thread between two steps; its result (or exception)."""
        if threading.current_thread() is self._thread:
            return fn()
        box: queue.SimpleQueue[Any] = queue.SimpleQueue()
        with self._cv:
            if self._closed:
                raise GenerationError("the model is not loaded")
            self._calls.append((fn, box))
            self.wake.set()
            self._cv.notify()
        ok, value = box.get()
        if not ok:
            raise value
        return value

    def invalidate(self) -> None:
        """Something used the context directly (a benchmark's bare loop): forget the slots."""
        with self._cv:
            self._dirty = True

    def progress(self) -> list[int]:
        """The tokens each running answer has so far (for benchmarks)."""
        with self._cv:
            return [q.gen.stats.completion_tokens for q in self._active]

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self.wake.set()
            self._cv.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _loop(self) -> None:  # the decode thread
        lower_priority(self.rules.nice)  # before the first decode: OpenMP's workers too
        try:
            while self._round():
                pass
        except BaseException as exc:  # every waiting answer hears of it
            log.exception("the decode loop failed")
            self.failure = f"the decode loop failed: {exc}"
            failure: BaseException = exc
        else:
            failure = GenerationError("the model was closed")
        with self._cv:
            self._closed = True
            left = self._active + self._incoming
            self._active, self._incoming = [], []
            calls, self._calls = self._calls, []
        for seq in left:
            self._finish(seq, failure)
        for _fn, box in calls:
            box.put((False, failure))
        self._lib.llama_batch_free(self._batch)

    def _round(self) -> bool:
        """Wait for work, run the calls, place the newcomers, step. False once closed."""
        with self._cv:
            while not (self._active or self._incoming or self._calls or self._closed):
                self.rules.levers().phase("idle")
                self.wake.clear()
                self._cv.wait()
            if self._closed:
                return False
            calls, self._calls = self._calls, []
            incoming, self._incoming = self._incoming, []
            self.wake.clear()  # set again by the next arrival, call or early close
        for fn, box in calls:
            try:
                box.put((True, fn()))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                box.put((False, exc))
        if self._dirty:
            self._settle()
        if incoming:
            held = self._place(incoming)
            with self._cv:
                self._incoming[:0] = held
        if self._active:
            self._step(self.rules.levers())
        return True

    def _settle(self) -> None:
        """Sequence 0 holds exactly what ``Llama`` thinks it holds; the slots are empty."""
        n = int(self.llama.n_tokens)
        self._lib.llama_memory_seq_rm(self.mem, 0, n, -1)
        for slot in self._slots:
            if slot.busy is None:
                self._lib.llama_memory_seq_rm(self.mem, slot.seq_id, -1, -1)
                slot.tokens = []
        self._dirty = False

    def warm(self, tokens: list[int]) -> None:
        """(On the decode thread.) Sequence 0 holds ``tokens``: keep their common prefix
        with what it holds and evaluate the rest, leaving the slots alone."""
        llama, lib = self.llama, self._lib
        keep = common_prefix(self.prefix(), tokens)
        lib.llama_memory_seq_rm(self.mem, 0, keep, -1)
        llama.n_tokens = keep
        for start in range(keep, len(tokens), self.n_batch):
            chunk = tokens[start : start + self.n_batch]
            batch = self._batch
            for i, token in enumerate(chunk):
                batch.token[i], batch.pos[i], batch.n_seq_id[i] = token, start + i, 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = i == len(chunk) - 1
            batch.n_tokens = len(chunk)
            if lib.llama_decode(self.ctx, batch) != 0:
                lib.llama_memory_seq_rm(self.mem, 0, keep, -1)
                raise GenerationError("llama_decode failed evaluating the system prompt")
            llama.input_ids[start : start + len(chunk)] = chunk
            llama.n_tokens = start + len(chunk)

    def prefix(self) -> list[int]:
        """The tokens sequence 0 holds (the system prompt)."""
        return [int(t) for t in self.llama._input_ids[: self.llama.n_tokens]]

    def _place(self, arrivals: list[Seq]) -> list[Seq]:
        """Give each arrival (voice first) a free slot: the one whose cache shares the
        longest prefix with its prompt, else the lowest. Returns the arrivals held back
        until an answer ends: no slot free, or the cells they may fill do not fit yet
        (:func:`.sequence.fits`: only ever past llm.parallel)."""
        chosen: list[tuple[Seq, _Slot, Reuse]] = []
        held: list[Seq] = []
        prefix = self.prefix()
        for seq in sorted(arrivals, key=lambda q: (q.priority, q.number)):
            if seq.cancel.is_set() or seq.left.is_set():
                self._end(seq, "cancelled")
                continue
            free = [s for s in self._slots if s.busy is None]
            busy = [s.busy for s in self._slots if s.busy is not None]
            if not free or not fits(seq, busy, self.cells, self.n_ctx):
                held.append(seq)
                continue
            plans = {s.seq_id: self._reuse(s, seq.tokens, prefix) for s in free}
            slot = max(free, key=lambda s: (plans[s.seq_id].keep, -s.seq_id))
            slot.busy = seq
            chosen.append((seq, slot, plans[slot.seq_id]))
        for seq, slot, plan in chosen:
            try:
                self._start(seq, slot, plan, prefix)
            except Exception as exc:  # noqa: BLE001 - that answer ends, the others go on
                self._fail(seq, exc)
        return held

    def _reuse(self, slot: _Slot, tokens: list[int], prefix: list[int]) -> Reuse:
        """What of ``slot``'s cells ``tokens`` can reuse (:func:`.context.plan_reuse`)."""
        fixed = common_prefix(prefix, slot.tokens)  # perhaps shared with sequence 0
        return plan_reuse(slot.tokens, tokens, fixed=fixed, shift=self._shift)

    def _start(self, seq: Seq, slot: _Slot, plan: Reuse, prefix: list[int]) -> None:
        """Keep the slot's cached prefix (and what follows the turns a trimmed history left
        out, moved down: ``plan``), or copy sequence 0's (``prefix``) when that is longer."""
        tokens, lib, sid = seq.tokens, self._lib, slot.seq_id
        shared = common_prefix(prefix, tokens)
        if shared > plan.keep:  # sequence 0's cells (copied or shared), cut to the common part
            lib.llama_memory_seq_rm(self.mem, sid, -1, -1)
            lib.llama_memory_seq_cp(self.mem, 0, sid, -1, -1)
            keep = shared
        else:
            if plan.cut:  # the context shift
                lib.llama_memory_seq_rm(self.mem, sid, plan.at, plan.at + plan.cut)
                lib.llama_memory_seq_add(self.mem, sid, plan.at + plan.cut, -1, -plan.cut)
                del slot.tokens[plan.at : plan.at + plan.cut]
            keep = plan.keep
        if keep == len(tokens):  # replay the last token for fresh logits
            keep -= 1
        lib.llama_memory_seq_rm(self.mem, sid, keep, -1)
        slot.tokens = list(tokens[:keep])
        seq.slot, seq.pos, seq.pending = sid, keep, list(tokens[keep:])
        s, seed = seq.sampling, seed_of(seq, self.rules)
        self.llama.set_seed(llama_seed(seed))
        seq.sampler = self.llama._init_sampler(
            top_k=s.top_k, top_p=s.top_p, temp=s.temperature, repeat_penalty=s.repeat_penalty
        )
        stats = seq.gen.stats
        stats.prompt_tokens, stats.cached_tokens = len(tokens), keep
        seq.start = self.clock()
        with self._cv:
            self._active.append(seq)

    def _step(self, intensity: Intensity) -> None:
        lanes = advanced(self._active, width(self._active, self.parallel, self.lanes))
        rows, decoding, prompt = fill(self._batch, lanes, self.n_batch)
        if not rows:  # everything left is cancelled
            self._retire_cancelled()
            return
        intensity.phase("prompt" if prompt else "decode")
        begun = self.clock()
        rc = self._lib.llama_decode(self.ctx, self._batch)
        while rc == 1 and self._evict():
            rc = self._lib.llama_decode(self.ctx, self._batch)
        if rc != 0:
            raise GenerationError(f"llama_decode failed ({rc}) with {len(rows)} tokens")
        self.stats["steps"] += 1
        self.stats["tokens"] += len(rows)
        sample_at: dict[int, int] = {}
        for i, (seq, logits) in enumerate(rows):
            self._slots[seq.slot - 1].tokens.append(int(self._batch.token[i]))
            if logits:
                sample_at[id(seq)] = i
        now = self.clock()
        for seq in lanes:
            if id(seq) in sample_at:
                self.stats["sampled"] += 1
                try:
                    self._sample(seq, sample_at[id(seq)], now)
                except Exception as exc:  # noqa: BLE001 - e.g. a grammar llama.cpp refuses
                    self._fail(seq, exc)
        self._retire_cancelled()
        if decoding and self._active:
            pausing = time.monotonic()
            asked = intensity.pace(now - begun, self.wake)  # an arrival ends the pause
            paced = min(asked, time.monotonic() - pausing)
            for seq in self._active:
                seq.gen.stats.paced_s += paced

    def _evict(self) -> bool:
        """No room in the KV cache: drop the idle slots' caches or, when they hold none,
        sequence 0's system prompt (the next answers evaluate theirs). True if any went."""
        idle = [s for s in self._slots if s.busy is None and s.tokens]
        for slot in idle:
            self._lib.llama_memory_seq_rm(self.mem, slot.seq_id, -1, -1)
            slot.tokens = []
        if not idle and self.llama.n_tokens:
            self._lib.llama_memory_seq_rm(self.mem, 0, -1, -1)
            self.llama.n_tokens = 0
            return True
        return bool(idle)

    def _sample(self, seq: Seq, row: int, now: float) -> None:
        reason = sample(seq, self.rules, row, now)
        if reason:
            self._end(seq, reason)

    def _retire_cancelled(self) -> None:
        for seq in [q for q in self._active if q.cancel.is_set() or q.left.is_set()]:
            self._end(seq, "cancelled")

    def _fail(self, seq: Seq, exc: Exception) -> None:
        """One answer failed (a grammar its schema made that llama.cpp refuses, say): it
        ends with the error, and the loop serves every other answer on."""
        log.error("an answer failed and was ended: %s", exc)
        seq.gen.stats.stop_reason = "error"
        error = exc if isinstance(exc, GenerationError) else GenerationError(str(exc))
        self._finish(seq, error)

    def _end(self, seq: Seq, reason: str) -> None:
        stats = seq.gen.stats
        stats.stop_reason = stats.stop_reason or reason
        self._finish(seq, None)

    def _finish(self, seq: Seq, error: BaseException | None) -> None:
        wrap_up(seq, self.clock())
        if seq.slot:
            slot = self._slots[seq.slot - 1]
            if slot.busy is seq:  # its tokens stay: the KV holds what was evaluated
                slot.busy = None
        with self._cv:
            if seq in self._active:
                self._active.remove(seq)
        if error is not None:
            seq.out.put(error)
        seq.out.put(END)
        seq.done.set()
