"""The claim guard judged by what ran: over tests/claims_corpus.py's adversarial histories
(outcomes copied, paraphrased, promised, acted out, calls in code fences) every claim is
caught, and no ordinary answer is cut. Both rates are printed (``pytest -s``) and are
docs/actions.md's figures."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from assistant.actions.actor import Actor, Decision
from assistant.actions.claims import CANNOT, ClaimGuard, Claims
from assistant.actions.runner import Outcome, Runner
from assistant.config import Action
from tests.claims_corpus import ACTIONS, ADVERSARIAL, HISTORIES, ORDINARY, Ran


def history(actor: Actor, ran: Ran) -> list[tuple[str, str]]:
    """The conversation after these actions really ran (the Actor's own history format)."""
    by_name = {a.name: a for a in actor.actions}
    out: list[tuple[str, str]] = []
    for name, arguments in ran:
        said = by_name[name].say.format(**arguments)
        out += Decision(said, name, arguments, "ran").history(f"({name} was asked for)")
    return out


def guarded(claims: Claims, answer: str, split: int = 5) -> tuple[str, bool]:
    """``answer`` streamed through a guard in pieces of ``split`` characters."""
    guard = ClaimGuard(claims)
    pieces = [answer[i : i + split] for i in range(0, len(answer), split)]
    out = "".join(guard.feed(p) for p in pieces) + guard.flush()
    return out, guard.hit


def test_every_adversarial_claim_is_caught_and_no_ordinary_answer_is_cut() -> None:
    actor = Actor(ACTIONS)
    assert len(ADVERSARIAL) >= 50
    missed = [
        (ran, answer)
        for ran, answer, _kind in ADVERSARIAL
        if not guarded(actor.claims(history(actor, ran)), answer)[1]
    ]
    cut = [
        (ran, answer, out)
        for ran in HISTORIES
        for answer in ORDINARY
        if (out := guarded(actor.claims(history(actor, ran)), answer))[1] or out[0] != answer
    ]
    ordinary = len(ORDINARY) * len(HISTORIES)
    kinds: dict[str, int] = {}
    for _ran, _answer, kind in ADVERSARIAL:
        kinds[kind] = kinds.get(kind, 0) + 1
    print(
        f"\nclaims caught: {len(ADVERSARIAL) - len(missed)}/{len(ADVERSARIAL)} "
        f"({', '.join(f'{k} {n}' for k, n in kinds.items())}); ordinary answers cut: "
        f"{len(cut)}/{ordinary} ({len(ORDINARY)} answers × {len(HISTORIES)} histories)"
    )
    assert not missed, missed
    assert not cut, cut


def test_without_the_actions_known_the_copied_outcomes_pass_the_word_lists() -> None:
    """The finding: the word lists alone let "It's on the screen." and "Moving backward 2
    meters." through; the outcomes and verbs the Actor knows are what catch them."""
    bare = Claims()
    assert not bare("It's on the screen.") and not bare("Moving backward 2 meters.")
    assert not bare("Vacuuming the living room.") and not bare("On my way to the kitchen.")
    actor = Actor(ACTIONS)
    known = actor.claims()
    assert known("It's on the screen.") and known("Moving backward 2 meters.")
    assert known("Vacuuming the living room.") and known("On my way to the kitchen.")


def test_a_description_that_starts_with_no_verb_gives_no_verb() -> None:
    """ "The front door lock" must not make "I'm there to help." a claim."""
    lock = Action("front_lock", "The front door lock, locked", command=("/bin/true",))
    claims = Actor([lock]).claims()
    assert not claims("I am there to help you.") and not claims("I'm the assistant here.")
    assert claims("I'm locking the front door.")


def test_an_outcome_said_earlier_is_a_claim_even_when_no_action_says_it() -> None:
    """The history's own outcome (an action whose ``say`` ran its {output}) is known."""
    clock = Action("read_clock", "Read the clock", command=("/bin/date",), say="{output}")
    actor = Actor([clock])
    said = "It is 10:42 on Saturday morning."
    before = Decision(said, "read_clock", {}, "ran").history("What time is it?")
    assert not actor.claims()(said)
    assert actor.claims(before)(said)
    assert not actor.claims(before)("Saturday comes after Friday.")


class _Said(Runner):
    async def run(self, action: Action, arguments: Any, turn_id: int = 0) -> Outcome:
        return Outcome(True, action.say.format(**arguments))


@pytest.mark.parametrize("split", [1, 4, 1000])
def test_the_guard_cuts_a_copied_outcome_at_its_sentence(split: int) -> None:
    actor = Actor(ACTIONS, runner=_Said())
    shown = asyncio.run(
        actor.act(
            '{"name": "show_text", "arguments": {"text": "Hello"}}', "Show Hello on the screen."
        )
    )
    assert shown.outcome == "ran" and shown.said == "It's on the screen."
    claims = actor.claims(shown.history("Show Hello on the screen."))
    out, hit = guarded(claims, "Sure thing. It's on the screen. Anything else?", split)
    assert hit and out == f"Sure thing. {CANNOT}"
