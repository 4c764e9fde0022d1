"""Device mode over the HTTP API (``api.allow_actions``, a request without ``tools``).

A device turn is the house's turn (:mod:`assistant.turn`) like a voice turn: the model's
words pass the same :class:`~assistant.actions.actor.ClaimGuard`, so an HTTP client is never
told "The kitchen light is on." when nothing ran, and a call of one of the device's actions
is decided by the :class:`~assistant.actions.actor.Actor`. Its conversation is one of the
API's own: an action with ``confirm = true`` answers "Shall I …?" with a ``confirmation`` id
that only this server issues, and only a request that sends that id back with its yes (or
no) answers the question. A history the client wrote cannot confirm anything, and the voice
loop's or Home Assistant's pending questions are never touched.
"""

from __future__ import annotations

__all__ = ["key"]


def key(confirmation: str) -> str:
    """The conversation key of an API confirmation id."""
    return f"api:{confirmation}"
