"""The action commands README.md and docs/actions.md show, run exactly as written: the
default config (no --config, no $QWEN_ASSISTANT_CONFIG, no model paths), the models
`qwen-assistant models fetch` installed, the venv's command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from assistant.actions.actor import claims_action
from assistant.toolcall import validate
from tests.test_cli import documented_commands, run_as_documented

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parent.parent


def documented() -> list[list[str]]:
    """Every command line of docs/actions.md and of README.md's Actions section."""
    readme = (ROOT / "README.md").read_text().split("\n## Actions\n", 1)[1].split("\n## ")[0]
    return documented_commands(readme) + documented_commands((ROOT / "docs/actions.md").read_text())


def test_the_documented_action_commands_work_with_the_default_config(tmp_path: Path) -> None:
    commands = documented()
    assert [c[1] for c in commands] == ["ask", "ask", "bench"], commands
    for words in commands:
        # the bench at test size: the whole set's figures are docs/actions.md's
        sized = [*words, "--limit", "20"] if words[1] == "bench" else words
        done = run_as_documented(sized, tmp_path, timeout=1200)
        if words[1] == "ask":  # no actions by default: never a claim that it acted
            # (the default temperature is 0.7: the wording varies, the honesty must not)
            sentences = re.split(r"(?<=[.!?])\s+", done.stdout.strip())
            assert sentences and not any(claims_action(s) for s in sentences), done.stdout
        else:
            figures = json.loads(done.stdout)
            assert figures["action_requests"] == 20 and figures["actions"] >= 6
            assert figures["no_action_requests"] == 20
            assert figures["valid_json_rate"] == 1.0  # the grammar's promise
            assert figures["false_action_rate"] == 0.0  # grounding's promise
            for key in ("right_action_rate", "right_arguments_rate", "decode_ratio",
                        "first_token_s_constrained", "first_token_s_free"):  # fmt: skip
                assert figures[key] > 0, figures
            many = figures["many"]  # 15 overlapping actions, as whole turns
            assert many["actions"] == 15 and many["action_requests"] == 20
            assert many["not_ours_requests"] == 10 and many["questions"] == 10
            assert many["false_action_rate"] == 0.0, many  # a shared verb grounds nothing
            assert many["right_action_rate"] > 0 and many["plain_answered_rate"] > 0, many


def test_ask_json_schema_as_docs_cli_md_shows_it(tmp_path: Path) -> None:
    """docs/cli.md's block: write person.json, then ask for a person that fits it."""
    import subprocess

    text = (ROOT / "docs/cli.md").read_text()
    block = text.split("ask --json-schema FILE", 1)[1].split("```sh\n", 1)[1].split("```")[0]
    lines = [line.strip() for line in block.splitlines() if line.strip()]
    assert len(lines) == 2 and lines[0].startswith("echo ")
    subprocess.run(["/bin/bash", "-c", lines[0]], cwd=tmp_path, check=True)
    (words,) = documented_commands(lines[1])
    done = run_as_documented(words, tmp_path)
    person = json.loads(done.stdout)
    schema = json.loads((tmp_path / "person.json").read_text())
    assert validate(schema, person) == [], person
