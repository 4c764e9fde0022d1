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

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ..actions.actor import Actor
from ..brain import NotReady
from ..config import Config
from ..turn import Conversation, TurnRequest, Turns

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


class Agent:
    """Answers ``Transcript`` events for every Wyoming connection of one service: the
    house's turn (:class:`~assistant.turn.Turns`) in each conversation's own history."""

    def __init__(
        self,
        config: Callable[[], Config],
        turns: Turns,
        *,
        max_conversations: int = MAX_CONVERSATIONS,
    ) -> None:
        self._config = config  # the live config: a reload applies to the next question
        self.turns = turns
        self.brain = turns.brain
        self.max_conversations = max_conversations
        self._conversations: OrderedDict[str, Conversation] = OrderedDict()

    @property
    def actor(self) -> Actor:
        return self.turns.actor

    def _conversation(self, conversation_id: str, connection: str) -> Conversation:
        if not conversation_id:  # no history kept; a "Shall I …?" waits on the connection
            return Conversation(_key("", connection))
        now = self.brain.clock()
        idle_s = self._config().voice.idle_reset_s
        talk = self._conversations.pop(conversation_id, None)
        if talk is None or (idle_s and now - talk.used_at > idle_s):
            self.turns.actor.forget(_key(conversation_id))
            talk = Conversation(_key(conversation_id), used_at=now)
        self._conversations[conversation_id] = talk
        while len(self._conversations) > self.max_conversations:
            old, _ = self._conversations.popitem(last=False)
            self.turns.actor.forget(_key(old))
        return talk

    def forget_connection(self, connection: str) -> None:
        """A connection closed: its own pending "Shall I …?" ends with it."""
        self.turns.actor.forget(_key("", connection))

    async def answer(
        self, question: str, conversation_id: str = "", connection: str = ""
    ) -> Answer:
        """The answer to ``question`` in conversation ``conversation_id`` ("" = no history
        kept; a "Shall I …?" then waits for its yes on ``connection`` only).

        Raises :class:`~assistant.thermal.admission.Busy` or :class:`NotReady` (not
        admitted), :class:`~assistant.errors.PromptTooLong`, or :class:`NotReady` when the
        service cut the answer while stopping. Cancelling it (the client left) stops the
        engine after the token in progress."""
        talk = self._conversation(conversation_id, connection)
        turn = await self.turns.run(TurnRequest("wyoming", question, talk))
        record = turn.end()  # run() ended it: its record
        job = turn.job
        if job is not None and job.cut:
            raise NotReady(f"the answer was cut: {job.cut}")
        decision = turn.decision
        return Answer(turn.answer, record.id, decision.outcome if decision else record.outcome)


def _key(conversation_id: str, connection: str = "") -> str:
    """The Actor's key for a conversation's pending "Shall I …?": the conversation's, else
    the connection's own (a client that names no conversation shares it with no one)."""
    if conversation_id:
        return f"wyoming:{conversation_id}"
    return f"wyoming-connection:{connection}"
