"""``bench answers``: the question set, the scorer, and the bench at a small size."""

from __future__ import annotations

import json

import pytest

from assistant.bench_answers import POINTS, questions, right
from tests.test_cli import run


def test_the_set_has_150_distinct_questions_of_four_kinds() -> None:
    asked = questions()
    assert len(asked) >= 150
    assert len({q.text for q in asked}) == len(asked)
    assert {q.kind for q in asked} == {"facts", "arithmetic", "units", "yes or no"}
    assert all(q.forms and all(q.forms) for q in asked)
    assert all(q.forms in (("yes",), ("no",)) for q in asked if q.kind == "yes or no")


@pytest.mark.parametrize(
    ("answer", "forms", "expected"),
    [
        ("Spiders have eight legs.", ("8",), True),
        ("A spider has four legs.", ("8",), False),  # the wrong answer
        ("8", ("8",), True),
        ("It has 18 legs.", ("8",), False),
        ("Seven times eight is fifty-six.", ("56",), True),
        ("One thousand four hundred and forty minutes.", ("1440",), True),
        ("There are 1,000 meters in a kilometer.", ("1000",), True),
        ("About 2.54 centimeters.", ("2.54",), True),
        ("About 2 centimeters.", ("2.54",), False),
        ("The answer is 10.5.", ("10",), False),
        ("The sky is green.", ("blue",), False),  # the other one
        ("On a clear day the sky is blue.", ("blue",), True),
        ("Leonardo da Vinci painted it.", ("leonardo", "da vinci"), True),
        ("Plants take in CO2.", ("carbon dioxide", "co2"), True),
        ("No, a whale is a mammal.", ("no",), True),
        ("Yes, whales are fish.", ("no",), False),
        ("The Earth is not flat; it is round.", ("no",), True),
        ("Penguins can’t fly.", ("no",), True),
        ("A tomato is a fruit.", ("yes",), True),
        ("A tomato isn't a fruit.", ("yes",), False),
    ],
)
def test_answers_are_scored_by_their_words(
    answer: str, forms: tuple[str, ...], expected: bool
) -> None:
    assert right(answer, forms) is expected


@pytest.mark.slow
def test_bench_answers_runs_every_point_at_a_small_size() -> None:
    """docs/performance.md's `bench answers --json`, with the default config and the model
    `models fetch` installed, on 4 questions and 2 seeds."""
    result = run("bench", "answers", "--json", "--limit", "4", "--seeds", "2")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["questions"] == 4 and data["seeds"] == 2
    rows = data["points"]
    assert [(r["temperature"], r["top_p"], r["repeat_penalty"]) for r in rows] == list(POINTS)
    for row in rows:
        assert row["runs"] == (1 if row["temperature"] == 0 else 2)
        assert row["min"] <= row["right_rate"] <= row["max"]
        if row["runs"] == 1:  # one run: its misses are the rate's complement
            assert len(row["wrong"]) == round((1 - row["right_rate"]) * 4)
    assert data["configured"] == {"temperature": 0.4, "top_p": 0.5, "repeat_penalty": 1.1}
    assert data["configured_rate"] == next(r["right_rate"] for r in rows if r["top_p"] == 0.5)
    table = run("bench", "answers", "--limit", "2", "--seeds", "1")
    assert table.returncode == 0 and "best: temperature" in table.stdout
