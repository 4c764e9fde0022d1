"""What a turn tells its door and the house's listeners (metrics, the event stream): one
frozen dataclass per kind of event (:mod:`assistant.turn` makes them)."""

from __future__ import annotations

from dataclasses import dataclass

from .actions.actor import Decision
from .brain import TurnRecord

__all__ = [
    "Admitted",
    "Cut",
    "Done",
    "Outcome",
    "Piece",
    "Refused",
    "Speculated",
    "Started",
    "TurnEvent",
]


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
class Speculated(TurnEvent):
    """A turn started before the person had finished (voice: an answer prepared at a pause)
    was ``used`` (the question was what they said) or dropped; ``tokens``: what it decoded
    before that (a dropped turn's tokens are wasted work). Nothing else of a dropped turn is
    told."""

    used: bool
    tokens: int
