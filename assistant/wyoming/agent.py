"""The conversation agent Home Assistant talks to: a question in, Qwen's answer out.

Each Wyoming ``conversation_id`` keeps its own history (the oldest conversations are
forgotten past :data:`MAX_CONVERSATIONS`, an idle one after ``voice.idle_reset_s``). An
answer goes the way a voice turn does, without the speaking: the governor's admission (at
API priority, like the HTTP API), the engine with the actions' lazy grammar, the
:class:`~assistant.actions.actor.ClaimGuard`, and the :class:`~assistant.actions.actor.Actor`
running a call of one of the configured actions (a "Shall I …?" waits for its yes in that
conversation only). Each answer is a turn record of kind ``wyoming``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from ..actions.actor import Actor, honest_words
from ..brain import Brain, NotReady
from ..config import Config
from ..thermal.admission import Priority

__all__ = ["MAX_CONVERSATIONS", "Agent", "Answer"]

log = logging.getLogger(__name__)

#: conversations remembered at once; the least recently used is forgotten first
MAX_CONVERSATIONS = 32


@dataclass(frozen=True)
class Answer:
    text: str
    turn_id: int
    #: the turn's outcome ("stop", "length", …), or the action's ("ran", "confirm", …)
    outcome: str


@dataclass
class _Conversation:
    history: list[tuple[str, str]] = field(default_factory=list)
    used_at: float = 0.0


class Agent:
    """Answers ``Transcript`` events for every Wyoming connection of one service."""

    def __init__(
        self,
        config: Callable[[], Config],
        brain: Brain,
        actor: Actor,
        *,
        max_conversations: int = MAX_CONVERSATIONS,
    ) -> None:
        self._config = config  # the live config: a reload applies to the next question
        self.brain = brain
        self.actor = actor
        self.max_conversations = max_conversations
        self._conversations: OrderedDict[str, _Conversation] = OrderedDict()

    def _conversation(self, conversation_id: str) -> _Conversation:
        now = self.brain.clock()
        idle_s = self._config().voice.idle_reset_s
        talk = self._conversations.pop(conversation_id, None)
        if talk is None or (idle_s and now - talk.used_at > idle_s):
            self.actor.forget(_key(conversation_id))
            talk = _Conversation()
        talk.used_at = now
        self._conversations[conversation_id] = talk
        while len(self._conversations) > self.max_conversations:
            old, _ = self._conversations.popitem(last=False)
            self.actor.forget(_key(old))
        return talk

    def forget_connection(self, connection: str) -> None:
        """A connection closed: its own pending "Shall I …?" ends with it."""
        self.actor.forget(_key("", connection))

    async def answer(
        self, question: str, conversation_id: str = "", connection: str = ""
    ) -> Answer:
        """The answer to ``question`` in conversation ``conversation_id`` ("" = no history
        kept; a "Shall I …?" then waits for its yes on ``connection`` only).

        Raises :class:`~assistant.thermal.admission.Busy` or :class:`NotReady` (not
        admitted), :class:`~assistant.errors.PromptTooLong`, or :class:`NotReady` when the
        service cut the answer while stopping. Cancelling it (the client left) stops the
        engine after the token in progress."""
        config, brain, actor = self._config(), self.brain, self.actor
        llm = config.llm
        talk = self._conversation(conversation_id) if conversation_id else _Conversation()
        key = _key(conversation_id, connection)
        turn_id = brain.next_id()
        reply = await actor.confirmation(question, turn_id, key)
        if reply is not None:  # a yes or no to "Shall I …?": no model needed
            talk.history += reply.history(question)
            log.info("turn %d wyoming: %r → %s", turn_id, question, reply.said)
            return Answer(reply.said, turn_id, reply.outcome)
        if not brain.ready:
            raise NotReady(brain.problem or "the model is still loading")
        prompt = actor.prompt(brain.engine.chat_format, llm, talk.history, question)
        arrived = brain.clock()
        ticket = await brain.admit(Priority.API, config.api.queue_timeout_s)
        job = brain.generate(
            ticket, prompt.tokens, max_tokens=llm.max_tokens, constraint=actor.constraint()
        )
        shown = ""
        try:
            async for text in honest_words(job, turn_id):
                shown += text
        except asyncio.CancelledError:  # the client left: stop, and say so in the record
            job.cancel()
            await asyncio.shield(job.done)
            brain.record("wyoming", job, arrived, "cancelled", turn_id=turn_id)
            raise
        finally:
            job.cancel()
        await job.done
        if job.cut:
            brain.record("wyoming", job, arrived, turn_id=turn_id)
            raise NotReady(f"the answer was cut: {job.cut}")
        finished = job.finish == "tool_call"
        decision = await actor.decide(job.json, finished, question, turn_id, key)
        said = decision.said if decision is not None else ""
        text = f"{shown.strip()} {said}".strip()
        if decision is not None:
            talk.history += decision.history(question)
        elif text:
            talk.history += [("user", question), ("assistant", text)]
        turn = brain.record("wyoming", job, arrived, turn_id=turn_id)
        log.info(
            "turn %d wyoming: %r → %d tokens, %s, %.2f s to first token, %.2f s%s",
            turn.id,
            question,
            turn.completion_tokens,
            turn.outcome,
            turn.first_token_s,
            turn.total_s,
            f", action {decision.action}: {decision.outcome}" if decision is not None else "",
            extra={"TURN_ID": turn.id},
        )
        return Answer(text, turn.id, decision.outcome if decision is not None else turn.outcome)


def _key(conversation_id: str, connection: str = "") -> str:
    """The Actor's key for a conversation's pending "Shall I …?": the conversation's, else
    the connection's own (a client that names no conversation shares it with no one)."""
    if conversation_id:
        return f"wyoming:{conversation_id}"
    return f"wyoming-connection:{connection}"
