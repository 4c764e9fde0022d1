"""What arrives at the simulated device: API requests and people at microphones.

API clients are many and independent: their requests arrive as a Poisson stream, more
than the device can serve (:func:`make_requests`). Voice is not: a microphone has one
person in front of it, who asks, waits for the answer, hears it spoken and then maybe
asks again (:class:`Microphone`), so one microphone never has two questions at once. The
device has one; each Wyoming satellite is another.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .admission import Priority

__all__ = ["PATIENCE_S", "SPEECH_TOK_S", "Microphone", "Request", "Workload", "make_requests"]

#: How long a client waits in the queue before it gives up: api.queue_timeout_s's default.
PATIENCE_S = 120.0
#: Tokens of an answer piper speaks per second (about 2.5 words a second).
SPEECH_TOK_S = 3.3


@dataclass(frozen=True)
class Request:
    at: float  # arrival, simulated seconds
    priority: Priority
    prompt_tokens: int  # to prefill (voice: only the new turn; the system prompt is cached)
    completion_tokens: int
    #: the microphone a voice question came from (-1: an API request)
    microphone: int = -1


@dataclass(frozen=True)
class Workload:
    """API requests (Poisson, ``per_min``) and ``microphones`` people asking by voice."""

    per_min: float = 8.4
    api_prompt: tuple[int, int] = (100, 400)  # stateless API: the whole history again
    completion: tuple[int, int] = (32, 256)
    #: the device's microphone and each Wyoming satellite's
    microphones: int = 1
    voice_prompt: tuple[int, int] = (15, 40)
    voice_completion: tuple[int, int] = (16, 96)  # one to three spoken sentences
    #: mean seconds between one conversation's end and the next one's first question
    voice_gap_s: float = 20.0
    #: the chance a heard answer is followed by another question, after think_s
    follow_up: float = 0.5
    think_s: tuple[float, float] = (2.0, 6.0)
    duration_s: float = 3600.0
    seed: int = 1
    patience_s: float = PATIENCE_S


def make_requests(workload: Workload) -> list[Request]:
    """The API's arrivals over the run."""
    rng = random.Random(workload.seed)  # noqa: S311 (a simulation, not cryptography)
    requests: list[Request] = []
    now = 0.0
    while True:
        now += rng.expovariate(workload.per_min / 60.0)
        if now >= workload.duration_s:
            return requests
        lo, hi = workload.api_prompt
        requests.append(
            Request(now, Priority.API, rng.randint(lo, hi), rng.randint(*workload.completion))
        )


class Microphone:
    """One person at one microphone: the next question comes only after the last answer
    was heard (or refused)."""

    def __init__(self, workload: Workload, index: int) -> None:
        self.workload = workload
        self.index = index
        self.rng = random.Random(workload.seed * 1000 + 17 + index)  # noqa: S311
        self.next_at: float | None = self.rng.expovariate(1.0 / workload.voice_gap_s)
        self.asked = 0

    def ask(self, now: float) -> Request | None:
        """The question due by ``now``, if one is (then none until :meth:`heard`)."""
        if self.next_at is None or self.next_at > now or now >= self.workload.duration_s:
            return None
        self.next_at = None
        self.asked += 1
        w = self.workload
        return Request(
            now,
            Priority.VOICE,
            self.rng.randint(*w.voice_prompt),
            self.rng.randint(*w.voice_completion),
            self.index,
        )

    def heard(self, request: Request, first_token_at: float | None, done_at: float) -> None:
        """The answer finished decoding at ``done_at`` (None first token: it was refused):
        the person hears it out, then asks a follow-up or goes away for a while."""
        heard_at = done_at
        if first_token_at is not None:  # spoken from the first sentence on
            heard_at = max(done_at, first_token_at + request.completion_tokens / SPEECH_TOK_S)
        w = self.workload
        if first_token_at is not None and self.rng.random() < w.follow_up:
            self.next_at = heard_at + self.rng.uniform(*w.think_s)
        else:
            self.next_at = heard_at + self.rng.expovariate(1.0 / w.voice_gap_s)
