"""Tried as a new user would, with the real stand-in model: docs/actions.md's robot config in
one `chat` conversation (greedy). What the fault-injection pass found — "It's on the screen."
copied from an earlier run with nothing sent, "Moving backward 2 meters." with no second
command, an invented text put on the screen, "Sorry" for a plain question — never happens:
every claim in the answers is backed by a run the robot saw."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from assistant.actions.grounding import FREE_TEXT_SHARE
from tests.test_cli import run

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parent.parent

REQUESTS = [
    "Show hello on the screen.",
    "Show goodbye on the screen.",
    "Put the opening hours, 9 to 5, on the display.",
    "Move forward 2 meters.",
    "Now go back the same distance.",
    "How far away is the moon?",
]


def robot_config(tmp_path: Path, qwen: Path) -> tuple[Path, Path]:
    """docs/actions.md's robot block, its program a script that logs each call."""
    log = tmp_path / "robot.log"
    robot = tmp_path / "robot"
    robot.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    robot.chmod(robot.stat().st_mode | stat.S_IXUSR)
    text = (ROOT / "docs/actions.md").read_text().split("## A robot\n", 1)[1]
    block = text.split("```toml\n", 1)[1].split("```", 1)[0]
    block = block.replace("/usr/local/bin/robot", str(robot))
    config = tmp_path / "config.toml"
    config.write_text(
        f'[llm]\nmodel = "{qwen}"\ntemperature = 0.0\nmax_tokens = 96\n'
        f'[thermal]\nsensor_path = ""\n[voice]\nenabled = false\n{block}'
    )
    return config, log


def test_a_robot_conversation_claims_only_what_ran(tmp_path: Path, qwen_path: Path) -> None:
    config, log = robot_config(tmp_path, qwen_path)
    done = run("chat", "--config", str(config), stdin="\n".join(REQUESTS) + "\n", timeout=600)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    ran = log.read_text().splitlines() if log.exists() else []
    out = done.stdout
    screens = [r for r in ran if r.startswith("screen")]
    moves = [r for r in ran if r.startswith("move")]
    assert screens, (out, ran)  # the first request ran: the path is exercised
    # a claim in the answers is at most as frequent as the runs that back it
    assert out.count("on the screen") <= len(screens), (out, ran)
    assert len(re.findall(r"(?i)\bmoving\b", out)) <= len(moves), (out, ran)
    # what went on the screen was said in a request, never invented
    said = set(re.findall(r"[a-z0-9]+", " ".join(REQUESTS).lower()))
    for line in screens:
        words = set(re.findall(r"[a-z0-9]+", line.lower().split("--", 1)[-1]))
        assert len(words & said) >= FREE_TEXT_SHARE * len(words), (line, out)
    # the plain question is answered, not refused
    assert not out.rstrip().endswith("Sorry, I can't do that."), out
    print(f"\nran: {ran}\nanswers:\n{out}")
