"""The turn's shapes: what a door asks (a :class:`TurnRequest` in its :class:`Conversation`)
and what the turn tells it and the house's listeners (metrics, the event stream): one frozen
dataclass per kind of event. :mod:`assistant.turn` runs the turn."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .actions.actor import Decision
from .brain import TurnRecord
from .llm.grammar import Constraint
from .thermal.admission import Priority

__all__ = [
    "ACTIONS",
    "Admitted",
    "Conversation",
    "Cut",
    "Done",
    "Held",
    "Outcome",
    "Piece",
    "Refused",
    "Speculated",
    "Started",
    "TurnEvent",
    "TurnRequest",
]


@dataclass
class Conversation:
    """One conversation of one door: its ``key`` (the door and its own id: a "Shall I …?"
    asked here is answered only here) and its history as (role, text) pairs."""

    key: str
    history: list[tuple[str, str]] = field(default_factory=list)
    #: clock() of its last turn (a door forgets idle ones)
    used_at: float = 0.0


#: a request's ``constraint`` when the turn should use the actions' own grammar
ACTIONS = Constraint({}, "tool_call")


@dataclass(frozen=True)
class TurnRequest:
    """What a door asks of the house."""

    door: str  # "voice", "api", "wyoming", "cli"
    #: the request in the person's words (the last user message over the API)
    text: str
    #: where the history is kept and a "Shall I …?" waits for its yes
    conversation: Conversation
    #: a device turn: claims are guarded and a call of a configured action may run
    act: bool = True
    #: the conversation whose "Shall I …?" this text may answer (None: the conversation's own
    #: when ``act``; the API passes the key its confirmation id names, or "" for none)
    answers: str | None = None
    #: the prompt the door built (the API's client-held messages); None: the turn builds it
    #: from the conversation's history, with the actions offered
    tokens: Sequence[int] | None = None
    #: the prompt without the actions, for a second answer when the model's call was not
    #: asked for (None: the turn builds it, when it built the first; the API passes its own)
    plain: Sequence[int] | None = None
    #: the grammar; :data:`ACTIONS` (default): the actions' lazy tool-call grammar
    constraint: Constraint | None = ACTIONS
    stops: Sequence[str] = ()
    priority: Priority = Priority.API
    #: sampling overrides (max_tokens, temperature, top_p); None leaves the configured value
    overrides: dict[str, Any] = field(default_factory=dict)
    #: clock() when the request arrived (voice: the end of speech); None: now
    arrived: float | None = None
    #: a speculative turn (voice: the question guessed at a pause): it is generated, but
    #: its events are held back, and nothing is run, confirmed or kept, until
    #: :meth:`~.turn.Turn.release`; :meth:`~.turn.Turn.discard` drops it without a trace
    #: but a :class:`Speculated` event
    held: bool = False


@dataclass(frozen=True)
class TurnEvent:
    turn: int
    door: str


@dataclass(frozen=True)
class Started(TurnEvent):
    text: str


@dataclass(frozen=True)
class Admitted(TurnEvent):
    waited_s: float


@dataclass(frozen=True)
class Piece(TurnEvent):
    """Text to show: past the guard on a device turn; a :class:`JsonPiece` is the model's
    constrained JSON (a schema answer or a tool call)."""

    text: str


@dataclass(frozen=True)
class Outcome(TurnEvent):
    """What came of the model's call, or of a yes or no to "Shall I …?"."""

    decision: Decision


@dataclass(frozen=True)
class Refused(TurnEvent):
    """Not admitted: ``reason`` is Busy's ("rate", "queue", "hot") or "not_ready"."""

    reason: str
    retry_after: float | None


@dataclass(frozen=True)
class Cut(TurnEvent):
    """The service cut the answer (it is stopping)."""

    reason: str


@dataclass(frozen=True)
class Done(TurnEvent):
    record: TurnRecord
    #: what the person got: the answer's text and what was said about an action
    text: str


@dataclass(frozen=True)
class Held(TurnEvent):
    """To the door only (never told): a held turn's words are all out and it waits for
    :meth:`~assistant.turn.Turn.release` before it decides (voice: synthesise the last
    sentence now)."""


@dataclass(frozen=True)
class Speculated(TurnEvent):
    """A turn started before the person had finished (voice: an answer prepared at a pause)
    was ``used`` (the question was what they said) or dropped; ``tokens``: what it decoded
    before that (a dropped turn's tokens are wasted work). Nothing else of a dropped turn is
    told."""

    used: bool
    tokens: int
