"""Grounding: is a model's call of an action what the request asked for?

The 0.5B model calls a tool for almost any command ("Make me a coffee" → ``light_on``), so a
call runs only when the request names it: each enum argument (a room, a direction) is named
in the request, the request names a word of the action's name, description or keywords that
tells it from the other actions (a word another action shares grounds none), and it does
not say the opposite of the direction its name or keywords give ("off" for ``light_on``).
A free-text argument (a string without an enum: a screen's text) must come from the request:
most of its words are the request's, so an invented "Good morning, and welcome!" is refused
where "Opening hours: 9 to 5" for "Put the opening hours, 9 to 5, on the display." runs.
Pure.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..config import Action

__all__ = ["grounded", "names_an_action"]

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
        if len(word) > 5 and word.endswith("ing"):  # vacuuming → vacuum, moving → move
            words |= {word[:-3], word[:-3] + "e"}
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


#: the share of a free-text argument's words the request must contain
FREE_TEXT_SHARE = 0.5


def _from_request(value: str, said: set[str]) -> bool:
    """Are most of ``value``'s words (its content words, or all of them when it has none
    besides stop words) in the request?"""
    words = set(re.findall(r"[a-z0-9]+", value.lower()))
    content = words - _STOP or words
    found = [w for w in content if w in said or _words(w) & said or f"{w}s" in said]
    return not content or len(found) >= FREE_TEXT_SHARE * len(content)


def _opposite(action: Action, said: set[str]) -> str:
    """Why the request says the opposite of ``action``'s direction ("" when it does not)."""
    direction = _naming(action) & _DIRECTIONS
    for pair in _OPPOSITES:
        for mine, other in (pair, pair[::-1]):
            if mine in direction and other not in direction and other in said and mine not in said:
                return f"the request says {other!r}, the opposite of what {action.name} does"
    return ""


def _choices(action: Action, arguments: dict[str, Any]) -> dict[str, str]:
    """The call's string arguments that are one of an enum's values (a room, a place)."""
    props = action.parameters.get("properties", {})
    return {k: v for k, v in arguments.items() if isinstance(v, str) and "enum" in props.get(k, {})}


def _unsaid(action: Action, arguments: dict[str, Any], said: set[str]) -> str:
    """Why an argument is not the request's ("" when each is): an enum value it does not
    name, a free text it did not say."""
    choices = _choices(action, arguments)
    for key, value in arguments.items():
        if not isinstance(value, str):
            continue
        if key not in choices:  # free text: the request's own words
            if not _from_request(value, said):
                return f"{key} {value!r} is not what the request says"
        elif not _words(value) <= said:
            return f"{key} {value!r} is not named in the request"
    return ""


def _enums(action: Action) -> set[str]:
    """The words of ``action``'s enum values (rooms, places, directions)."""
    props = action.parameters.get("properties", {}).values()
    values = (v for p in props if isinstance(p, dict) for v in p.get("enum", ()))
    return set().union(*(_words(v) for v in values if isinstance(v, str))) - _STOP


def _alike(action: Action, words: set[str], actions: Sequence[Action]) -> str:
    """Another action whose name, description and keywords hold all of ``words`` (so they
    do not tell ``action`` from it), or "": "start" and "vacuum" together tell start_vacuum
    from stop_vacuum and from start_music, though each alone is shared. (A room both
    light actions take tells light_on from light_off in "I need light in the bedroom.": an
    enum value the request names is this call's own word.)"""
    for other in actions:
        if other.name != action.name and words <= _terms(other):
            return other.name
    return ""


def names_an_action(request: str, actions: Sequence[Action]) -> bool:
    """Does ``request`` name one of ``actions`` by words that tell it from the others (not
    a direction alone)? "Show hello on the screen." does, "What is two plus two?" does
    not: only a request that names none may be a plain question."""
    said = _words(request)
    for action in actions:
        named = (_terms(action) | _enums(action)) & said
        if named - _DIRECTIONS and not _alike(action, named, actions):
            return True
    return False


def grounded(
    action: Action, arguments: dict[str, Any], request: str, actions: Sequence[Action] = ()
) -> str:
    """ "" when ``request`` asks for this call; else why it does not.

    The request must name what tells this action from each of the others in ``actions``
    (a word, or words together, that the other's name, description and keywords do not
    all hold; an enum value it names, "front door" for go_to's place, counts), and must
    not say the opposite of the direction the action's name or keywords
    give ("off" for light_on)."""
    said = _words(request)
    if why := _unsaid(action, arguments, said) or _opposite(action, said):
        return why
    # the enum values the request names are this call's own words
    values = set().union(*(_words(v) for v in _choices(action, arguments).values())) - _STOP
    named = _terms(action) & said
    if not named:
        return f"the request shares no word with {action.name}'s name, description or keywords"
    if not named - _DIRECTIONS:
        return f"the request names only a direction ({', '.join(sorted(named))}) of {action.name}"
    if other := _alike(action, named | values, actions):
        return (
            f"the request names nothing that tells {action.name} from {other} "
            f"(only {', '.join(sorted(named | values))})"
        )
    return ""
