"""The second half of ``qwen-assistant bench actions``: whole turns through the house.

Fifteen actions whose verbs overlap (start, stop, set, turn on, turn off, open, close…), and
every request a real turn on :class:`~assistant.turn.Turns` (the prompt, grammar, grounding,
claim guard and the second answer without the actions that voice, the API, Wyoming and the
CLI share), with a runner that records instead of acting, greedy. Figures:

- ``right_action_rate``: action requests that ran the right action with the right
  arguments (target ≥ 0.9 — the 0.5B stand-in is far from it with fifteen actions);
- ``false_action_rate``: requests that ran an action they did not ask for — a wrong one, or
  any for a request no action does ("Start the washing machine.") or a question (target 0);
- ``plain_answered_rate``: questions answered with words rather than "Sorry, I can't do
  that." (target ≥ 0.9);
- ``claims_cut``: answers the claim guard ended (the model said it acted and had not), and
  ``second_answers``: turns whose call was not asked for and were answered again without
  the actions.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from .actions.claims import CANNOT
from .actions.runner import Recorder
from .config import Action, Config
from .turn import Conversation, TurnRequest

__all__ = ["MANY", "MANY_REQUESTS", "NOT_OURS", "QUESTIONS", "bench_turns"]

_ROOMS = ["kitchen", "bedroom", "hall"]


def _a(name: str, description: str, say: str, props: dict[str, Any] | None = None,
       keywords: tuple[str, ...] = ()) -> Action:  # fmt: skip
    props = props or {}
    parameters = {"type": "object", "properties": props, "required": list(props)}
    return Action(name=name, description=description, parameters=parameters,
                  command=("/bin/true",), say=say, keywords=keywords)  # fmt: skip


MANY = (
    _a("start_vacuum", "Start the vacuum cleaner", "The vacuum cleaner is running.",
       keywords=("vacuum", "hoover")),
    _a("stop_vacuum", "Stop the vacuum cleaner", "The vacuum cleaner has stopped.",
       keywords=("vacuum", "hoover")),
    _a("start_music", "Start playing music", "Music is playing.", keywords=("music", "song")),
    _a("stop_music", "Stop the music", "The music has stopped.", keywords=("music", "song")),
    _a("set_timer", "Set a timer for a number of minutes", "Timer set for {minutes} minutes.",
       {"minutes": {"type": "integer", "minimum": 1, "maximum": 180}}, ("timer",)),
    _a("set_temperature", "Set the heating to a temperature in degrees Celsius",
       "The heating is set to {celsius} degrees.",
       {"celsius": {"type": "number", "minimum": 10, "maximum": 30}},
       ("heating", "thermostat", "degrees")),
    _a("set_volume", "Set the speaker volume in percent", "The volume is {percent} percent.",
       {"percent": {"type": "integer", "minimum": 0, "maximum": 100}}, ("volume", "louder")),
    _a("light_on", "Turn on the light in a room", "The {room} light is on.",
       {"room": {"type": "string", "enum": _ROOMS}}, ("light", "lamp")),
    _a("light_off", "Turn off the light in a room", "The {room} light is off.",
       {"room": {"type": "string", "enum": _ROOMS}}, ("light", "lamp")),
    _a("fan_on", "Turn on the fan", "The fan is on.", keywords=("fan",)),
    _a("fan_off", "Turn off the fan", "The fan is off.", keywords=("fan",)),
    _a("open_blinds", "Open the blinds", "The blinds are open.", keywords=("blinds",)),
    _a("close_blinds", "Close the blinds", "The blinds are closed.", keywords=("blinds",)),
    _a("lock_door", "Lock the front door", "The front door is locked.", keywords=("door",)),
    _a("show_text", "Show a text on the screen", "It's on the screen.",
       {"text": {"type": "string"}}, ("screen", "display")),
)  # fmt: skip

#: (request, action, arguments)
MANY_REQUESTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("Start the vacuum cleaner.", "start_vacuum", {}),
    ("Please start vacuuming.", "start_vacuum", {}),
    ("Stop the vacuum cleaner.", "stop_vacuum", {}),
    ("Stop vacuuming now.", "stop_vacuum", {}),
    ("Start the music.", "start_music", {}),
    ("Play some music please.", "start_music", {}),
    ("Stop the music.", "stop_music", {}),
    ("Stop playing the song.", "stop_music", {}),
    ("Set a timer for 10 minutes.", "set_timer", {"minutes": 10}),
    ("Start a timer for 5 minutes.", "set_timer", {"minutes": 5}),
    ("Set the heating to 21 degrees.", "set_temperature", {"celsius": 21}),
    ("Set the thermostat to 19 degrees.", "set_temperature", {"celsius": 19}),
    ("Set the volume to 40 percent.", "set_volume", {"percent": 40}),
    ("Turn the volume to 70 percent.", "set_volume", {"percent": 70}),
    ("Turn on the kitchen light.", "light_on", {"room": "kitchen"}),
    ("Switch on the light in the bedroom.", "light_on", {"room": "bedroom"}),
    ("Turn off the hall light.", "light_off", {"room": "hall"}),
    ("Switch off the light in the kitchen.", "light_off", {"room": "kitchen"}),
    ("Turn on the fan.", "fan_on", {}),
    ("Switch the fan on please.", "fan_on", {}),
    ("Turn off the fan.", "fan_off", {}),
    ("Switch the fan off.", "fan_off", {}),
    ("Open the blinds.", "open_blinds", {}),
    ("Please open the blinds in here.", "open_blinds", {}),
    ("Close the blinds.", "close_blinds", {}),
    ("Close the blinds please, it's too bright.", "close_blinds", {}),
    ("Lock the front door.", "lock_door", {}),
    ("Please lock the door.", "lock_door", {}),
    ('Show "Welcome home" on the screen.', "show_text", {"text": "Welcome home"}),
    ("Put the opening hours, 9 to 5, on the display.", "show_text", {"text": "9 to 5"}),
)

#: commands that share a verb with the actions but that no action does
NOT_OURS: tuple[str, ...] = (
    "Start the washing machine.",
    "Stop the car.",
    "Set an alarm for seven.",
    "Turn on the television.",
    "Turn off the oven.",
    "Open the garage.",
    "Close the window.",
    "Lock the car.",
    "Start the dishwasher.",
    "Set the table.",
)

#: plain questions: answered with words even though actions are configured
QUESTIONS: tuple[str, ...] = (
    "What is two plus two?",
    "How far away is the moon?",
    "How many legs does a spider have?",
    "What color is the sky on a clear day?",
    "Who wrote Romeo and Juliet?",
    "What is the capital of Italy?",
    "What is the boiling point of water?",
    "How many days are in a week?",
    "What is the largest planet?",
    "Why do cats purr?",
)


def bench_turns(
    config: Config,
    *,
    model: str | None = None,
    limit: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every request as a turn on a house with :data:`MANY` (``limit``: the first N of
    each set)."""
    import dataclasses

    from .actions.actor import Actor
    from .parts import Parts, unpaced

    recorder = Recorder()
    actor = Actor(MANY, runner=recorder)
    settings = dataclasses.replace(unpaced(config), actions=MANY)
    end = limit or None
    requests, others, questions = MANY_REQUESTS[:end], NOT_OURS[:end], QUESTIONS[:end]
    with Parts(settings, model=model, actor=actor) as parts:

        async def turns() -> list[dict[str, Any]]:
            await parts.load()
            rows = []
            todo = [(t, n, a) for t, n, a in requests]
            todo += [(t, "", {}) for t in (*others, *questions)]
            for text, name, arguments in todo:
                recorder.ran.clear()
                request = TurnRequest(
                    "cli", text, Conversation("bench"), overrides={"temperature": 0.0}
                )
                turn = await parts.turns.run(request)
                rows.append({
                    "request": text, "expected": {name: arguments} if name else {},
                    "ran": [{n: a} for n, a in recorder.ran], "said": turn.answer[:120],
                    "cut": turn.hit, "second": turn.second,
                    "question": text in questions,
                })  # fmt: skip
                if progress:
                    progress(text[:20])
            return rows

        rows = asyncio.run(turns())
    return _figures(rows, len(requests), len(others), len(questions))


def _same(expected: dict[str, Any], got: dict[str, Any]) -> bool:
    """Numbers equal; a text's words all in the call's ("9 to 5" in "Opening hours: 9 to 5")."""
    for key, want in expected.items():
        have = got.get(key)
        if isinstance(want, str):
            words = re.findall(r"[a-z0-9]+", str(have).lower())
            if not set(re.findall(r"[a-z0-9]+", want.lower())) <= set(words):
                return False
        elif not isinstance(have, int | float) or abs(float(have) - float(want)) > 1e-6:
            return False
    return True


def _figures(rows: list[dict[str, Any]], n_act: int, n_not: int, n_q: int) -> dict[str, Any]:
    right = false = answered = 0
    misses: list[dict[str, Any]] = []
    for row in rows:
        expected, ran = row["expected"], row["ran"]
        if expected:
            ((name, arguments),) = expected.items()
            ok = len(ran) == 1 and name in ran[0] and _same(arguments, ran[0][name])
            right += ok
            false += bool(ran) and not any(name in r for r in ran)
        else:
            ok = not ran
            false += bool(ran)
            if row["question"]:
                said = row["said"].strip()
                ok = ok and bool(said) and said != CANNOT
                answered += ok
        if not ok:
            misses.append({k: row[k] for k in ("request", "expected", "ran", "said")})

    def rate(n: int, d: int) -> float:
        return round(n / d, 3) if d else 0.0

    return {
        "actions": len(MANY),
        "action_requests": n_act,
        "not_ours_requests": n_not,
        "questions": n_q,
        "right_action_rate": rate(right, n_act),
        "false_action_rate": rate(false, len(rows)),
        "plain_answered_rate": rate(answered, n_q),
        "claims_cut": sum(r["cut"] for r in rows),
        "second_answers": sum(r["second"] for r in rows),
        "targets": {
            "right_action_rate": ">= 0.9",
            "false_action_rate": "== 0",
            "plain_answered_rate": ">= 0.9",
        },
        "misses": misses,
    }
