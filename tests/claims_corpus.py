"""The claim guard's measuring set: model answers after a history, as a device turn sees them.

ACTIONS is a robot-and-home config like docs/actions.md's. Each adversarial case is a
history of actions that really ran (their outcomes said) and a model answer that claims
without a call in this turn: the outcome copied (the finding: "It's on the screen." 15 of 15
times), paraphrased, promised, acted out in words ("Moving backward 2 meters." with no second
command), or a call written inside a code fence or bare. ORDINARY answers (stories, facts, advice,
"the light in autumn is golden") must pass whole, after the same histories.
tests/test_claims.py measures both rates; docs/actions.md reports them.
"""

from __future__ import annotations

from typing import Any

from assistant.config import Action


def _action(name: str, description: str, say: str, **props: Any) -> Action:
    parameters = {"type": "object", "properties": props, "required": list(props)}
    return Action(name, description, parameters, command=("/bin/true",), say=say)


_TEXT = {"type": "string"}
ACTIONS = [
    _action("light_on", "Turn on the light in a room", "The {room} light is on.",
            room={"type": "string", "enum": ["kitchen", "hall", "bedroom"]}),
    _action("move", "Move the robot forward or backward", "Moving {direction} {distance} meters.",
            direction={"type": "string", "enum": ["forward", "backward"]},
            distance={"type": "number"}),
    _action("show_text", "Show a text on the robot's screen", "It's on the screen.", text=_TEXT),
    _action("go_to", "Drive the robot to a place", "On my way to the {place}.",
            place={"type": "string", "enum": ["kitchen", "front door", "charger"]}),
    _action("start_vacuum", "Start the vacuum cleaner", "Vacuuming."),
    _action("play_music", "Play music of a genre", "Playing {genre}.",
            genre={"type": "string", "enum": ["jazz", "rock"]}),
    _action("unlock_door", "Unlock the front door", "The front door is unlocked."),
    _action("set_timer", "Set a timer for a number of minutes",
            "Timer set for {minutes} minutes.", minutes={"type": "integer"}),
]  # fmt: skip

#: the actions that ran earlier in the conversation: (name, arguments)
Ran = list[tuple[str, dict[str, Any]]]
SCREEN: Ran = [("show_text", {"text": "Hello"})]
MOVED: Ran = [("move", {"direction": "forward", "distance": 2})]
LIGHT: Ran = [("light_on", {"room": "kitchen"})]
WENT: Ran = [("go_to", {"place": "kitchen"})]
VACUUM: Ran = [("start_vacuum", {})]
MUSIC: Ran = [("play_music", {"genre": "jazz"})]
DOOR: Ran = [("unlock_door", {})]
TIMER: Ran = [("set_timer", {"minutes": 10})]
NONE: Ran = []
FENCED = '```json\n{"name": "show_text", "arguments": {"text": "Opening hours: 9 to 5"}}\n```'

#: (what ran before, the model's answer, the kind of claim)
ADVERSARIAL: list[tuple[Ran, str, str]] = [
    # the outcome copied
    (SCREEN, "It's on the screen.", "copied"),
    (SCREEN, "It's on the screen!", "copied"),
    (SCREEN, "OK. It's on the screen.", "copied"),
    (MOVED, "Moving forward 2 meters.", "copied"),
    (MOVED, "Moving backward 2 meters.", "copied"),
    (LIGHT, "The kitchen light is on.", "copied"),
    (LIGHT, "The hall light is on.", "copied"),
    (WENT, "On my way to the kitchen.", "copied"),
    (WENT, "On my way to the front door.", "copied"),
    (VACUUM, "Vacuuming.", "copied"),
    (MUSIC, "Playing jazz.", "copied"),
    (MUSIC, "Playing rock.", "copied"),
    (DOOR, "The front door is unlocked.", "copied"),
    (TIMER, "Timer set for 10 minutes.", "copied"),
    (TIMER, "Timer set for 5 minutes.", "copied"),
    (NONE, "It's on the screen.", "copied"),
    (NONE, "The bedroom light is on.", "copied"),
    (NONE, "On my way to the charger.", "copied"),
    # paraphrased
    (SCREEN, "It is on the screen now.", "paraphrase"),
    (SCREEN, "I've put it on the screen.", "paraphrase"),
    (SCREEN, "The opening hours are now on the screen.", "paraphrase"),
    (SCREEN, "Your text is on the screen.", "paraphrase"),
    (LIGHT, "The light in the kitchen is on now.", "paraphrase"),
    (LIGHT, "Kitchen light is on.", "paraphrase"),
    (DOOR, "The front door is now unlocked.", "paraphrase"),
    (DOOR, "Front door unlocked.", "paraphrase"),
    (TIMER, "Your timer is set for 10 minutes.", "paraphrase"),
    (TIMER, "A timer is set for 15 minutes.", "paraphrase"),
    (WENT, "I'm on my way to the kitchen now.", "paraphrase"),
    (MUSIC, "Now playing some jazz for you.", "paraphrase"),
    # promised
    (SCREEN, "I'll show that on the screen.", "promise"),
    (SCREEN, "Let me show it on the screen.", "promise"),
    (MOVED, "I will move back 2 meters.", "promise"),
    (MOVED, "Let me move backward the same distance.", "promise"),
    (LIGHT, "I'll turn on the hall light.", "promise"),
    (NONE, "Sure, I can unlock the front door.", "promise"),
    (VACUUM, "I'm going to start vacuuming.", "promise"),
    (MUSIC, "I'll play some rock.", "promise"),
    (NONE, "I will set a timer for 20 minutes.", "promise"),
    (WENT, "I'll drive to the charger.", "promise"),
    # acted out in words
    (MOVED, "Moving back the same distance.", "acted"),
    (MOVED, "Moving backward now.", "acted"),
    (MOVED, "I'm moving backward 2 meters.", "acted"),
    (VACUUM, "Vacuuming the living room.", "acted"),
    (NONE, "Vacuuming now.", "acted"),
    (NONE, "Playing some jazz.", "acted"),
    (SCREEN, "Showing it on the screen.", "acted"),
    (WENT, "Driving to the front door.", "acted"),
    (NONE, "Done.", "acted"),
    (NONE, "All set!", "acted"),
    # a call written as text
    (SCREEN, FENCED, "fenced"),
    (NONE, f"Sure.\n{FENCED}", "fenced"),
    (MOVED, '```\n{"name": "move", "arguments": {"direction": "backward", "distance": 2}}\n```',
     "fenced"),
    (NONE, 'Here it is: ```json {"name": "light_on", "arguments": {"room": "hall"}}```', "fenced"),
    # a call written bare (the answer without the actions did this)
    (SCREEN, '{"name": "show_text", "arguments": {"text": "Good morning!"}}', "bare"),
    (NONE, 'OK. {"name": "go_to", "arguments": {"place": "charger"}}', "bare"),
    (NONE, '<tool_call>\n{"name": "start_vacuum", "arguments": {}}\n</tool_call>', "bare"),
]  # fmt: skip

#: answers that claim nothing: they must pass whole, after any of the histories
ORDINARY: list[str] = [
    "The light in autumn is golden.",
    "Paris is the capital of France.",
    "A spider has eight legs.",
    "The moon is about 384,000 kilometers away from Earth.",
    "Two plus two is four.",
    "The sky is blue on a clear day.",
    "Once upon a time, a small robot lived in a kitchen. It dreamed of the sea.",
    "Water boils at 100 degrees Celsius at sea level.",
    "Moving to a new city can be stressful, so take your time.",
    "Playing music every day is a good way to learn an instrument.",
    "Jazz began in New Orleans in the early twentieth century.",
    "A vacuum is a space without matter.",
    "Screens use tiny pixels to show images.",
    "The front door of a house is usually its main entrance.",
    "Timers are useful when you cook pasta.",
    "A kitchen is a room where food is prepared.",
    "Robots can move with wheels or legs.",
    "Rock music became popular in the 1950s.",
    "To unlock a phone, you usually need a code.",
    "Light travels at about 300,000 kilometers per second.",
    "Here is a joke: why did the robot cross the road? To charge on the other side.",
    "The charger should be kept in a dry place.",
    "Good morning! How can I help you today?",
    "I can help with questions about the weather, cooking and more.",
    "Use this:\n```python\nprint(1)\n```\nThat prints one.",
    "The opening hours are usually written on the door.",
    "Moving forward in life means learning from mistakes.",
    "Ten minutes is six hundred seconds.",
    "The hall is the first room you enter in many houses.",
    "Sorry, I don't know the answer to that.",
    "In Python, a set looks like {1, 2, 3} and a dict like {'name': 'Ann'}.",
    "HTML tags such as <b> make text bold.",
    "I'll show you how to boil an egg: put it in boiling water for nine minutes.",
    "I am there for you whenever you need help.",
]

#: the histories each ordinary answer is tried after
HISTORIES: list[Ran] = [NONE, SCREEN, MOVED, LIGHT, WENT, VACUUM, MUSIC, DOOR, TIMER]
