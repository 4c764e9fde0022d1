"""The device acting on a request: configured actions offered as tools, a call checked, run
and answered honestly.

Qwen2.5-0.5B calls a tool for almost any request that sounds like a command, so a call is
run only when it is *grounded* in what was asked: each enum argument (a room, a direction)
must be named in the request, and the request must share a word with the action's name,
description or keywords. An argument outside its enum is said to be unknown, not forced onto
a listed value (the grammar leaves local actions' enums to the validator for that reason).
With no actions at all, the system prompt tells the model it cannot act, so it says so
instead of pretending. Nothing here claims an action ran unless :class:`Runner` ran it.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..config import Action
from ..llm.conversation import ChatML, Prompt, stateless_prompt
from ..llm.grammar import Constraint
from ..toolcall import (
    NO_ACTIONS,
    ToolCall,
    ToolError,
    call_schema,
    parse_call,
    render_call,
    render_responses,
    tools_prompt,
)
from .claims import CANNOT, ClaimGuard, Claims, claims_action, honest_words
from .grounding import grounded, names_an_action
from .runner import Outcome, Runner

if TYPE_CHECKING:
    from ..config import LLM

__all__ = [
    "CANNOT",
    "Actor",
    "ClaimGuard",
    "Claims",
    "Decision",
    "claims_action",
    "grounded",
    "honest_words",
]

log = logging.getLogger(__name__)

#: a "Shall I …?" waits this long for its yes
CONFIRM_WINDOW_S = 60.0
#: appended after the tools section of a voice or CLI turn
ONLY_THESE = (
    "These functions are the only things you can do. If the user asks for something that "
    "no function does, do not call a function: say that you can't do that."
)
_YES = re.compile(r"^(yes|yeah|yep|sure|ok|okay|do it|go ahead|please do)\b", re.I)
_NO = re.compile(r"^(no|nope|don't|do not|cancel|stop|never mind)\b", re.I)


@dataclass(frozen=True)
class Decision:
    """What became of a model's tool call."""

    said: str
    action: str = ""
    arguments: dict[str, Any] | None = None
    #: "ran", "failed", "refused" (invalid, unknown or ungrounded), "confirm", "declined"
    outcome: str = "refused"

    #: the request this answers (for a yes: the request that was asked about)
    request: str = ""
    #: the call was not grounded and the request names no action at all: it may be a plain
    #: question, answered without the actions
    ungrounded: bool = False

    def history(self, request: str) -> list[tuple[str, str]]:
        """This turn for the conversation history, in Qwen's tool format: the request, the
        call, its result, what was said. A history of bare "Done." answers would teach the
        model to say "Done." without calling anything. A "Shall I …?" and a no are left
        out (a yes is remembered as the request it confirmed, run)."""
        request = self.request or request
        if self.outcome in ("confirm", "declined"):
            return []
        if not self.action or self.arguments is None:
            return [("user", request), ("assistant", self.said)]
        call = render_call(ToolCall(self.action, self.arguments))
        result = json.dumps({"outcome": self.outcome, "said": self.said}, ensure_ascii=False)
        return [
            ("user", request),
            ("assistant", call),
            ("user", render_responses([result])),
            ("assistant", self.said),
        ]


@dataclass
class _Pending:
    action: Action
    arguments: dict[str, Any]
    asked_at: float
    request: str


class Actor:
    """The configured actions for voice, ``ask`` and ``chat`` turns (and the API if allowed)."""

    def __init__(
        self,
        actions: Iterable[Action] = (),
        *,
        runner: Runner | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.runner = runner or Runner(clock=clock)
        self.clock = clock
        self.update(actions)

    def update(self, actions: Iterable[Action]) -> None:
        """A reloaded [[actions]] list: applies from the next turn (a pending yes is dropped).

        The tools and their grammar are built here, once per list, not once per turn."""
        self.actions: tuple[Action, ...] = tuple(actions)
        self._tools = [a.tool for a in self.actions]
        # enums are left to the validator: an unknown room is said to be unknown
        schema = call_schema(self._tools, enums=False) if self._tools else None
        self._constraint = Constraint(schema, "tool_call") if schema is not None else None
        #: the "Shall I …?" awaiting a yes or no, per conversation ("" = the voice's)
        self._pending: dict[str, _Pending] = {}

    def forget(self, key: str) -> None:
        """Conversation ``key`` ended: drop its pending "Shall I …?"."""
        self._pending.pop(key, None)

    def asks(self, key: str) -> bool:
        """Conversation ``key`` has a "Shall I …?" awaiting its yes or no."""
        return key in self._pending

    @property
    def waiting(self) -> bool:
        """A "Shall I …?" awaits its yes or no (in any conversation)."""
        return bool(self._pending)

    def system_prompt(self, base: str) -> str:
        if not self.actions:
            return f"{base.rstrip()} {NO_ACTIONS}".strip()
        return tools_prompt(base, self._tools, ONLY_THESE)

    def prompt(
        self,
        fmt: ChatML,
        llm: LLM,
        history: Sequence[tuple[str, str]],
        request: str,
        *,
        offer: bool = True,
    ) -> Prompt:
        """The prompt for ``request`` after ``history``, with these actions offered (``offer``
        False: none, and the model told it cannot act), trimmed to the context like any
        client-held history."""
        messages = [*history, ("user", request)]
        base = llm.system_prompt
        system = self.system_prompt(base) if offer else f"{base.rstrip()} {NO_ACTIONS}".strip()
        return stateless_prompt(fmt, messages, system, llm.n_ctx, llm.max_tokens)

    def claims(self, history: Sequence[tuple[str, str]] = ()) -> Claims:
        """What a turn after ``history`` must not claim: the word lists, and echoes of each
        action's ``say`` and of the outcomes said in ``history`` (a call's result is
        followed by what was said about it) or the actions' own verbs done in words."""
        said = [a.say for a in self.actions]
        for (role, text), (_, answer) in itertools.pairwise(history):
            if role == "user" and text.startswith("<tool_response>"):
                said.append(answer)
        verbs = {a.name.split("_")[0] for a in self.actions}
        verbs |= {a.description.split()[0] for a in self.actions if a.description.split()}
        return Claims(said, verbs)

    def constraint(self) -> Constraint | None:
        """The lazy grammar of a call to one of the actions (enums left to the validator)."""
        return self._constraint

    async def confirmation(self, text: str, turn_id: int = 0, key: str = "") -> Decision | None:
        """The answer to conversation ``key``'s pending "Shall I …?", or None when ``text``
        is a new request."""
        pending = self._pending.pop(key, None)
        if pending is None or self.clock() - pending.asked_at > CONFIRM_WINDOW_S:
            return None
        reply = text.strip()
        if _YES.match(reply):
            ran = await self._run(pending.action, pending.arguments, turn_id)
            return dataclasses.replace(ran, request=pending.request)
        if _NO.match(reply):
            log.info("turn %d action %s: not confirmed", turn_id, pending.action.name)
            name, args = pending.action.name, pending.arguments
            return Decision("OK, I won't.", name, args, "declined", pending.request)
        return None

    async def decide(
        self, call_json: str, finished: bool, request: str, turn_id: int = 0, key: str = ""
    ) -> Decision | None:
        """What came of an answer's call: None when the model called nothing, "I can't" for
        a call a cap cut short (``finished`` False), else :meth:`act`."""
        if not call_json:
            return None
        if not finished:
            return Decision(CANNOT)
        return await self.act(call_json, request, turn_id, key)

    async def act(self, call_json: str, request: str, turn_id: int = 0, key: str = "") -> Decision:
        """Check the model's call against the actions and ``request``; run it if it fits
        (one that needs a yes waits for it in conversation ``key``)."""
        by_name = {a.name: a for a in self.actions}
        try:
            call = parse_call(call_json, self._tools)
        except ToolError as exc:
            log.info("turn %d: tool call refused: %s: %s", turn_id, exc, call_json[:200])
            return Decision(f"{CANNOT} {_speakable(str(exc))}", outcome="refused")
        action = by_name[call.name]
        why = grounded(action, call.arguments, request, self.actions)
        if why:
            log.info(
                "turn %d: the model chose %s(%s) but %s: not run",
                turn_id,
                call.name,
                call.arguments_json(),
                why,
                extra={"TURN_ID": turn_id},
            )
            plain = not names_an_action(request, self.actions)  # a question, perhaps
            return Decision(CANNOT, call.name, call.arguments, "refused", ungrounded=plain)
        if action.confirm:
            self._pending[key] = _Pending(action, call.arguments, self.clock(), request)
            return Decision(_question(action, call.arguments), call.name, call.arguments, "confirm")
        return await self._run(action, call.arguments, turn_id)

    async def _run(self, action: Action, arguments: dict[str, Any], turn_id: int) -> Decision:
        outcome: Outcome = await self.runner.run(action, arguments, turn_id)
        return Decision(outcome.said, action.name, arguments, "ran" if outcome.ok else "failed")


def _speakable(problem: str) -> str:
    """'light_on: arguments.room 'garage' is not one of …' → "room 'garage' is not one of …"."""
    text = re.sub(r"^[\w-]+: ", "", problem).replace("arguments.", "")
    return text[:1].upper() + text[1:] + ("" if text.endswith(".") else ".")


def _question(action: Action, arguments: dict[str, Any]) -> str:
    what = action.description.rstrip(".")
    what = what[:1].lower() + what[1:]
    details = ", ".join(
        f"{k} {json.dumps(v) if not isinstance(v, str) else v}" for k, v in arguments.items()
    )
    return f"Shall I {what}{f' ({details})' if details else ''}?"
