"""Reusing a slot's cells after a conversation's oldest turns were left out (the context
shift): the plan is pure; the real llama.cpp shift is tested in test_engine.py."""

from __future__ import annotations

from assistant.llm.context import MIN_SHIFT, Reuse, plan_reuse

SYSTEM = list(range(1000, 1040))  # the system prompt's tokens
HEADER = [7, 8]  # every turn starts with the same two tokens (ChatML's "<|im_start|>user")


def turn(n: int, length: int = 40) -> list[int]:
    return HEADER + [n * 100 + i for i in range(length)]


def test_a_trimmed_history_reuses_the_turns_after_the_left_out_ones() -> None:
    cached = SYSTEM + turn(1) + turn(2) + turn(3) + turn(4)  # what the slot's cells hold
    trimmed = SYSTEM + turn(3) + turn(4) + turn(5)  # turns 1 and 2 were left out
    plan = plan_reuse(cached, trimmed)
    at = len(SYSTEM) + len(HEADER)  # the header is common to turn 1 and turn 3
    assert plan == Reuse(at, 2 * len(turn(1)), len(SYSTEM) + 2 * len(turn(3)))  # turns 3, 4
    moved = cached[: plan.at] + cached[plan.at + plan.cut :]  # the cells after the shift
    assert moved[: plan.keep] == trimmed[: plan.keep]


def test_no_shift_where_it_would_not_pay_or_could_move_shared_cells() -> None:
    cached = SYSTEM + turn(1) + turn(2)
    assert plan_reuse(cached, cached + turn(3)) == Reuse(len(cached), 0, len(cached))  # a follow-up
    other = SYSTEM + turn(9)  # another conversation: nothing after the system prompt matches
    assert plan_reuse(cached, other).cut == 0
    short = SYSTEM + turn(2, length=MIN_SHIFT - 10)  # a run too short to be worth a shift
    assert plan_reuse(SYSTEM + turn(1) + short[len(SYSTEM) :], short + turn(3)).cut == 0
    trimmed = SYSTEM + turn(2) + turn(3)
    assert plan_reuse(cached, trimmed).cut > 0
    assert plan_reuse(cached, trimmed, shift=False).cut == 0  # a model llama.cpp cannot shift
    # the cells before `fixed` may be sequence 0's, shared: nothing is cut before them
    assert plan_reuse(cached, trimmed, fixed=len(SYSTEM) + 10).cut == 0
