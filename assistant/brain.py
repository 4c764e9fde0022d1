"""The one brain: admission in front of the one engine, bridged to asyncio.

Every text request (HTTP, Wyoming, voice) goes the same way: :meth:`Brain.admit` takes a
place in the governor's queue and awaits one of the engine's slots without blocking the
event loop; :meth:`Brain.generate` starts the answer from an inference thread (one per
slot; the engine decodes them together), and the engine's decode thread hands each text
piece straight to the loop.
Cancelling a :class:`Job` (client gone, shutdown) takes its answer out of the batch at the
next step, and its slot is released at once, so the next request starts.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .errors import AssistantError
from .llm.grammar import JsonPiece
from .llm.policy import GenerationStats
from .llm.ports import TextEngine
from .thermal.admission import Admission, Priority, Ticket

__all__ = ["Brain", "Job", "NotReady", "StopMatcher", "TurnRecord"]

log = logging.getLogger(__name__)


class NotReady(AssistantError):
    """The model is still loading (or failed to load)."""

    exit_code = 69


class StopMatcher:
    """Cuts a text stream at the first of some stop strings, across piece boundaries.

    Text that could be the start of a stop string is held back until the next piece
    decides it. Pure: list in, list out.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self._held = ""
        self.hit = False

    def feed(self, piece: str) -> str:
        """Text that is safe to emit now; sets ``hit`` when a stop string appeared."""
        if not self.stops:
            return piece
        text = self._held + piece
        cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.hit = True
            self._held = ""
            return text[:cut]
        keep = 0  # longest tail of text that is a proper prefix of some stop string
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(text)), keep, -1):
                if text.endswith(stop[:n]):
                    keep = n
                    break
        self._held = text[len(text) - keep :] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held


@dataclass(frozen=True)
class TurnRecord:
    """One finished request, for /status, the status line and the journal."""

    id: int
    kind: str  # the door: "voice", "api", "wyoming" or "cli"
    #: "stop", "tool_call", "length", "time", "repetition", "cancelled", "shutdown" (cut at
    #: stop); a yes or no to "Shall I …?": the action's "ran", "failed" or "declined"
    outcome: str
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    #: request arrival → first token, seconds (includes the queue)
    first_token_s: float
    decode_tok_s: float
    total_s: float
    finished_at: float  # time.time()
    #: voice turns: end of speech → first audio sample out
    first_audio_s: float | None = None


_END = object()


class Job:
    """One generation: iterate it (async) for text; ``stats`` and ``finish`` once it ends."""

    def __init__(self, loop: asyncio.AbstractEventLoop, stops: Sequence[str]) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self.cancel_event = threading.Event()
        self.matcher = StopMatcher(stops)
        self.stats = GenerationStats()
        self.text = ""
        #: the constrained JSON (a tool call or a schema answer); its pieces are JsonPiece
        self.json = ""
        #: clock() when the engine produced the first token
        self.first_at: float | None = None
        #: why the service cut this answer ("" = it was not cut; a client leaving is not a cut)
        self.cut = ""
        #: resolves when the engine is free again (set by Brain.generate)
        self.done: asyncio.Future[None]

    def cancel(self, cut: str = "") -> None:
        """Stop after the token in progress; ``cut`` says why when the service cuts it."""
        if cut and not self.cancel_event.is_set():
            self.cut = cut
        self.cancel_event.set()

    @property
    def finish(self) -> str:
        """stop (end of answer or a stop string), length, time, repetition, cancelled, or
        shutdown (cut by the service stopping)."""
        if self.matcher.hit:
            return "stop"
        reason = self.stats.stop_reason or "cancelled"
        return "shutdown" if reason == "cancelled" and self.cut else reason

    def _put(self, item: Any) -> None:  # from the inference thread
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody reads this answer any more
            self.cancel_event.set()

    def _emit(self, text: str) -> None:
        if text:
            self.text += text
            self._put(text)

    async def __aiter__(self) -> AsyncIterator[str]:
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


class Brain:
    """Admission + engine + the inference thread, shared by every front end."""

    def __init__(
        self,
        admission: Admission,
        engine: TextEngine | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        history: int = 20,
    ) -> None:
        self.admission = admission
        self.engine = engine
        self.clock = clock
        self.load_error = ""
        #: set when the service stops: nothing new is admitted, with this as the reason
        self.closing = ""
        self.turns: deque[TurnRecord] = deque(maxlen=history)
        self._ids = itertools.count(1)
        # a reader per slot, the hot ones too (and the voice turn's extra one), and one to
        # load and probe
        self._executor = ThreadPoolExecutor(admission.hot_slots + 2, thread_name_prefix="inference")
        self._jobs: set[Job] = set()
        self.listeners: list[Callable[[TurnRecord], None]] = []
        #: called from the inference thread whenever it makes progress (the watchdog's beat)
        self.heartbeat: Callable[[], None] = lambda: None
        self._probing = False

    @property
    def ready(self) -> bool:
        """The model is loaded and its decode loop runs."""
        return self.engine is not None and not self.engine.failure

    @property
    def problem(self) -> str:
        """Why the brain is not ready: the load failed, or the decode loop died."""
        return self.load_error or (self.engine.failure if self.engine is not None else "")

    @property
    def loaded(self) -> TextEngine:
        """The engine; :class:`NotReady` while there is none."""
        if self.engine is None:
            raise NotReady(self.problem or "the model is still loading")
        return self.engine

    def next_id(self) -> int:
        return next(self._ids)

    async def load(self, make_engine: Callable[[], TextEngine]) -> None:
        """Build and load the engine on the inference thread; the loop keeps serving."""
        loop = asyncio.get_running_loop()
        try:
            self.engine = await loop.run_in_executor(self._executor, make_engine)
        except AssistantError as exc:
            self.load_error = str(exc)
            raise

    async def admit(self, priority: Priority, timeout: float) -> Ticket:
        """A granted ticket, or :class:`Busy`/:class:`NotReady`. Cancellable while queued."""
        if self.closing:
            raise NotReady(self.closing)
        if not self.ready:
            raise NotReady(self.problem or "the model is still loading")
        loop = asyncio.get_running_loop()
        granted: asyncio.Future[None] = loop.create_future()

        def grant() -> None:
            if not granted.done():  # not if the wait already timed out or was cancelled
                granted.set_result(None)

        def on_grant(_ticket: Ticket) -> None:  # any thread, under the admission lock
            loop.call_soon_threadsafe(grant)

        # an API request whose honest wait is longer than it would wait is refused now
        ticket = self.admission.admit(priority, on_grant, wait_limit_s=timeout)
        try:
            # not wait_for: in 3.11 it drops a cancel (the client left) that races the grant
            async with asyncio.timeout(timeout):
                await granted
        except TimeoutError:
            self.admission.release(ticket)
            raise self.admission.timed_out() from None
        except BaseException:
            self.admission.release(ticket)
            raise
        return ticket

    def generate(
        self, ticket: Ticket, tokens: list[int], *, stops: Sequence[str] = (), **overrides: Any
    ) -> Job:
        """Start generating for a granted ``ticket``; the ticket is released when done."""
        loop = asyncio.get_running_loop()
        job = Job(loop, stops)
        settings = getattr(self.engine, "settings", None)  # the caps an answer cannot exceed
        caps = [v for v in (overrides.get("max_tokens"), getattr(settings, "max_tokens", 0)) if v]
        ticket.max_tokens = min(caps, default=0)
        ticket.max_seconds = float(getattr(settings, "max_seconds", 0.0))
        job.done = loop.run_in_executor(self._executor, self._work, job, ticket, tokens, overrides)
        self._jobs.add(job)
        job.done.add_done_callback(lambda _: self._jobs.discard(job))
        return job

    def probe(self) -> None:
        """Have the engine's decode loop beat between two steps: proof it is not wedged.

        While a generation runs, every piece beats instead; at most one probe waits.
        """
        if self._probing:
            return
        self._probing = True

        def probed() -> None:
            scheduler = getattr(self.engine, "scheduler", None)
            try:
                if scheduler is not None:
                    scheduler.call(lambda: None)
            finally:
                self._probing = False
            self.heartbeat()

        try:
            self._executor.submit(probed)
        except RuntimeError:  # shut down
            self._probing = False

    def _work(self, job: Job, ticket: Ticket, tokens: list[int], overrides: dict[str, Any]) -> None:
        def sink(piece: str) -> bool:  # on the engine's decode thread: keep it short
            self.heartbeat()
            now = self.clock()
            ticket.progress(generation.stats.completion_tokens, now)
            if job.first_at is None:
                job.first_at = now
            if isinstance(piece, JsonPiece):  # stop strings never cut the JSON
                job.json += piece
                job._put(piece)
                return True
            job._emit(job.matcher.feed(piece))
            return not job.matcher.hit

        try:
            generation = self.loaded.generate(
                tokens,
                cancel=job.cancel_event,
                priority=int(ticket.priority),
                sink=sink,
                **overrides,
            )
            job.stats = generation.stats
            with generation:
                for piece in generation:  # a sink-less engine (a test's) yields them here
                    if not sink(piece):
                        break
            if not job.matcher.hit:
                job._emit(job.matcher.flush())
        except Exception as exc:  # noqa: BLE001 - handed to the awaiting request, never lost
            job._put(exc)
        finally:
            self.admission.release(ticket)
            job._put(_END)

    def record(
        self,
        kind: str,
        job: Job | None,
        arrived: float,
        outcome: str = "",
        *,
        first_audio_s: float | None = None,
        turn_id: int | None = None,
    ) -> TurnRecord:
        """Remember a finished request; ``arrived`` is its clock() at arrival (for a voice
        turn: the end of speech). ``turn_id``: one taken with :meth:`next_id` before (an
        action's log lines carry it). ``job`` None: a turn the model had no part in (a yes
        or no to "Shall I …?")."""
        s = job.stats if job is not None else GenerationStats()
        first_at = job.first_at if job is not None else None
        turn = TurnRecord(
            id=turn_id if turn_id is not None else self.next_id(),
            kind=kind,
            outcome=outcome or (job.finish if job is not None else "stop"),
            prompt_tokens=s.prompt_tokens,
            cached_tokens=s.cached_tokens,
            completion_tokens=s.completion_tokens,
            first_token_s=first_at - arrived if first_at is not None else 0.0,
            decode_tok_s=s.decode_tok_s,
            total_s=self.clock() - arrived,
            finished_at=time.time(),
            first_audio_s=first_audio_s,
        )
        self.turns.append(turn)
        for listener in self.listeners:
            listener(turn)
        return turn

    def cancel_all(self, cut: str = "") -> None:
        """Cancel every running generation (each stops after the token in progress)."""
        for job in list(self._jobs):
            job.cancel(cut)

    async def drain(self, grace_s: float, cut: str) -> int:
        """Let running generations finish for ``grace_s``, then cut the rest and wait for the
        engine to be free. Returns how many were cut. Call after setting ``closing``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s
        cut_jobs: set[Job] = set()
        while self._jobs:  # a job admitted just before closing may start meanwhile
            running = {job.done for job in self._jobs}
            left = deadline - loop.time()
            if left > 0:
                await asyncio.wait(running, timeout=left)
                continue
            cut_jobs |= self._jobs
            self.cancel_all(cut)
            await asyncio.wait(running)
        return len(cut_jobs)

    def close(self, *, wait: bool = True) -> None:
        """Cancel what runs and close the engine once the inference thread is free.

        ``wait=False``: the thread is still loading the model (it cannot be interrupted);
        leave it behind instead of waiting for it.
        """
        self.cancel_all()
        self._executor.shutdown(wait=wait, cancel_futures=True)
        if wait and self.engine is not None:
            self.engine.close()
