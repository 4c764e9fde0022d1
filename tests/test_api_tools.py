"""Tools over the HTTP API without a model: the plan a request becomes, the streamed
tool-call deltas, refusals a client can fix, and api.allow_actions against a real HTTP
controller (a fake engine that answers with a call)."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from assistant.actions.actor import Actor
from assistant.api.app import create_app
from assistant.api.schema import ChatRequest
from assistant.api.server import ServerThread
from assistant.api.tools import CallStream, PlanError, plan
from assistant.config import Action, Http
from tests.fakes import FakeEngine
from tests.test_actions import LIGHT_PARAMS, Recorder, controller  # noqa: F401 - fixture
from tests.test_api import make_config, make_state

TOOL = {
    "type": "function",
    "function": {"name": "light_on", "description": "Light", "parameters": LIGHT_PARAMS},
}


def request(**body: Any) -> ChatRequest:
    body.setdefault("messages", [{"role": "user", "content": "Turn on the hall light"}])
    return ChatRequest.model_validate(body)


def test_auto_offers_the_tools_and_constrains_lazily() -> None:
    how = plan(request(tools=[TOOL]), "Be brief.")
    (role, system), (user_role, _) = how.messages
    assert role == "system" and system.startswith("Be brief.") and "<tools>" in system
    assert user_role == "user"
    assert how.constraint is not None and how.constraint.start == "tool_call"
    assert how.opening == "" and how.mode == "tools"


def test_required_and_named_open_the_call_in_the_prompt() -> None:
    for choice in ("required", {"type": "function", "function": {"name": "light_on"}}):
        how = plan(request(tools=[TOOL], tool_choice=choice), "")
        assert how.opening == "<tool_call>\n"
        assert how.constraint is not None and how.constraint.start == "now"


def test_none_leaves_the_tools_out() -> None:
    how = plan(request(tools=[TOOL], tool_choice="none"), "Be brief.")
    assert how.constraint is None and "<tools>" not in how.messages[0][1]


def test_a_history_with_calls_and_results_renders_in_qwens_format() -> None:
    how = plan(
        request(
            tools=[TOOL],
            messages=[
                {"role": "system", "content": "Mine."},
                {"role": "user", "content": "Light the hall"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "light_on", "arguments": '{"room": "hall"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "ok"},
                {"role": "tool", "tool_call_id": "c2", "content": "also ok"},
            ],
        ),
        "ignored",
    )
    roles = [r for r, _ in how.messages]
    assert roles == ["system", "user", "assistant", "user"]
    assert how.messages[0][1].startswith("Mine.")
    assert how.messages[2][1] == (
        '<tool_call>\n{"name": "light_on", "arguments": {"room": "hall"}}\n</tool_call>'
    )
    assert how.messages[3][1] == (
        "<tool_response>\nok\n</tool_response>\n<tool_response>\nalso ok\n</tool_response>"
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"tool_choice": "required"}, "tool_choice"),
        (
            {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "tool_choice",
        ),
        ({"tools": [TOOL], "response_format": {"type": "json_object"}}, "response_format"),
    ],
)
def test_plans_a_client_can_fix_are_refused(body: dict[str, Any], param: str) -> None:
    with pytest.raises(PlanError) as info:
        plan(request(**body), "")
    assert info.value.param == param


def test_json_formats_constrain_from_the_first_token() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    how = plan(
        request(response_format={"type": "json_schema", "json_schema": {"schema": schema}}), ""
    )
    assert how.mode == "json" and how.constraint is not None
    assert how.constraint.start == "now" and how.constraint.schema == schema
    assert json.dumps(schema) in how.messages[0][1]


CALL = '{"name": "light_on", "arguments": {"room": "hall", "note": "a } b"}}'


@given(st.lists(st.integers(1, len(CALL)), min_size=1, max_size=12))
def test_streamed_deltas_add_up_to_the_call_however_it_is_cut(cuts: list[int]) -> None:
    stream = CallStream()
    points = sorted({0, *cuts, len(CALL)})
    deltas = []
    for a, b in itertools.pairwise(points):
        deltas += stream.feed(CALL[a:b])
    deltas += stream.finish()
    assert deltas[0]["function"]["name"] == "light_on" and deltas[0]["id"].startswith("call_")
    arguments = "".join(d["function"].get("arguments", "") for d in deltas)
    assert json.loads(arguments) == {"room": "hall", "note": "a } b"}


def test_unknown_keys_in_tools_are_still_400() -> None:
    with pytest.raises(ValueError, match="extra"):
        ChatRequest.model_validate(
            {"messages": [{"role": "user", "content": "x"}], "tools": [{**TOOL, "x": 1}]}
        )


# -- api.allow_actions: the device's own actions, run here ------------------------------------
def served(engine: FakeEngine, actor: Actor, **api: Any) -> tuple[ServerThread, Any]:
    config = make_config(**api)
    state = make_state(config, engine, actor)
    return ServerThread(create_app(state), config.api), state


def light(url: str, token: Path) -> Action:
    return Action(
        name="light_on",
        description="Turn on the light in a room",
        parameters=LIGHT_PARAMS,
        http=Http(f"{url}/light", "POST", (), {"entity_id": "light.{room}"}, str(token)),
        say="The {room} light is on.",
    )


@pytest.mark.parametrize("stream", [False, True])
def test_allowed_actions_run_on_the_device_and_are_answered(
    controller: str,  # noqa: F811 - the fixture
    tmp_path: Path,
    stream: bool,
) -> None:
    token = tmp_path / "token"
    token.write_text("t")
    engine = FakeEngine([], call='{"name": "light_on", "arguments": {"room": "kitchen"}}')
    thread, _ = served(engine, Actor([light(controller, token)]), allow_actions=True)
    try:
        body = {
            "messages": [{"role": "user", "content": "Turn on the kitchen light"}],
            "stream": stream,
        }
        reply = httpx.post(f"{thread.url}/v1/chat/completions", json=body, timeout=10)
        assert reply.status_code == 200
        text, _ = _content(reply, stream)
        assert text == "The kitchen light is on."
        assert len(Recorder.requests) == 1
        assert json.loads(Recorder.requests[0][3]) == {"entity_id": "light.kitchen"}
    finally:
        thread.close()


def test_without_allow_actions_the_api_never_runs_device_actions(
    controller: str,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    engine = FakeEngine(["I can't do that."], call='{"name": "light_on", "arguments": {}}')
    thread, state = served(engine, Actor([light(controller, tmp_path / "t")]))
    try:
        body = {"messages": [{"role": "user", "content": "Turn on the kitchen light"}]}
        reply = httpx.post(f"{thread.url}/v1/chat/completions", json=body, timeout=10)
        assert reply.json()["choices"][0]["message"]["content"] == "I can't do that."
        assert engine.constraints == [None] and Recorder.requests == []
        state.config = dataclasses.replace(
            state.config, api=dataclasses.replace(state.config.api, allow_actions=True)
        )  # what a reload does: the next request offers them
        reply = httpx.post(f"{thread.url}/v1/chat/completions", json=body, timeout=10)
        assert engine.constraints[-1] is not None
    finally:
        thread.close()


def _content(reply: httpx.Response, stream: bool) -> tuple[str, dict[str, Any]]:
    """The answer's text and its last JSON object (the final chunk when streamed)."""
    if not stream:
        body = reply.json()
        return body["choices"][0]["message"]["content"], body
    events = [
        json.loads(line[6:]) for line in reply.text.splitlines() if line.startswith("data: {")
    ]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    return text, next(e for e in reversed(events) if e["choices"])


@pytest.mark.parametrize("stream", [False, True])
def test_device_mode_never_claims_an_action_that_did_not_run(
    controller: str,  # noqa: F811 - the fixture
    tmp_path: Path,
    stream: bool,
) -> None:
    """The model copies an earlier outcome and calls nothing: the API says it cannot, as the
    voice loop does (this streamed "Done! The hall light is now on." before)."""
    engine = FakeEngine(["Done! ", "The hall ", "light is now on."])
    thread, _ = served(engine, Actor([light(controller, tmp_path / "t")]), allow_actions=True)
    try:
        body = {
            "messages": [
                {"role": "user", "content": "Turn on the bedroom light."},
                {"role": "assistant", "content": "Done! The bedroom light is now on."},
                {"role": "user", "content": "Turn on the hall light."},
            ],
            "stream": stream,
        }
        reply = httpx.post(f"{thread.url}/v1/chat/completions", json=body, timeout=10)
        assert reply.status_code == 200
        text, last = _content(reply, stream)
        assert "now on" not in text and text.endswith("Sorry, I can't do that."), text
        assert last["choices"][0]["finish_reason"] == "stop"
        assert Recorder.requests == []
    finally:
        thread.close()


def door(url: str, token: Path) -> Action:
    return Action(
        name="unlock_door",
        description="Unlock the front door",
        parameters={"type": "object", "properties": {}},
        http=Http(f"{url}/door", "POST", (), {"unlock": "front"}, str(token)),
        say="The front door is unlocked.",
        confirm=True,
    )


@pytest.mark.parametrize("stream", [False, True])
def test_an_api_confirmation_is_answered_only_with_the_id_it_came_with(
    controller: str,  # noqa: F811 - the fixture
    tmp_path: Path,
    stream: bool,
) -> None:
    """ "Shall I unlock the front door?" over the API waits in the API's own conversation:
    the voice loop's "yes" and a client's hand-written "yes" do nothing; the yes sent with
    the confirmation id the server issued unlocks it (before, the question waited in the
    voice loop's conversation and an API "yes" could never succeed)."""
    token = tmp_path / "token"
    token.write_text("t")
    engine = FakeEngine([], call='{"name": "unlock_door", "arguments": {}}')
    actor = Actor([door(controller, token)])
    thread, _ = served(engine, actor, allow_actions=True)
    url = f"{thread.url}/v1/chat/completions"

    def ask(text: str, **extra: Any) -> tuple[str, dict[str, Any]]:
        body = {"messages": [{"role": "user", "content": text}], "stream": stream, **extra}
        reply = httpx.post(url, json=body, timeout=10)
        assert reply.status_code == 200, reply.text
        return _content(reply, stream)

    try:
        text, last = ask("Unlock the front door.")
        assert text == "Shall I unlock the front door?"
        confirmation = last["confirmation"]
        assert isinstance(confirmation, str) and len(confirmation) >= 16
        # the voice loop's yes ("" is its conversation) finds no question of its own
        assert asyncio.run(actor.confirmation("Yes.", 0, "")) is None
        # a yes without the id is a new request: nothing runs
        text, last = ask("Yes.")
        assert "confirmation" not in last and Recorder.requests == []
        # a wrong id is no confirmation either
        text, _ = ask("Yes.", confirmation="0" * 32)
        assert Recorder.requests == []
        # the yes with the id it came with runs the action, once
        text, _ = ask("Yes.", confirmation=confirmation)
        assert text == "The front door is unlocked."
        assert len(Recorder.requests) == 1
        text, _ = ask("Yes.", confirmation=confirmation)  # answered: the id is spent
        assert len(Recorder.requests) == 1
    finally:
        thread.close()


def test_a_confirmation_id_outside_device_mode_is_a_400(tmp_path: Path) -> None:
    engine = FakeEngine(["Hello."])
    thread, _ = served(engine, Actor([]))
    try:
        body = {"messages": [{"role": "user", "content": "yes"}], "confirmation": "abc"}
        reply = httpx.post(f"{thread.url}/v1/chat/completions", json=body, timeout=10)
        assert reply.status_code == 400
        assert reply.json()["error"]["param"] == "confirmation"
    finally:
        thread.close()


@pytest.mark.parametrize(
    ("tools", "fragment"),
    [
        ([{**TOOL, "function": {"name": "f", "parameters": {"type": "string"}}}], '"object"'),
        ([TOOL, TOOL], "a name of its own"),
    ],
    ids=["not-an-object", "same-name"],
)
def test_tools_that_cannot_be_called_are_a_400(
    tools: list[dict[str, Any]], fragment: str, tmp_path: Path
) -> None:
    """Both were an empty 200 before."""
    thread, _ = served(FakeEngine(["Hi."]), Actor([]))
    try:
        body = {"messages": [{"role": "user", "content": "hi"}], "tools": tools}
        reply = httpx.post(f"{thread.url}/v1/chat/completions", json=body, timeout=10)
        assert reply.status_code == 400 and fragment in reply.json()["error"]["message"]
        assert reply.json()["error"]["param"].startswith("tools")
    finally:
        thread.close()
