"""Grounding: is a model's call of an action what the request asked for?

The 0.5B model calls a tool for almost any command ("Make me a coffee" → ``light_on``), so a
call runs only when the request names it: each enum argument (a room, a direction) is named
in the request, the request names a word of the action's name, description or keywords that
tells it from the other actions (a word another action shares grounds none), and it does
not say the opposite of the direction its name or keywords give ("off" for ``light_on``).
Pure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..config import Action

__all__ = ["grounded"]

_STOP_WORDS = (
    "a an the to of in on at for and or is are be it this that with from by as please "
    "can could would you me my i turn set get make do your our some any"
)
_STOP = frozenset(_STOP_WORDS.split())


def _words(text: str) -> set[str]:
    words = set()
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        words.add(word)
        if len(word) > 3 and word.endswith("s"):  # lights → light
            words.add(word[:-1])
    return words


#: the two directions an action can have; a request that says one never runs the other
_OPPOSITES = (
    ("on", "off"),
    ("open", "close"),
    ("lock", "unlock"),
    ("start", "stop"),
    ("up", "down"),
    ("raise", "lower"),
    ("increase", "decrease"),
    ("enable", "disable"),
    ("forward", "backward"),
)
_DIRECTIONS = frozenset(w for pair in _OPPOSITES for w in pair)


def _naming(action: Action) -> set[str]:
    """The words of the action's name and keywords (where its direction is said)."""
    return _words(" ".join([action.name.replace("_", " "), *action.keywords]))


def _terms(action: Action) -> set[str]:
    """The words that name ``action``: its name, description and keywords, and the
    direction its name or keywords give (on, off, …: stop words elsewhere)."""
    naming = _naming(action)
    return ((naming | _words(action.description)) - _STOP) | (naming & _DIRECTIONS)


def grounded(
    action: Action, arguments: dict[str, Any], request: str, actions: Sequence[Action] = ()
) -> str:
    """ "" when ``request`` asks for this call; else why it does not.

    The request must name what tells this action from the others in ``actions`` (a word
    another action's name, description or keywords share grounds none; an enum value it
    names, "front door" for go_to's place, does), and must not say the opposite of the
    direction the action's name or keywords give ("off" for light_on)."""
    said = _words(request)
    props = action.parameters.get("properties", {})
    values: set[str] = set()  # the enum values the request names: this action's own words
    for key, value in arguments.items():
        if "enum" in props.get(key, {}) and isinstance(value, str):
            if not _words(value) <= said:
                return f"{key} {value!r} is not named in the request"
            values |= _words(value) - _STOP
    terms, direction = _terms(action), _naming(action) & _DIRECTIONS
    for pair in _OPPOSITES:
        for mine, other in (pair, pair[::-1]):
            if mine in direction and other not in direction and other in said and mine not in said:
                return f"the request says {other!r}, the opposite of what {action.name} does"
    named = terms & said
    if not named:
        return f"the request shares no word with {action.name}'s name, description or keywords"
    if not named - _DIRECTIONS:
        return f"the request names only a direction ({', '.join(sorted(named))}) of {action.name}"
    common = set().union(*(_terms(a) for a in actions if a.name != action.name))
    if not (named | values) - common:
        return (
            f"the request names nothing that tells {action.name} from the other actions "
            f"(only {', '.join(sorted(named))})"
        )
    return ""
