"""``qwen-assistant bench answers``: how often the model answers simple questions right.

A small model's sampling settings decide whether "How many legs does a spider have?" gets
"eight" or "four". This bench asks the questions of ``data/answers.tsv`` (facts,
arithmetic, units, yes or no; each with the answers that count as right) as the voice loop
asks them (a whole turn through :class:`~assistant.turn.Turns`: the configured system
prompt, a fresh conversation per question) at several sampling points, each with several
seeds, and scores each answer by matching. Figures per point: ``right_rate`` (mean over
the seeds), its range, and per kind of question; the point that scores best, and where the
configured sampling stands.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from .config import Config
from .turn import Conversation, TurnRequest

if TYPE_CHECKING:
    from .parts import Parts

__all__ = ["KEYS", "POINTS", "Question", "bench_answers", "plan", "questions", "render", "right"]

#: (temperature, top_p, repeat_penalty)
Point = tuple[float, float, float]
KEYS = ("temperature", "top_p", "repeat_penalty")

#: greedy with and without the penalty, the
#: temperatures of the issue at the configured top_p, and a few top_p / penalty points
POINTS: tuple[Point, ...] = (
    (0.0, 1.0, 1.0),
    (0.0, 1.0, 1.1),
    (0.2, 0.9, 1.1),
    (0.4, 0.9, 1.1),
    (0.7, 0.9, 1.1),
    (0.4, 0.9, 1.0),
    (0.7, 0.9, 1.0),
    (0.4, 0.5, 1.1),
    (0.7, 0.5, 1.1),
)

#: tokens an answer may take here: one to three spoken sentences fit in far fewer
MAX_TOKENS = 96


@dataclass(frozen=True)
class Question:
    text: str
    #: the answers that count as right, lowercase ("yes"/"no": the answer's verdict)
    forms: tuple[str, ...]
    kind: str


def questions() -> tuple[Question, ...]:
    """The questions of ``assistant/data/answers.tsv`` (``# -- kind`` lines start a kind)."""
    text = resources.files("assistant").joinpath("data/answers.tsv").read_text("utf-8")
    kind, found = "", []
    for line in text.splitlines():
        if line.startswith("# -- "):
            kind = line[5:].strip()
        elif line.strip() and not line.startswith("#"):
            question, forms = line.split("\t")
            forms_ = tuple(f.strip().lower() for f in forms.split("|"))
            found.append(Question(question, forms_, kind))
    return tuple(found)


_UNITS = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)  # fmt: skip
_TENS = ("twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_WORDS = {w: i for i, w in enumerate(_UNITS)} | {w: 20 + 10 * i for i, w in enumerate(_TENS)}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}


def _digits(text: str) -> str:
    """``text`` lowercased with number words as digits ("fifty-six" → 56, "two thousand"
    → 2000) and digit groups joined ("1,000" → 1000)."""
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text.lower()).replace("-", " ")
    out: list[str] = []
    total = current = 0
    number = False
    for word in re.findall(r"\d+(?:\.\d+)?|[a-z]+|[^\sa-z\d]", text):
        if word in _WORDS or (number and word in _SCALES):
            if word in _WORDS:
                current += _WORDS[word]
            elif word == "hundred":
                current = max(current, 1) * 100
            else:
                total, current = total + max(current, 1) * _SCALES[word], 0
            number = True
            continue
        if word == "and" and number:
            continue
        if number:
            out.append(str(total + current))
            total = current = 0
            number = False
        out.append(word)
    if number:
        out.append(str(total + current))
    return " ".join(out)


_NEGATION = re.compile(r"\b(?:not|never|cannot)\b|n't\b")


def right(answer: str, forms: Sequence[str]) -> bool:
    """Whether ``answer`` says one of ``forms`` (whole words, number words as digits)."""
    said = _digits(answer)
    if forms in (("yes",), ("no",)):
        first = re.search(r"\b(yes|no)\b", said)
        negated = _NEGATION.search(answer.lower().replace("’", "'"))
        verdict = first.group(1) if first else ("no" if negated else "yes")
        return verdict == forms[0]
    return any(re.search(rf"(?<![\w.]){re.escape(_digits(f))}(?![\w]|\.\d)", said) for f in forms)


def plan(seeds: int, points: Sequence[Point] = POINTS) -> list[tuple[Point, int]]:
    """The runs: every point with seeds 1..``seeds``, a greedy point (temperature 0) once."""
    return [(p, s) for s in range(1, seeds + 1) for p in points if p[0] > 0 or s == 1]


def bench_answers(
    config: Config,
    *,
    model: str | None = None,
    seeds: int = 3,
    limit: int = 0,
    points: Sequence[Point] = POINTS,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every question at every point, ``seeds`` times (greedy points once). Seed ``s``
    samples question ``n`` with seed ``1000 s + n``: each answer its own draws."""
    from .parts import Parts, unpaced

    asked = questions()[: limit or None]
    scores: dict[Point, list[list[bool]]] = {p: [] for p in points}
    wrong: dict[Point, list[dict[str, str]]] = {p: [] for p in points}
    with Parts(unpaced(config), model=model) as parts:
        runs = plan(seeds, points)
        answered = asyncio.run(_ask(parts, asked, runs, progress))
        for (point, seed), answers in zip(runs, answered, strict=True):
            marks = [right(a, q.forms) for a, q in zip(answers, asked, strict=True)]
            scores[point].append(marks)
            if seed == 1:
                wrong[point] = [
                    {"question": q.text, "answer": a[:160]}
                    for a, q, ok in zip(answers, asked, marks, strict=True)
                    if not ok
                ]
    return _figures(config, asked, scores, wrong, seeds)


async def _ask(
    parts: Parts,
    asked: Sequence[Question],
    runs: Sequence[tuple[Point, int]],
    progress: Callable[[str], None] | None,
) -> list[list[str]]:
    """Each run's answers to ``asked``, ``llm.parallel`` questions at a time (batched)."""
    await parts.load()
    lanes = asyncio.Semaphore(max(1, parts.config.llm.parallel))

    async def one(n: int, question: Question, overrides: dict[str, float]) -> str:
        async with lanes:
            sampling = {**overrides, "seed": overrides["seed"] + n}
            request = TurnRequest("cli", question.text, Conversation(f"q{n}"), overrides=sampling)
            turn = await parts.turns.run(request)
        if progress:
            progress(question.text[:20])
        return turn.answer

    found = []
    for (temperature, top_p, repeat_penalty), seed in runs:
        overrides = {"temperature": temperature, "top_p": top_p, "seed": 1000 * seed,
                     "repeat_penalty": repeat_penalty, "max_tokens": MAX_TOKENS}  # fmt: skip
        found.append(
            list(await asyncio.gather(*(one(n, q, overrides) for n, q in enumerate(asked))))
        )
    return found


def _figures(
    config: Config,
    asked: Sequence[Question],
    scores: dict[Point, list[list[bool]]],
    wrong: dict[Point, list[dict[str, str]]],
    seeds: int,
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    kinds = sorted({q.kind for q in asked})
    for point, runs in scores.items():
        if not runs:
            continue
        rates = [sum(marks) / len(marks) for marks in runs]
        by_kind = {
            kind: round(
                sum(m[i] for m in runs for i, q in enumerate(asked) if q.kind == kind)
                / (len(runs) * sum(q.kind == kind for q in asked)),
                3,
            )
            for kind in kinds
        }
        rows.append({
            **dict(zip(KEYS, point, strict=True)), "runs": len(runs),
            "right_rate": round(sum(rates) / len(rates), 3),
            "min": round(min(rates), 3), "max": round(max(rates), 3), "by_kind": by_kind,
            "wrong": wrong[point],
        })  # fmt: skip
    llm = config.llm
    configured = (llm.temperature, llm.top_p, llm.repeat_penalty)
    best = max(rows, key=lambda r: (r["right_rate"], -r["temperature"]))
    return {
        "questions": len(asked),
        "seeds": seeds,
        "max_tokens": MAX_TOKENS,
        "configured": dict(zip(KEYS, configured, strict=True)),
        "configured_rate": next((r["right_rate"] for r in rows if _point(r) == configured), None),
        "best": {k: best[k] for k in (*KEYS, "right_rate")},
        "points": rows,
    }


def _point(row: dict[str, Any]) -> Point:
    return (row["temperature"], row["top_p"], row["repeat_penalty"])


def render(result: dict[str, Any]) -> str:
    lines = [
        f"{result['questions']} questions, seeds 1..{result['seeds']} "
        f"(greedy once), answers of at most {result['max_tokens']} tokens",
        f"{'temp':>5} {'top_p':>5} {'rep':>4} {'right':>6} {'range':>11}  by kind",
    ]
    for row in result["points"]:
        kinds = " ".join(f"{k} {v:.2f}" for k, v in row["by_kind"].items())
        lines.append(
            f"{row['temperature']:>5} {row['top_p']:>5} {row['repeat_penalty']:>4} "
            f"{row['right_rate']:>6.3f} {row['min']:.3f}-{row['max']:.3f}  {kinds}"
        )
    best, configured = result["best"], result["configured"]
    lines.append(
        f"best: temperature {best['temperature']}, top_p {best['top_p']}, repeat_penalty "
        f"{best['repeat_penalty']} ({best['right_rate']:.3f}); configured: temperature "
        f"{configured['temperature']}, top_p {configured['top_p']}, repeat_penalty "
        f"{configured['repeat_penalty']}"
        + (f" ({result['configured_rate']:.3f})" if result["configured_rate"] is not None else "")
    )
    return "\n".join(lines)
