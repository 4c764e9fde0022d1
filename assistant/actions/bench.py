"""``qwen-assistant bench actions``: how well the model acts, and what the grammar costs.

A fixed set of 8 actions (enums, numbers, free text) and requests with the call each one
should make, plus requests that need no action (questions, and commands no action does).
Every request goes through the same prompt, grammar and :class:`Actor` checks as a voice
turn, with a runner that records instead of acting. Figures:

- ``valid_json_rate``: constrained calls that parse and fit the call's schema (target 1.0);
- ``right_action_rate`` / ``right_arguments_rate``: action requests whose call would run
  the right action / with the right arguments (targets ≥ 0.9);
- ``false_action_rate``: no-action requests for which an action would run (target 0);
- the grammar's cost: first-token time and decode tokens/s of each call with and without
  the constraint (the same prompt, greedy), and their ratio (target ≥ 0.9);
- ``many`` (the command adds it from :mod:`assistant.bench_turns`): fifteen actions with
  overlapping verbs, each request a whole turn: right and false actions, questions answered.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..config import Action, Config
from ..llm.conversation import stateless_prompt
from ..toolcall import call_schema, validate
from .actor import Actor
from .runner import Recorder

if TYPE_CHECKING:
    from ..llm.engine import Engine

__all__ = ["ACTIONS", "NO_ACTION", "REQUESTS", "bench_actions", "render"]

ROOMS = ["kitchen", "bedroom", "hall", "living room", "bathroom"]


#: words users say for each action besides its name and description (what `keywords` is for)
KEYWORDS = {
    "light_on": ("lights", "lamp"),
    "light_off": ("lights", "lamp"),
    "set_temperature": ("thermostat", "heating", "degrees", "warm"),
    "move": ("drive", "roll", "back", "meter"),
    "show_text": ("display", "message", "write", "screen"),
    "set_timer": ("timer", "remind"),
    "play_music": ("music", "song"),
    "go_to": ("head", "drive"),
}


def _action(name: str, description: str, props: dict[str, Any], required: list[str]) -> Action:
    parameters = {"type": "object", "properties": props, "required": required}
    return Action(
        name=name,
        description=description,
        parameters=parameters,
        command=("/bin/true",),
        keywords=KEYWORDS[name],
    )


ACTIONS = (
    _action(
        "light_on",
        "Turn on the light in a room",
        {"room": {"type": "string", "enum": ROOMS}},
        ["room"],
    ),
    _action(
        "light_off",
        "Turn off the light in a room",
        {"room": {"type": "string", "enum": ROOMS}},
        ["room"],
    ),
    _action(
        "set_temperature",
        "Set the heating to a temperature in degrees Celsius",
        {"celsius": {"type": "number", "minimum": 10, "maximum": 30}},
        ["celsius"],
    ),
    _action(
        "move",
        "Move the robot in a direction by some meters",
        {
            "direction": {"type": "string", "enum": ["forward", "back", "left", "right"]},
            "meters": {"type": "number", "minimum": 0, "maximum": 10},
        },
        ["direction", "meters"],
    ),
    _action(
        "show_text", "Show a text on the robot's screen", {"text": {"type": "string"}}, ["text"]
    ),
    _action(
        "set_timer",
        "Start a timer for a number of minutes",
        {"minutes": {"type": "integer", "minimum": 1, "maximum": 180}},
        ["minutes"],
    ),
    _action(
        "play_music",
        "Play music of a genre",
        {"genre": {"type": "string", "enum": ["jazz", "rock", "classical", "pop"]}},
        ["genre"],
    ),
    _action(
        "go_to",
        "Drive the robot to a place in the house",
        {"place": {"type": "string", "enum": ["kitchen", "front door", "charger", "window"]}},
        ["place"],
    ),
)

#: (request, action, arguments)
REQUESTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("Turn on the kitchen light please.", "light_on", {"room": "kitchen"}),
    ("Switch on the light in the bedroom.", "light_on", {"room": "bedroom"}),
    ("Lights on in the hall.", "light_on", {"room": "hall"}),
    ("Can you turn the living room light on?", "light_on", {"room": "living room"}),
    ("Turn on the bathroom light.", "light_on", {"room": "bathroom"}),
    ("Please put the light on in the kitchen.", "light_on", {"room": "kitchen"}),
    ("I need light in the bedroom.", "light_on", {"room": "bedroom"}),
    ("Bathroom light on, please.", "light_on", {"room": "bathroom"}),
    ("Turn off the kitchen light.", "light_off", {"room": "kitchen"}),
    ("Switch off the light in the bedroom.", "light_off", {"room": "bedroom"}),
    ("Lights off in the hall please.", "light_off", {"room": "hall"}),
    ("Turn the living room light off.", "light_off", {"room": "living room"}),
    ("Please switch the bathroom light off.", "light_off", {"room": "bathroom"}),
    ("Kill the light in the kitchen.", "light_off", {"room": "kitchen"}),
    ("Turn off the bedroom light, I'm going to sleep.", "light_off", {"room": "bedroom"}),
    ("Set the heating to 21 degrees.", "set_temperature", {"celsius": 21}),
    ("Make it 19 degrees in here.", "set_temperature", {"celsius": 19}),
    ("Set the temperature to 23.5 degrees Celsius.", "set_temperature", {"celsius": 23.5}),
    ("Heat the house to 22 degrees.", "set_temperature", {"celsius": 22}),
    ("Set the thermostat to 18.", "set_temperature", {"celsius": 18}),
    ("I'd like the heating at 20 degrees.", "set_temperature", {"celsius": 20}),
    ("Turn the heating down to 16 degrees.", "set_temperature", {"celsius": 16}),
    ("Raise the temperature to 25 degrees.", "set_temperature", {"celsius": 25}),
    ("Move forward two meters.", "move", {"direction": "forward", "meters": 2}),
    ("Go back one meter.", "move", {"direction": "back", "meters": 1}),
    ("Move left three meters.", "move", {"direction": "left", "meters": 3}),
    ("Move right half a meter.", "move", {"direction": "right", "meters": 0.5}),
    ("Drive forward 5 meters.", "move", {"direction": "forward", "meters": 5}),
    ("Back up 2 meters please.", "move", {"direction": "back", "meters": 2}),
    ("Move 4 meters to the right.", "move", {"direction": "right", "meters": 4}),
    ("Roll forward one meter.", "move", {"direction": "forward", "meters": 1}),
    ('Show "Welcome home" on the screen.', "show_text", {"text": "Welcome home"}),
    ("Put the text Dinner is ready on your screen.", "show_text", {"text": "Dinner is ready"}),
    ("Display hello world on the screen.", "show_text", {"text": "hello world"}),
    (
        'Show the words "Back in 5 minutes" on the display.',
        "show_text",
        {"text": "Back in 5 minutes"},
    ),
    ("Write Happy birthday Anna on your screen.", "show_text", {"text": "Happy birthday Anna"}),
    ('Show "Meeting at 3 pm" on the screen please.', "show_text", {"text": "Meeting at 3 pm"}),
    ('Display the message "Do not disturb".', "show_text", {"text": "Do not disturb"}),
    ("Set a timer for 10 minutes.", "set_timer", {"minutes": 10}),
    ("Start a 5 minute timer.", "set_timer", {"minutes": 5}),
    ("Timer for twenty minutes please.", "set_timer", {"minutes": 20}),
    ("Set a timer for one hour.", "set_timer", {"minutes": 60}),
    ("Remind me in 15 minutes with a timer.", "set_timer", {"minutes": 15}),
    ("Start a timer for 3 minutes for the eggs.", "set_timer", {"minutes": 3}),
    ("Set a 45 minute timer.", "set_timer", {"minutes": 45}),
    ("Put on a timer for 90 minutes.", "set_timer", {"minutes": 90}),
    ("Play some jazz.", "play_music", {"genre": "jazz"}),
    ("Play rock music please.", "play_music", {"genre": "rock"}),
    ("I want to hear classical music.", "play_music", {"genre": "classical"}),
    ("Put on some pop music.", "play_music", {"genre": "pop"}),
    ("Play jazz music in the background.", "play_music", {"genre": "jazz"}),
    ("Can you play some classical music?", "play_music", {"genre": "classical"}),
    ("Music please, something rock.", "play_music", {"genre": "rock"}),
    ("Play a bit of pop.", "play_music", {"genre": "pop"}),
    ("Go to the kitchen.", "go_to", {"place": "kitchen"}),
    ("Drive to the front door.", "go_to", {"place": "front door"}),
    ("Go to your charger.", "go_to", {"place": "charger"}),
    ("Please go to the window.", "go_to", {"place": "window"}),
    ("Go and wait at the front door.", "go_to", {"place": "front door"}),
    ("Head to the charger, your battery is low.", "go_to", {"place": "charger"}),
    ("Drive over to the kitchen please.", "go_to", {"place": "kitchen"}),
    ("Go to the window and look outside.", "go_to", {"place": "window"}),
    ("Switch on the hall light.", "light_on", {"room": "hall"}),
    ("Turn off the lights in the living room.", "light_off", {"room": "living room"}),
    ("Set the heating to 17 degrees tonight.", "set_temperature", {"celsius": 17}),
    ("Move back three meters.", "move", {"direction": "back", "meters": 3}),
)

#: requests no action fits: questions, chat, and things none of the actions does
NO_ACTION: tuple[str, ...] = (
    "What is the capital of France?",
    "How many legs does a spider have?",
    "Tell me a joke.",
    "What is two plus three?",
    "Who wrote Romeo and Juliet?",
    "Good morning!",
    "How are you today?",
    "What does a robot eat?",
    "Why is the sky blue?",
    "What is the boiling point of water?",
    "Thank you, that's all.",
    "What's your name?",
    "How far is the moon?",
    "Name three fruits.",
    "What day comes after Monday?",
    "Unlock the front door.",
    "Make me a coffee.",
    "Order a pizza.",
    "Call my mother.",
    "Open the garage.",
    "Vacuum the floor.",
    "Turn on the television.",
    "Lock the car.",
    "Water the plants.",
)


def _same(expected: Any, got: Any) -> bool:
    if isinstance(expected, int | float) and not isinstance(expected, bool):
        return isinstance(got, int | float) and abs(float(got) - float(expected)) < 1e-6
    if isinstance(expected, str) and isinstance(got, str):

        def norm(s: str) -> str:
            return " ".join(re.findall(r"[a-z0-9]+", s.lower()))

        return norm(expected) == norm(got)
    return bool(expected == got)


def _right(expected: dict[str, Any], got: dict[str, Any]) -> bool:
    return set(expected) <= set(got) and all(_same(v, got.get(k)) for k, v in expected.items())


def bench_actions(
    config: Config,
    *,
    model: str | None = None,
    limit: int = 0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the set against the configured model (``limit``: the first N of each part)."""
    from ..llm.bench import loaded_engine

    with loaded_engine(config, model) as engine:
        return _measure(engine, config, limit, progress)


def _measure(
    engine: Engine, config: Config, limit: int, progress: Callable[[str], None] | None
) -> dict[str, Any]:
    runner = Recorder()
    actor = Actor(ACTIONS, runner=runner)
    fmt, llm = engine.chat_format, config.llm
    system = actor.system_prompt(llm.system_prompt)
    constraint = actor.constraint()
    shape = call_schema([a.tool for a in ACTIONS], enums=False)
    requests = REQUESTS[:limit] if limit else REQUESTS
    others = NO_ACTION[:limit] if limit else NO_ACTION
    engine.new_chat(system)  # the tools prompt goes into the KV cache once

    def generate(text: str, constrained: bool) -> Any:
        prompt = stateless_prompt(fmt, [("user", text)], system, llm.n_ctx, 96)
        gen = engine.generate(
            prompt.tokens, constraint=constraint if constrained else None,
            temperature=0.0, max_tokens=96,
        )  # fmt: skip
        for _ in gen:
            pass
        return gen

    calls = valid = right_action = right_args = 0
    timings: dict[str, list[float]] = {"first_c": [], "first_f": [], "tok_c": [], "tok_f": []}
    grammar_steps = masked_steps = 0
    misses: list[dict[str, Any]] = []
    for i, (text, name, arguments) in enumerate(requests):
        if i % 2:  # alternate which runs first (the second finds the prompt in the KV cache)
            gen, free = generate(text, True), generate(text, False)
        else:
            free, gen = generate(text, False), generate(text, True)
        if progress:
            progress(text[:20])
        runner.ran.clear()
        if gen.json:
            calls += 1
            grammar_steps += gen.stats.grammar_tokens
            masked_steps += gen.stats.grammar_masked
            valid += _valid(gen.json, shape)
            if gen.stats.completion_tokens > 2 and free.stats.completion_tokens > 2:
                for key, value in (("first_c", gen.stats.first_token_s),
                                   ("first_f", free.stats.first_token_s),
                                   ("tok_c", gen.stats.decode_tok_s),
                                   ("tok_f", free.stats.decode_tok_s)):  # fmt: skip
                    timings[key].append(value)
            decision = asyncio.run(actor.act(gen.json, text))
        else:
            decision = None
        ran = runner.ran[0] if runner.ran else None
        right_action += ran is not None and ran[0] == name
        right_args += ran is not None and ran[0] == name and _right(arguments, ran[1])
        if ran is None or ran[0] != name or not _right(arguments, ran[1]):
            misses.append({
                "request": text, "expected": {name: arguments},
                "model": gen.json or gen.text[:80],
                "said": decision.said if decision else "",
            })  # fmt: skip
    false_list, model_calls = _false_actions(others, generate, actor, runner, progress)
    false_actions = len(false_list)

    def median(key: str) -> float:
        return round(statistics.median(timings[key]), 3) if timings[key] else 0.0

    decode_c, decode_f = median("tok_c"), median("tok_f")
    result = {
        "model": engine.info.name if engine.info else str(engine.model_path),
        "threads": engine.threads,
        "actions": len(ACTIONS),
        "action_requests": len(requests),
        "no_action_requests": len(others),
        "calls": calls,
        "valid_json_rate": round(valid / calls, 3) if calls else 0.0,
        "right_action_rate": round(right_action / len(requests), 3) if requests else 0.0,
        "right_arguments_rate": round(right_args / len(requests), 3) if requests else 0.0,
        "false_action_rate": round(false_actions / len(others), 3) if others else 0.0,
        "no_action_model_calls": model_calls,
        "first_token_s_constrained": median("first_c"),
        "first_token_s_free": median("first_f"),
        "decode_tok_s_constrained": decode_c,
        "decode_tok_s_free": decode_f,
        "decode_ratio": round(decode_c / decode_f, 3) if decode_f else 0.0,
        #: constrained tokens for which the model's own pick was refused (vocabulary masked)
        "grammar_masked_share": round(masked_steps / grammar_steps, 3) if grammar_steps else 0.0,
        "targets": {
            "valid_json_rate": ">= 1.0",
            "right_action_rate": ">= 0.9",
            "right_arguments_rate": ">= 0.9",
            "false_action_rate": "== 0",
            "decode_ratio": ">= 0.9",
        },
        "misses": misses,
        "false_actions": false_list,
        "at": time.time(),
    }
    return result


def _valid(text: str, shape: dict[str, Any]) -> bool:
    """The call parses as JSON and fits the grammar's schema."""
    try:
        data = json.loads(text)
    except ValueError:
        return False
    return not validate(shape, data)


def _false_actions(
    others: tuple[str, ...],
    generate: Callable[[str, bool], Any],
    actor: Actor,
    runner: Recorder,
    progress: Callable[[str], None] | None,
) -> tuple[list[dict[str, Any]], int]:
    """The no-action requests an action would run for, and how many the model called for."""
    false_list: list[dict[str, Any]] = []
    model_calls = 0
    for text in others:
        gen = generate(text, True)
        if progress:
            progress(text[:20])
        runner.ran.clear()
        if gen.json:
            model_calls += 1
            decision = asyncio.run(actor.act(gen.json, text))
            if runner.ran or decision.outcome == "confirm":
                false_list.append({"request": text, "model": gen.json, "said": decision.said})
    return false_list, model_calls


def render(result: dict[str, Any]) -> str:
    keys = [k for k, v in result.items() if isinstance(v, int | float | str) and k != "at"]
    lines = [f"{k:<28} {result[k]}" for k in keys]
    for miss in result["misses"]:
        lines.append(f"miss: {miss['request']!r} expected {miss['expected']} → {miss['model']}")
    for false in result["false_actions"]:
        lines.append(f"false action: {false['request']!r} → {false['model']}")
    many = result.get("many") or {}
    lines += [f"many.{k:<23} {v}" for k, v in many.items() if isinstance(v, int | float)]
    for miss in many.get("misses", ()):
        lines.append(
            f"many miss: {miss['request']!r} expected {miss['expected'] or 'nothing'} → "
            f"ran {miss['ran'] or 'nothing'}, said {miss['said']!r}"
        )
    return "\n".join(lines)
