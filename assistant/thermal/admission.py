"""Admission: who may use the one engine, and when.

A token bucket (``rate_per_min`` + ``burst``) paces API requests; the governor lowers its
rate only when its other levers are spent. Admitted requests wait in a bounded priority
queue (voice before API, first come first served within a priority) for one of the
engine's ``slots`` (llm.parallel: answers decoded together in one batch; the governor
widens them to ``hot_slots`` while the heat budget binds, :meth:`Admission.widen`). Voice
always gets a slot: when the API holds every one, a voice turn runs as one more (the
engine pauses an API answer for it). An API request waits while its honest expected wait
fits the caller's limit (``api.queue_timeout_s``) and is refused beyond it; voice skips
the bucket and is refused only when the SoC is too hot. A request that cannot be admitted
gets :class:`Busy` with an honest ``retry_after`` instead of waiting forever.

Pure and clock-injected: no threads of its own, no I/O. The engine's users hold a
:meth:`Admission.slot`; the simulation calls :meth:`admit` and :meth:`release` with a
simulated clock.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum

from ..config import Thermal
from ..errors import EX_TEMPFAIL, AssistantError

__all__ = [
    "EX_TEMPFAIL",
    "Admission",
    "AdmissionStatus",
    "Busy",
    "Priority",
    "Ticket",
    "TokenBucket",
]


class Priority(IntEnum):
    """Lower runs first."""

    VOICE = 0
    API = 1


class Busy(AssistantError):
    """Not admitted now; ``retry_after`` seconds is the honest estimate of when to retry.

    ``reason`` is ``"rate"`` (over the admitted rate), ``"queue"`` (queue full, the expected
    wait over the caller's limit, or a blocking wait for the engine timed out) or ``"hot"``
    (above thermal.critical_c).
    """

    exit_code = EX_TEMPFAIL

    def __init__(self, reason: str, retry_after: float, detail: str) -> None:
        self.reason = reason
        self.retry_after = max(1.0, math.ceil(retry_after))
        super().__init__(f"busy: {detail}; retry in {self.retry_after:.0f} s")


class TokenBucket:
    """``rate_per_min`` tokens a minute, at most ``burst`` saved up. Starts full."""

    def __init__(
        self, rate_per_min: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._clock = clock
        self.rate_per_min = rate_per_min
        self.burst = burst
        self.tokens = float(burst)
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self.tokens = min(self.burst, self.tokens + (now - self._stamp) * self.rate_per_min / 60)
        self._stamp = now

    def level(self) -> float:
        self._refill()
        return self.tokens

    def take(self) -> float:
        """Take one token if there is one: returns 0.0; else seconds until there is."""
        self._refill()
        if self.tokens >= 1.0 - 1e-9:
            self.tokens -= 1.0
            return 0.0
        if self.rate_per_min <= 0:
            return math.inf
        return (1.0 - self.tokens) * 60 / self.rate_per_min

    def set_rate(self, rate_per_min: float) -> None:
        self._refill()
        self.rate_per_min = max(0.0, rate_per_min)

    def set_burst(self, burst: int) -> None:
        self._refill()
        self.burst = burst
        self.tokens = min(self.tokens, burst)


@dataclass(eq=False)
class Ticket:
    """One request's place in line. ``granted`` is set when it may use the engine."""

    priority: Priority
    number: int
    admitted_at: float
    started_at: float | None = None
    finished: bool = False
    granted: threading.Event = field(default_factory=threading.Event)
    #: called (under the admission lock, so keep it short) when the engine is granted;
    #: lets an event loop await the grant without a thread blocked on ``granted``
    on_grant: Callable[[Ticket], None] | None = None
    #: the answer's own progress, for an honest Retry-After (set by whoever generates):
    #: its caps, tokens so far and when the first one came
    max_tokens: int = 0
    max_seconds: float = 0.0
    tokens: int = 0
    first_token_at: float | None = None

    @property
    def waited_s(self) -> float | None:
        return None if self.started_at is None else self.started_at - self.admitted_at

    def progress(self, tokens: int, now: float) -> None:
        """``tokens`` generated so far, at clock ``now`` (called from the inference thread)."""
        if tokens and self.first_token_at is None:
            self.first_token_at = now
        self.tokens = tokens

    def remaining_s(self, now: float, fallback_tok_s: float) -> float | None:
        """Seconds until this answer ends at the latest (its caps), from its own decode speed
        (or ``fallback_tok_s``, the last answer's, before it has one); None if unknown."""
        elapsed = now - (self.started_at if self.started_at is not None else now)
        by_time = max(0.0, self.max_seconds - elapsed) if self.max_seconds else math.inf
        rate = 0.0
        if self.first_token_at is not None and self.tokens > 1 and now > self.first_token_at:
            rate = (self.tokens - 1) / (now - self.first_token_at)
        rate = rate or fallback_tok_s
        if not self.max_tokens or not rate:
            return None if by_time == math.inf else by_time
        return min(by_time, max(0, self.max_tokens - self.tokens) / rate)


@dataclass(frozen=True)
class AdmissionStatus:
    rate_per_min: float  # admitted now
    configured_per_min: float  # thermal.rate_per_min
    tokens: float  # saved up in the bucket
    queue: int  # waiting, not counting the running requests
    running: int  # requests holding a slot
    stopped: str  # why nothing is admitted ("" = admitting)
    outcomes: dict[str, int]  # admitted, rate, queue, hot
    paced: bool = True  # False: no thermal control, the bucket is not applied
    slots: int = 1  # answers the engine decodes together now
    parallel: int = 1  # ... as configured (llm.parallel); more while the heat binds


class Admission:
    """The bucket, the queue and the engine's slots."""

    def __init__(
        self,
        settings: Thermal,
        *,
        clock: Callable[[], float] = time.monotonic,
        slots: int = 1,
        hot_slots: int = 0,
    ):
        self._clock = clock
        self._lock = threading.RLock()  # a SIGHUP handler may reload mid-call
        self._numbers = itertools.count(1)
        self._waiting: list[tuple[int, int, Ticket]] = []
        #: the requests holding a slot, in the order they got it
        self.runs: list[Ticket] = []
        self.slots = self.parallel = slots
        self.hot_slots = max(slots, hot_slots)
        self._stopped = ""
        self._stop_retry = 0.0
        self._why = ""
        #: the bucket applies to API requests (False where there is no thermal control)
        self.paced = True
        self._service_s = 10.0  # running mean of engine time per request, for estimates
        self._decode_tok_s = 0.0  # the last finished answer's decode speed
        self.outcomes = {"admitted": 0, "rate": 0, "queue": 0, "hot": 0}
        self.bucket = TokenBucket(settings.rate_per_min, settings.burst, clock)
        self.configure(settings)

    # -- settings, driven by the governor and by reload ----------------------------------

    def configure(self, settings: Thermal) -> None:
        with self._lock:
            self.settings = settings
            self.bucket.set_burst(settings.burst)
            self.bucket.set_rate(min(self.bucket.rate_per_min, settings.rate_per_min))

    def set_rate(self, rate_per_min: float, why: str = "") -> None:
        """``why`` tells a refused client the reason for a low rate (e.g. sensor lost)."""
        with self._lock:
            self.bucket.set_rate(rate_per_min)
            self._why = why

    def widen(self, hot: bool) -> None:
        """``hot_slots`` answers together while the heat budget binds (more tokens per
        joule, each answer slower), else ``parallel``. Answers running past the new width
        finish; the waiting get a slot as it frees."""
        with self._lock:
            self.slots = self.hot_slots if hot else self.parallel
            self._grant_locked()

    @property
    def running(self) -> Ticket | None:
        """The longest-running request holding a slot (None: the engine is free)."""
        with self._lock:
            return self.runs[0] if self.runs else None

    def set_paced(self, paced: bool) -> None:
        """Apply the bucket to API requests, or not (no thermal control: nothing to pace)."""
        with self._lock:
            self.paced = paced

    def stop(self, detail: str, retry_after: float) -> None:
        """Admit nothing new (too hot); waiting and running requests carry on."""
        with self._lock:
            self._stopped = detail
            self._stop_retry = retry_after

    def resume(self) -> None:
        with self._lock:
            self._stopped = ""

    def check_open(self) -> None:
        """Raise :class:`Busy` now if nothing new is admitted (too hot), taking no place."""
        with self._lock:
            if self._stopped:
                raise Busy("hot", self._stop_retry, self._stopped)

    # -- requests ------------------------------------------------------------------------

    def admit(
        self,
        priority: Priority,
        on_grant: Callable[[Ticket], None] | None = None,
        *,
        wait_limit_s: float | None = None,
    ) -> Ticket:
        """Take a place in line or raise :class:`Busy`. Granted at once if the engine is free.

        ``wait_limit_s``: refuse an API request now, with the honest estimate, when its
        expected wait for the engine is longer (rather than let it time out in the queue).
        """
        with self._lock:
            if self._stopped:
                self.outcomes["hot"] += 1
                raise Busy("hot", self._stop_retry, self._stopped)
            voice = priority is Priority.VOICE
            waiting = sum(1 for w in self._waiting if (w[0] is Priority.VOICE) == voice)
            if waiting >= self.settings.queue_size:
                self.outcomes["queue"] += 1
                raise Busy(
                    "queue",
                    self._queue_wait_locked(),
                    f"{waiting} requests already waiting (thermal.queue_size)",
                )
            if not voice:
                expected = self._expected_wait_locked(priority)
                if wait_limit_s is not None and expected > wait_limit_s:
                    self.outcomes["queue"] += 1
                    raise Busy(
                        "queue",
                        self._queue_wait_locked(),
                        f"the wait for the engine would be about {expected:.0f} s, longer than "
                        f"{wait_limit_s:g} s (api.queue_timeout_s)",
                    )
                wait = self.bucket.take() if self.paced else 0.0
                if wait > 0:
                    self.outcomes["rate"] += 1
                    rate = self.bucket.rate_per_min
                    why = f" ({self._why})" if self._why else ""
                    raise Busy("rate", wait, f"admitting {rate:.1f} requests/min now{why}")
            self.outcomes["admitted"] += 1
            ticket = Ticket(priority, next(self._numbers), self._clock(), on_grant=on_grant)
            heapq.heappush(self._waiting, (priority, ticket.number, ticket))
            self._grant_locked()
            return ticket

    def release(self, ticket: Ticket) -> None:
        """The request is done (or gave up while waiting); the next one gets the engine."""
        with self._lock:
            if ticket.finished:
                return
            ticket.finished = True
            if ticket in self.runs:
                now = self._clock()
                spent = now - (ticket.started_at or 0.0)
                self._service_s += 0.2 * (spent - self._service_s)
                if ticket.first_token_at is not None and ticket.tokens > 1:
                    self._decode_tok_s = (ticket.tokens - 1) / max(
                        1e-6, now - ticket.first_token_at
                    )
                self.runs.remove(ticket)
            else:
                self._waiting = [w for w in self._waiting if w[2] is not ticket]
                heapq.heapify(self._waiting)
            self._grant_locked()

    @contextmanager
    def slot(self, priority: Priority, *, timeout: float | None = None) -> Iterator[Ticket]:
        """Hold the engine for one request (blocking). Raises :class:`Busy`."""
        ticket = self.admit(priority)
        try:
            if not ticket.granted.wait(timeout):
                raise self.timed_out()
            yield ticket
        finally:
            self.release(ticket)

    def timed_out(self) -> Busy:
        """The refusal for an admitted request that waited its timeout without the engine."""
        with self._lock:
            return Busy("queue", self._queue_wait_locked(), "timed out waiting for the engine")

    # -- introspection -------------------------------------------------------------------

    def snapshot(self) -> AdmissionStatus:
        with self._lock:
            return AdmissionStatus(
                rate_per_min=self.bucket.rate_per_min,
                configured_per_min=self.settings.rate_per_min,
                tokens=self.bucket.level(),
                queue=len(self._waiting),
                running=len(self.runs),
                stopped=self._stopped,
                outcomes=dict(self.outcomes),
                paced=self.paced,
                slots=self.slots,
                parallel=self.parallel,
            )

    def _free_for(self, ticket: Ticket) -> bool:
        """A slot for ``ticket``: one of ``slots``, or for voice one more while no voice
        turn holds a slot (the engine pauses an API answer for it)."""
        if len(self.runs) < self.slots:
            return True
        voice_running = any(t.priority is Priority.VOICE for t in self.runs)
        return ticket.priority is Priority.VOICE and not voice_running

    def _grant_locked(self) -> None:
        while self._waiting and self._free_for(self._waiting[0][2]):
            _, _, ticket = heapq.heappop(self._waiting)
            ticket.started_at = self._clock()
            self.runs.append(ticket)
            ticket.granted.set()
            if ticket.on_grant is not None:
                ticket.on_grant(ticket)

    def _expected_wait_locked(self, priority: Priority) -> float:
        """Seconds a new request of ``priority`` would wait: nothing while a slot is free;
        else the soonest running answer's remainder, and a mean service time shared by the
        slots for each request that goes before it."""
        if len(self.runs) < self.slots and not self._waiting:
            return 0.0
        ahead = sum(1 for w in self._waiting if w[0] <= priority)
        running = self._queue_wait_locked() if len(self.runs) >= self.slots else 0.0
        return running + ahead * self._service_s / self.slots

    def _queue_wait_locked(self) -> float:
        """Until a slot frees: the soonest running answer's remainder at the latest, from
        its own progress (tokens so far, its tokens/s, its max_tokens and max_seconds); the
        running mean of past requests only when it says nothing yet."""
        if not self.runs:
            return self._service_s
        now = self._clock()
        lefts = []
        for ticket in self.runs:
            left = ticket.remaining_s(now, self._decode_tok_s)
            if left is None:
                left = self._service_s - (now - (ticket.started_at or now))
            lefts.append(left)
        return max(1.0, min(lefts))
