"""Device mode over the HTTP API (``api.allow_actions``, a request without ``tools``).

The model's words pass the same :class:`~assistant.actions.actor.ClaimGuard` as a voice
turn's, so an HTTP client is never told "The kitchen light is on." when nothing ran. A call
of one of the device's actions is decided by the :class:`~assistant.actions.actor.Actor` in
a conversation of the API's own: an action with ``confirm = true`` answers "Shall I …?" with
a ``confirmation`` id that only this server issues, and only a request that sends that id
back with its yes (or no) answers the question. A history the client wrote cannot confirm
anything, and the voice loop's or Home Assistant's pending questions are never touched.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from ..actions.actor import ClaimGuard, Decision, honest_words
from ..brain import Job

if TYPE_CHECKING:
    from ..actions.actor import Actor

__all__ = ["Guarded", "confirmed", "decide", "key"]


def key(confirmation: str) -> str:
    """The Actor's conversation key of an API confirmation id."""
    return f"api:{confirmation}"


class Guarded:
    """A device-mode job's text through the ClaimGuard (:func:`honest_words`): iterate for
    the pieces that may be shown; a sentence that claims an action ends them with "Sorry, I
    can't do that." and stops the engine. ``text`` is everything let through."""

    def __init__(self, job: Job, turn_id: int = 0) -> None:
        self.job = job
        self.turn_id = turn_id
        self.text = ""
        self.hit = False  # a claim ended the answer

    async def __aiter__(self) -> AsyncIterator[str]:
        guard = ClaimGuard()
        async for out in honest_words(self.job, self.turn_id, guard):
            self.text += out
            yield out
        if guard.hit:
            self.hit = True
            self.job.cancel()  # nothing after a false claim is used


async def decide(
    actor: Actor, job: Job, request: str, turn_id: int, finished: bool
) -> tuple[Decision | None, str]:
    """What came of the answer's call (None: it called nothing) and, for a "Shall I …?",
    the confirmation id the client must send back with its yes ("" otherwise)."""
    confirmation = uuid.uuid4().hex
    decision = await actor.decide(job.json, finished, request, turn_id, key(confirmation))
    if decision is None or decision.outcome != "confirm":
        return decision, ""
    return decision, confirmation


async def confirmed(actor: Actor, confirmation: str, text: str, turn_id: int) -> Decision | None:
    """The answer to the question ``confirmation`` asked, when ``text`` is a yes or a no to
    it (None: no such question waits, or ``text`` is a new request)."""
    return await actor.confirmation(text, turn_id, key(confirmation))
