"""Actions without a model: the [[actions]] config, the runner's real subprocesses and HTTP
requests, the tool format and validator, grounding, confirmation and the claim guard."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import http.server
import json
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from assistant.actions.actor import CANNOT, Actor, ClaimGuard, claims_action, grounded
from assistant.actions.runner import OUTPUT_LIMIT, Runner
from assistant.config import Action, Http, load_config
from assistant.errors import ConfigError
from assistant.reload import reload_config
from assistant.speech.sentences import SentenceSplitter
from assistant.toolcall import (
    NO_ACTIONS,
    Tool,
    ToolCall,
    ToolError,
    call_schema,
    parse_call,
    render_call,
    render_responses,
    strict,
    validate,
)
from tests.fakes import serve_http

ROOM = {"type": "string", "enum": ["kitchen", "bedroom", "hall"]}
LIGHT_PARAMS = {"type": "object", "properties": {"room": ROOM}, "required": ["room"]}

GOOD = """
[[actions]]
name = "light_on"
description = "Turn on the light in a room"
parameters = { type = "object", properties = { room = { type = "string", enum = ["kitchen", "hall"] } }, required = ["room"] }
http = { url = "http://127.0.0.1:1/api/services/light/turn_on", headers = { Authorization = "Bearer {token}" }, body = { entity_id = "light.{room}" }, token_file = "token" }
say = "The {room} light is on."

[[actions]]
name = "move"
description = "Move the robot"
parameters = { type = "object", properties = { direction = { type = "string" } } }
command = ["/usr/local/bin/robot", "move", "{direction}"]
timeout_s = 3
"""  # noqa: E501 - TOML inline tables are one line


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    return info.value.problems


# -- the config ------------------------------------------------------------------------------
def test_good_actions_load_and_show_round_trips(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    light, move = config.actions
    assert light.http is not None and light.http.token_file == str(tmp_path / "token")
    assert move.command == ("/usr/local/bin/robot", "move", "{direction}")
    assert move.timeout_s == 3.0 and move.say == "Done." and not move.confirm
    again = load_config(write(tmp_path, config.to_toml()))  # `config show` output loads back
    assert again.actions == config.actions


def test_no_actions_by_default() -> None:
    assert load_config(None).actions == ()


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ('name = "x"\ndescription = "d"', "actions[0]: needs exactly one effect"),
        (
            'name = "x"\ndescription = "d"\ncommand = ["/bin/true"]\nhttp = { url = "http://a" }',
            "exactly one effect",
        ),
        ('name = "x"\ndescription = "d"\ncommand = ["robot"]', "must be an absolute path"),
        ('name = "x"\ndescription = "d"\ncommand = ["/bin/{x}"]', "no placeholder"),
        ('name = "x"\ndescription = "d"\ncommand = ["/bin/echo", "{room}"]', "{room} is not a"),
        ('name = "x"\ndescription = "d"\ncommand = ["/bin/true"]\ntimeout = 3', "'timeout_s'"),
        ('name = "x"\ndescription = "d"\ncommand = ["/bin/true"]\ntimeout_s = 0', "timeout_s"),
        ('name = "x y"\ndescription = "d"\ncommand = ["/bin/true"]', "actions[0].name"),
        ('name = "x"\ncommand = ["/bin/true"]', "actions[0].description: required"),
        (
            'name = "x"\ndescription = "d"\nhttp = { url = "ftp://a" }',
            "must start with http://",
        ),
        (
            'name = "x"\ndescription = "d"\n'
            'http = { url = "http://a", headers = { A = "{token}" } }',
            "no token_file",
        ),
        (
            'name = "x"\ndescription = "d"\ncommand = ["/bin/true"]\n'
            'parameters = { type = "object", properties = { n = { type = "float" } } }',
            "type 'float'",
        ),
        ('name = "x"\ndescription = "d"\ncommand = ["/bin/true"]\nsay = "{nope}"', "{nope}"),
        (  # passed `config check`, then `ask` died with an AssertionError traceback
            'name = "x"\ndescription = "d"\ncommand = ["/bin/true", "{code}"]\n'
            'parameters = { type = "object", properties = { code = { type = "string", '
            'pattern = "[0-9]{4}" } } }',
            'no grammar can be built from them: Pattern must start with "^"',
        ),
    ],
)
def test_bad_actions_are_named_with_file_line_and_key(
    tmp_path: Path, table: str, fragment: str
) -> None:
    found = problems(tmp_path, f"[llm]\nmax_tokens = 64\n\n[[actions]]\n{table}\n")
    assert any(fragment in p for p in found), found
    assert all(p.startswith(f"{tmp_path / 'config.toml'}:") for p in found)
    assert any(f":{n}:" in p for n in (4, 5, 6, 7, 8) for p in found), found


def test_every_problem_of_one_action_is_reported_at_once(tmp_path: Path) -> None:
    """`config check` reported only the first problem of each action."""
    found = problems(
        tmp_path,
        '[[actions]]\nname = "x y"\ndescription = "d"\ncommand = ["robot"]\n'
        'timeout_s = 0\nsay = "{nope}"\n',
    )
    for fragment in ("actions[0].name", "must be an absolute path", "timeout_s", "{nope}"):
        assert any(fragment in p for p in found), (fragment, found)


def test_the_second_table_is_numbered_and_names_are_unique(tmp_path: Path) -> None:
    text = GOOD + '\n[[actions]]\nname = "move"\ndescription = "again"\ncommand = ["/bin/true"]\n'
    (problem,) = problems(tmp_path, text)
    line = text.splitlines().index("[[actions]]", 15) + 1
    assert f"config.toml:{line}:" in problem or f"config.toml:{line + 1}:" in problem
    assert "actions[2].name: 'move' is used by an earlier action" in problem


def test_reload_applies_a_changed_action_list_live(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    config = load_config(path)
    path.write_text(GOOD.split('[[actions]]\nname = "move"', maxsplit=1)[0])
    outcome = reload_config(config)
    assert outcome.ok and [a.name for a in outcome.config.actions] == ["light_on"]
    assert "actions: 2 → 1 (light_on)" in outcome.applied
    path.write_text(GOOD + "\n[[actions]]\nname = 1\n")
    rejected = reload_config(outcome.config)
    assert not rejected.ok and rejected.config.actions == outcome.config.actions


# -- the runner ------------------------------------------------------------------------------
ARGV = [sys.executable, "-c", "import json, sys; print(json.dumps(sys.argv[1:]))"]


def command(*argv: str, **kw: Any) -> Action:
    return Action(
        name="run",
        description="Run it",
        parameters={"type": "object", "properties": {"text": {"type": "string"}}},
        command=tuple(argv),
        **kw,
    )


def run(action: Action, arguments: dict[str, Any], runner: Runner | None = None) -> Any:
    return asyncio.run((runner or Runner()).run(action, arguments, 7))


def test_hostile_text_is_one_literal_argument() -> None:
    hostile = '"; rm -rf / #$(reboot) `id` && echo pwned\n--flag'
    action = command(*ARGV, "say", "{text}", say="{output}")
    outcome = run(action, {"text": hostile})
    assert outcome.ok
    assert json.loads(outcome.output) == ["say", hostile]


def test_a_value_that_starts_with_a_dash_is_an_argument_after_the_programs_own_dashes() -> None:
    """docs/actions.md: "-rf" arrives as one argument; after the command's own "--" an
    argparse program takes it as text, not as an option."""
    program = (
        "import argparse, json; p = argparse.ArgumentParser(); p.add_argument('text'); "
        "print(json.dumps(vars(p.parse_args())))"
    )
    said = run(command(sys.executable, "-c", program, "--", "{text}"), {"text": "-rf"})
    assert said.ok and json.loads(said.output) == {"text": "-rf"}
    # without the "--" the same program reads it as an option it does not know: a failure
    assert not run(command(sys.executable, "-c", program, "{text}"), {"text": "-rf"}).ok


def test_a_pattern_keeps_dash_values_out_before_anything_runs() -> None:
    schema = {"type": "object", "properties": {"text": {"type": "string", "pattern": "^[^-]"}}}
    action = Action(name="run", description="Run it", parameters=schema, command=(*ARGV, "{text}"))
    runner = FakeRunner()
    call = '{"name": "run", "arguments": {"text": "-rf"}}'
    decision = asyncio.run(Actor([action], runner=runner).act(call, "Run -rf"))
    assert decision.outcome == "refused" and not runner.ran


def test_a_command_that_leaves_a_child_holding_its_output_has_finished() -> None:
    """Issue 28: it exited 0 but a background child kept stdout open: it was said "did not
    finish" (and its group killed, the child with it)."""
    program = (
        "import subprocess, sys; child = subprocess.Popen(['sleep', '30']); "
        "print(child.pid, flush=True)"
    )
    action = dataclasses.replace(command(sys.executable, "-c", program), timeout_s=5.0)
    outcome = run(action, {})
    child = int(outcome.output.split()[0])
    try:
        assert outcome.ok, outcome.said
        os.kill(child, 0)  # the child it started is its own business: it still runs
    finally:
        os.kill(child, signal.SIGKILL)


def test_a_missing_optional_argument_is_no_argument_at_all() -> None:
    outcome = run(command(*ARGV, "say", "{text}", "--to={text}"), {})
    assert json.loads(outcome.output) == ["say", "--to="]


def test_a_command_that_fails_or_hangs_is_said_to_have_failed() -> None:
    failed = run(command(sys.executable, "-c", "import sys; sys.exit(3)"), {})
    assert not failed.ok and "exited with status 3" in failed.said
    assert failed.said.startswith("Sorry, that did not work")
    hung = run(command(sys.executable, "-c", "import time; time.sleep(30)", timeout_s=0.3), {})
    assert not hung.ok and "did not finish within 0.3 seconds" in hung.said
    missing = run(command("/no/such/program"), {})
    assert not missing.ok and "could not start" in missing.said


def test_output_is_kept_up_to_the_limit() -> None:
    outcome = run(command(sys.executable, "-c", "print('x' * 1_000_000)"), {})
    assert outcome.ok and len(outcome.output) == OUTPUT_LIMIT


def test_the_rate_limit_refuses_honestly() -> None:
    now = [0.0]
    runner = Runner(clock=lambda: now[0])
    action = command("/bin/true", rate_per_min=2)
    assert run(action, {}, runner).ok and run(action, {}, runner).ok
    refused = run(action, {}, runner)
    assert not refused.ok and refused.said.startswith("I did not do that")
    now[0] = 61.0
    assert run(action, {}, runner).ok


class Recorder(http.server.BaseHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, str, str, bytes]]] = []
    status = 200

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.requests.append((self.command, self.path, self.headers["Authorization"], body))
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'[{"entity_id": "light.kitchen", "state": "on"}]')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def controller() -> Iterator[str]:
    Recorder.requests, Recorder.status = [], 200
    with serve_http(Recorder) as url:
        yield url


def light(url: str, token_file: Path) -> Action:
    return Action(
        name="light_on",
        description="Turn on the light in a room",
        parameters=LIGHT_PARAMS,
        http=Http(
            f"{url}/api/services/light/turn_on/{{room}}",
            "POST",
            (("Authorization", "Bearer {token}"),),
            {"entity_id": "light.{room}", "room": "{room}"},
            str(token_file),
        ),
        say="The {room} light is on.",
    )


def test_an_http_action_sends_one_request_with_the_token(controller: str, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    outcome = run(light(controller, token), {"room": "kitchen"})
    assert outcome.ok and outcome.said == "The kitchen light is on."
    ((method, path, auth, body),) = Recorder.requests
    assert (method, path, auth) == ("POST", "/api/services/light/turn_on/kitchen", "Bearer s3cret")
    assert json.loads(body) == {"entity_id": "light.kitchen", "room": "kitchen"}


def test_http_values_cannot_break_out_of_their_place(controller: str, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    action = light(controller, token)
    outcome = run(action, {"room": 'a/../b?x=1", "admin": true'})
    assert outcome.ok
    ((_, path, _, body),) = Recorder.requests
    assert path == "/api/services/light/turn_on/a%2F..%2Fb%3Fx%3D1%22%2C%20%22admin%22%3A%20true"
    assert json.loads(body)["room"] == 'a/../b?x=1", "admin": true'
    for value, segment in (("..", "%2E%2E"), (".", "%2E")):  # was sent as a bare ".."
        assert run(action, {"room": value}).ok
        assert Recorder.requests[-1][1] == f"/api/services/light/turn_on/{segment}"


def test_http_failures_are_said(controller: str, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    Recorder.status = 401
    refused = run(light(controller, token), {"room": "kitchen"})
    assert not refused.ok and "answered 401" in refused.said
    unreachable = run(light("http://127.0.0.1:9", token), {"room": "kitchen"})
    assert not unreachable.ok and "could not be reached" in unreachable.said
    no_token = run(light(controller, tmp_path / "missing"), {"room": "kitchen"})
    assert not no_token.ok and "token file" in no_token.said


class Redirect(http.server.BaseHTTPRequestHandler):
    to = ""

    def do_POST(self) -> None:
        self.send_response(302)
        self.send_header("Location", self.to)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_a_redirect_is_never_followed_and_the_token_stays_home(
    controller: str, tmp_path: Path
) -> None:
    """The target answers 302 to another host: urllib followed it (a GET, with the bearer
    token) and the assistant said the door was unlocked; now nothing is sent there and the
    failure names the redirect."""
    token = tmp_path / "token"
    token.write_text("s3cret")
    Redirect.to = f"{controller}/steal"
    with serve_http(Redirect) as target:
        outcome = run(light(target, token), {"room": "kitchen"})
    assert not outcome.ok and Recorder.requests == []
    assert "answered 302, a redirect to" in outcome.said and "not followed" in outcome.said


def test_the_runner_says_what_it_cannot_send_or_read(tmp_path: Path) -> None:
    """Failures that used to raise out of the runner (a 500 or a cut stream) are said."""
    import socket
    import threading

    token = tmp_path / "token"
    token.write_text("t")
    with socket.socket() as server:  # answers anything with bytes that are not HTTP
        server.bind(("127.0.0.1", 0))
        server.listen()

        def garbage() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")

        threading.Thread(target=garbage, daemon=True).start()
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        not_http = run(light(url, token), {"room": "kitchen"})
    assert not not_http.ok and "did not give an HTTP answer" in not_http.said
    token.write_text("你好")  # a header value outside Latin-1
    unsendable = run(light("http://127.0.0.1:9", token), {"room": "kitchen"})
    assert not unsendable.ok and "an HTTP header cannot carry" in unsendable.said
    nul = run(command(*ARGV, "say", "{text}"), {"text": "a\x00b"})
    assert not nul.ok and "could not start" in nul.said


# -- the tool format and the validator -------------------------------------------------------
def test_strict_closes_objects_and_can_leave_enums_to_the_validator() -> None:
    closed = strict(LIGHT_PARAMS)
    assert closed["additionalProperties"] is False
    assert "enum" in closed["properties"]["room"]
    assert "enum" not in strict(LIGHT_PARAMS, enums=False)["properties"]["room"]
    schema = call_schema([Tool("a", "A", LIGHT_PARAMS), Tool("b", "B", {"type": "object"})])
    assert [o["properties"]["name"]["const"] for o in schema["anyOf"]] == ["a", "b"]


def test_parse_call_checks_name_and_arguments() -> None:
    tools = [Tool("light_on", "Light", LIGHT_PARAMS)]
    call = parse_call('{"name": "light_on", "arguments": {"room": "hall"}}', tools)
    assert call == ToolCall("light_on", {"room": "hall"})
    for bad, fragment in [
        ("{", "not JSON"),
        ('{"name": "unlock", "arguments": {}}', "no tool named"),
        ('{"name": "light_on", "arguments": {"room": "garage"}}', "not one of"),
        ('{"name": "light_on", "arguments": {}}', "required"),
        ('{"name": "light_on", "arguments": {"room": "hall", "x": 1}}', "not a parameter"),
    ]:
        with pytest.raises(ToolError, match=fragment):
            parse_call(bad, tools)


@pytest.mark.parametrize(
    ("schema", "value", "ok"),
    [
        ({"type": "integer"}, 3, True),
        ({"type": "integer"}, True, False),
        ({"type": "number"}, 2.5, True),
        ({"type": "boolean"}, 1, False),
        ({"type": "string", "maxLength": 3}, "abcd", False),
        ({"type": "number", "minimum": 0, "maximum": 10}, 11, False),
        ({"type": "array", "items": {"type": "string"}}, ["a", 2], False),
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, None, True),
        ({"const": "x"}, "y", False),
    ],
)
def test_validate(schema: dict[str, Any], value: Any, ok: bool) -> None:
    assert (validate(schema, value) == []) is ok


def test_calls_and_results_render_as_qwen_writes_them() -> None:
    text = render_call(ToolCall("light_on", {"room": "hall"}))
    assert text == '<tool_call>\n{"name": "light_on", "arguments": {"room": "hall"}}\n</tool_call>'
    assert render_responses(["1", "2"]) == (
        "<tool_response>\n1\n</tool_response>\n<tool_response>\n2\n</tool_response>"
    )


# -- the actor -------------------------------------------------------------------------------
class FakeRunner(Runner):
    def __init__(self) -> None:
        super().__init__()
        self.ran: list[tuple[str, dict[str, Any]]] = []

    async def run(self, action: Action, arguments: Any, turn_id: int = 0) -> Any:
        from assistant.actions.runner import Outcome

        self.ran.append((action.name, dict(arguments)))
        return Outcome(True, action.say.replace("{room}", str(arguments.get("room", ""))))


LIGHT = Action(
    name="light_on",
    description="Turn on the light in a room",
    parameters=LIGHT_PARAMS,
    command=("/bin/true",),
    say="The {room} light is on.",
)
DOOR = Action(
    name="unlock_door", description="Unlock the front door", command=("/bin/true",), confirm=True
)


def actor(*actions: Action, clock: Any = None) -> tuple[Actor, FakeRunner]:
    runner = FakeRunner()
    kw = {"clock": clock} if clock else {}
    return Actor(actions, runner=runner, **kw), runner


def call(name: str, **arguments: Any) -> str:
    return json.dumps({"name": name, "arguments": arguments})


def test_a_grounded_call_runs_and_says_its_template() -> None:
    a, runner = actor(LIGHT)
    decision = asyncio.run(a.act(call("light_on", room="kitchen"), "Turn on the kitchen light"))
    assert decision.outcome == "ran" and decision.said == "The kitchen light is on."
    assert runner.ran == [("light_on", {"room": "kitchen"})]


@pytest.mark.parametrize(
    "request_text",
    ["Unlock the front door.", "Make me a coffee.", "Turn on the light."],
)
def test_a_call_the_request_does_not_name_is_not_run(request_text: str) -> None:
    a, runner = actor(LIGHT)
    decision = asyncio.run(a.act(call("light_on", room="kitchen"), request_text))
    assert decision.said == CANNOT and decision.outcome == "refused" and not runner.ran


def test_an_unknown_room_is_said_to_be_unknown_not_forced() -> None:
    a, runner = actor(LIGHT)
    decision = asyncio.run(a.act(call("light_on", room="garage"), "Light the garage"))
    assert decision.said.startswith(CANNOT) and "'garage' is not one of" in decision.said
    assert not runner.ran


def test_grounding_uses_name_description_and_keywords() -> None:
    lamp = Action(name="light_on", description="Light", command=("/bin/true",), keywords=("lamp",))
    assert grounded(lamp, {}, "switch the lamp on") == ""
    assert grounded(lamp, {}, "open the garage") != ""


def _act(name: str, description: str, **kw: Any) -> Action:
    return Action(name=name, description=description, command=("/bin/true",), **kw)


def test_a_word_the_actions_share_grounds_none() -> None:
    """With several actions, "Start the vacuum cleaner." ran start_music ("start" was the
    shared word): the request must name what makes the action this action."""
    music = _act("start_music", "Start playing music", keywords=("song", "songs"))
    fan = _act("start_fan", "Start the fan")
    actions = [music, fan, _act("stop_music", "Stop the music")]
    assert "names only a direction (start) of start_music" in grounded(
        music, {}, "Start the vacuum cleaner.", actions
    )
    assert "tells start_music from stop_music (only music)" in grounded(
        music, {}, "Put some music on the vacuum cleaner.", [*actions, _act("mute", "Mute music")]
    )
    radio = _act("radio_on", "Play the radio in the kitchen")
    kettle = _act("kettle_on", "Boil the kettle in the kitchen")
    assert "tells radio_on from kettle_on (only kitchen)" in grounded(
        radio, {}, "Do something in the kitchen.", [radio, kettle]
    )
    assert grounded(radio, {}, "Put the radio on in the kitchen.", [radio, kettle]) == ""
    assert grounded(music, {}, "Play some songs, please.", actions) == ""
    assert grounded(fan, {}, "Start the fan.", actions) == ""
    assert "stop_music" in grounded(actions[2], {}, "Start the music.", actions)
    # no word alone is its own, but together they are: start_vacuum beside stop_vacuum and
    # start_music (bench actions' fifteen: every vacuum request was refused)
    vacuum = [
        _act("start_vacuum", "Start the vacuum cleaner"),
        _act("stop_vacuum", "Stop the vacuum cleaner"),
    ]
    many = [*vacuum, music, actions[2]]
    assert grounded(vacuum[0], {}, "Start the vacuum cleaner.", many) == ""
    assert grounded(vacuum[1], {}, "Stop vacuuming now.", many) == ""  # vacuuming → vacuum
    assert grounded(vacuum[1], {}, "Stop the vacuum.", many) == ""
    assert "opposite" in grounded(vacuum[1], {}, "Start the vacuum cleaner.", many)
    assert "only a direction" in grounded(vacuum[0], {}, "Start the dishwasher.", many)


def test_a_request_for_the_opposite_never_runs_the_action() -> None:
    """With only light_on configured, "Turn off the kitchen light." sent turn_on and said
    "The kitchen light is on." ("kitchen" and "light" grounded it)."""
    light_on = _act("light_on", "Turn on the light in a room", parameters=LIGHT_PARAMS)
    light_off = _act("light_off", "Turn off the light in a room", parameters=LIGHT_PARAMS)
    kitchen = {"room": "kitchen"}
    assert "says 'off', the opposite of what light_on does" in grounded(
        light_on, kitchen, "Turn off the kitchen light.", [light_on]
    )
    both = [light_on, light_off]
    assert grounded(light_on, kitchen, "Turn on the kitchen light.", both) == ""
    assert grounded(light_off, kitchen, "Switch the kitchen light off.", both) == ""
    assert grounded(light_off, kitchen, "Turn on the kitchen light.", both) != ""
    a, runner = actor(LIGHT)
    decision = asyncio.run(a.act(call("light_on", room="kitchen"), "Turn off the kitchen light"))
    assert decision.said == CANNOT and not runner.ran


def test_an_invented_free_text_is_refused_and_the_requests_own_runs() -> None:
    """ "Put the opening hours, 9 to 5, on the display." put an invented "Good morning, and
    welcome to the robot's screen!" on the screen and said "It's on the screen."."""
    text = {"type": "object", "properties": {"text": {"type": "string"}}}
    show = _act(
        "show_text", "Show a text on the robot's screen", parameters=text, keywords=("display",)
    )
    request = "Put the opening hours, 9 to 5, on the display."
    invented = {"text": "Good morning, and welcome to the robot's screen!"}
    assert 'text "Good morning' in grounded(show, invented, request, [show])
    assert "is not what the request says" in grounded(show, invented, request, [show])
    assert grounded(show, {"text": "Opening hours: 9 to 5"}, request, [show]) == ""
    assert grounded(show, {"text": "Welcome home"}, 'Show "Welcome home" on the screen.') == ""
    assert grounded(show, {"text": "Happy birthdays"}, "Show happy birthday on screen.") == ""


def test_confirm_asks_then_runs_only_on_yes() -> None:
    now = [0.0]
    a, runner = actor(DOOR, clock=lambda: now[0])

    def waits() -> bool:  # (a function: mypy would narrow a.waiting between the asserts)
        return a.waiting

    asked = asyncio.run(a.act(call("unlock_door"), "Unlock the front door"))
    assert asked.said == "Shall I unlock the front door?" and not runner.ran and waits()
    assert asked.history("Unlock the front door") == []  # remembered once answered
    done = asyncio.run(a.confirmation("Yes please"))
    assert done is not None and done.outcome == "ran" and runner.ran == [("unlock_door", {})]
    assert done.history("Yes please")[0] == ("user", "Unlock the front door")
    asyncio.run(a.act(call("unlock_door"), "Unlock the front door"))
    no = asyncio.run(a.confirmation("no"))
    assert no is not None and no.said == "OK, I won't." and len(runner.ran) == 1
    asyncio.run(a.act(call("unlock_door"), "Unlock the front door"))
    assert asyncio.run(a.confirmation("what time is it?")) is None and not waits()
    asyncio.run(a.act(call("unlock_door"), "Unlock the front door"))
    now[0] = 61.0
    assert asyncio.run(a.confirmation("yes")) is None and len(runner.ran) == 1


def test_without_actions_the_prompt_says_the_assistant_cannot_act() -> None:
    a, _ = actor()
    assert a.system_prompt("Be brief.") == f"Be brief. {NO_ACTIONS}"
    assert a.constraint() is None
    with_light, _ = actor(LIGHT)
    prompt = with_light.system_prompt("Be brief.")
    assert "<tools>" in prompt and '"name": "light_on"' in prompt
    constraint = with_light.constraint()
    assert constraint is not None and constraint.start == "tool_call"


@pytest.mark.parametrize(
    ("sentence", "claims"),
    [
        ("Done.", True),
        ("OK, I'll turn on the kitchen light.", True),
        ("I have unlocked the door for you.", True),
        ("The light is now on.", True),
        ("Turning on the light now.", True),
        ("Sure, I can turn on the kitchen light.", True),
        ("I cannot turn on the light.", False),
        ("The kitchen light is on, it's time to have a nice day!", True),
        ("The party is on Friday.", False),
        ("Okay, let's turn on the kitchen light for you!", True),
        ("The capital of France is Paris.", False),
        ("Shall I turn on the light?", False),
        ("I can't turn on lights.", False),
        ("Let me explain how a lock works.", False),
    ],
)
def test_claims_action(sentence: str, claims: bool) -> None:
    assert claims_action(sentence) is claims


def test_the_claim_guard_passes_text_and_ends_at_a_claim() -> None:
    guard = ClaimGuard()
    pieces = ["Paris is", " the capital.\n1. a", "\n2. b. Do", "ne. More."]
    out = "".join(guard.feed(p) for p in pieces) + guard.flush()
    assert out == f"Paris is the capital.\n1. a\n2. b. {CANNOT}" and guard.hit
    spaced = ClaimGuard()
    out = spaced.feed("Okay, a game!") + spaced.feed("Done.") + spaced.flush()
    assert out == f"Okay, a game! {CANNOT}"
    clean = ClaimGuard()
    text = "".join(clean.feed(p) for p in ["It is ", "sunny"]) + clean.flush()
    assert text == "It is sunny" and not clean.hit


def test_the_first_clause_goes_out_before_its_sentence_ends() -> None:
    """The voice starts on the first clause; a claim later in the same sentence, even one
    that spans the clause, still ends the answer before it is said."""
    guard = ClaimGuard()
    first = [guard.feed(p) for p in ["To pack for the beach", ", bring a hat", " and water."]]
    assert first == ["", "To pack for the beach, ", ""]  # the end: when the next piece comes
    assert guard.feed(" Also, take a towel") == "bring a hat and water. "
    assert guard.feed(" and a book.") == ""  # later sentences go out whole
    spans = ClaimGuard()
    said = spans.feed("The kitchen lamp, as you asked, ")
    assert said == "The kitchen lamp, as you asked, "
    assert spans.feed("is on. More.") == CANNOT and spans.hit
    claim = ClaimGuard()  # a clause that claims is never let out early
    assert claim.feed("Sure, I have turned on the light, ") == ""
    assert claim.feed("as you asked.") == CANNOT and claim.hit
    short = ClaimGuard()  # under 16 characters: held for the sentence
    assert short.feed("Well, yes, ") == "" and short.flush() == "Well, yes, "


def test_the_voice_cuts_its_first_chunk_as_soon_as_the_guard_lets_the_words_out() -> None:
    """The guard lets a boundary out with the word or space that shows it, so the voice's
    splitter cuts there at once: before an opening word ("because"), at a clause, at a
    sentence's end; a "." that did not end a sentence ("3.5") is not cut."""

    def chunks_by_token(tokens: list[str]) -> list[tuple[int, str]]:
        guard, splitter = ClaimGuard(), SentenceSplitter()
        cut = [(i, c) for i, t in enumerate(tokens) for c in splitter.feed(guard.feed(t))]
        return cut + [(len(tokens), c) for c in splitter.feed(guard.flush()) + splitter.flush()]

    sky = ["The", " sky", " is", " blue", " because", " it", "'s", " far", "."]
    assert chunks_by_token(sky)[0] == (5, "The sky is blue")
    beach = ["Pack", " a", " swim", "suit", ",", " sun", "screen", "."]
    assert chunks_by_token(beach)[0] == (5, "Pack a swimsuit,")
    sunny = ["The", " weather", " is", " clear", " and", " sunny", ".", " Paris", " is"]
    assert chunks_by_token(sunny)[0] == (7, "The weather is clear and sunny.")
    price = ["It", " costs", " about", " 3", ".", "5", " dollars", " a", " day", ".", " Yes"]
    assert chunks_by_token(price)[0] == (10, "It costs about 3.5 dollars a day.")
    lamp = ["The", " light", " in", " the", " living", " room", " is", " on", " now", ".", " "]
    said = "".join(c for _, c in chunks_by_token(lamp))
    assert said == CANNOT  # the opening word is checked with what goes out before it
    chinese = ["天空", "是", "蓝色", "的", "。", "因为", "阳光", "。", "光", "在"]
    assert chunks_by_token(chinese)[:2] == [(5, "天空是蓝色的。"), (8, "因为阳光。")]


@pytest.mark.parametrize("split", [1, 3, 7, 1000])
def test_a_call_written_in_a_code_fence_is_never_shown_or_spoken(split: int) -> None:
    """About 4 in 25 times the model wrote its call inside a ```json fence, and the raw JSON
    was shown or spoken; a code block that is not a call still goes out whole."""
    text = 'Here you go.\n```json\n{"name": "light_on", "arguments": {"room": "hall"}}\n```'
    guard = ClaimGuard()
    pieces = [text[i : i + split] for i in range(0, len(text), split)]
    out = "".join(guard.feed(p) for p in pieces) + guard.flush()
    assert out == f"Here you go.\n{CANNOT}" and guard.hit
    inline = ClaimGuard()
    out = inline.feed('Sure: ```{"name": "light_on"') + inline.flush()
    assert "{" not in out and out.endswith(CANNOT)
    code = "Use this:\n```python\nprint(1)\n```\nThat prints one."
    plain = ClaimGuard()
    pieces = [code[i : i + split] for i in range(0, len(code), split)]
    assert "".join(plain.feed(p) for p in pieces) + plain.flush() == code and not plain.hit


def test_the_examples_in_docs_actions_md_and_config_toml_are_valid(tmp_path: Path) -> None:
    """Every ```toml block of docs/actions.md, and config.toml's commented example once
    uncommented, loads as written."""
    import re

    root = Path(__file__).parent.parent
    blocks = re.findall(r"```toml\n(.*?)```", (root / "docs/actions.md").read_text(), re.S)
    assert len(blocks) == 2
    shipped = (root / "config.toml").read_text()
    example = shipped[shipped.index("# [[actions]]\n") :]
    blocks.append("\n".join(line[2:] for line in example.splitlines() if line.startswith("# ")))
    names = []
    for block in blocks:
        names += [a.name for a in load_config(write(tmp_path, block)).actions]
    assert names == ["move", "go_to", "show_text", "light_on", "unlock_door", "light_on"]


# -- replies a target should not send: each an honest failure, never a raise -----------------
@contextlib.contextmanager
def raw_target(reply: Callable[[socket.socket], None]) -> Iterator[str]:
    """A TCP server that reads a request and answers with ``reply`` (raw bytes, any pace)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                with contextlib.suppress(OSError):
                    reply(conn)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        stop.set()
        server.close()


def _trickle(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 200\r\n\r\n")
    for _ in range(200):  # one byte every 0.2 s: 40 s in all, each read well within timeout
        conn.sendall(b"x")
        threading.Event().wait(0.2)  # the target's pace, not the test waiting


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (lambda c: c.sendall(b"SSH-2.0-OpenSSH_9.2\r\n"), "did not give an HTTP answer"),
        (
            lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n"),
            "did not give an HTTP answer",
        ),
        (
            lambda c: c.sendall(b"HTTP/1.1 200 OK\r\n" + b"X-A: b\r\n" * 120 + b"\r\n"),
            "did not give an HTTP answer",
        ),
        (
            lambda c: c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab"),
            "did not give an HTTP answer",
        ),
        (_trickle, "did not answer within 1 seconds"),
    ],
    ids=["not-http", "64k-header", "120-headers", "broken-chunked", "trickle"],
)
def test_a_target_that_answers_badly_is_an_honest_failure(reply: Any, why: str) -> None:
    with raw_target(reply) as url:
        action = Action(
            name="ping", description="Ping the robot", http=Http(f"{url}/ping", "POST"),
            timeout_s=1.0,
        )  # fmt: skip
        outcome = run(action, {})
    assert not outcome.ok and why in outcome.said, outcome
