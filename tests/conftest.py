"""Shared fixtures. Slow tests load the real small models `scripts/test.sh` fetches."""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from assistant.config import LLM, load_config
from assistant.llm.engine import Engine
from assistant.models.catalog import lookup

SMOLLM = "smollm2-135m-instruct"
QWEN = "qwen2.5-coder-0.5b-instruct"


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """``async def`` tests run in a fresh event loop (asyncio.run)."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    asyncio.run(pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in names}))
    return True


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's own $QWEN_ASSISTANT_CONFIG must not leak into tests, and every test
    (and every command it runs) samples the same random choices each run: the default
    config's temperature and piper's voice variation stay on, but repeatable."""
    monkeypatch.delenv("QWEN_ASSISTANT_CONFIG", raising=False)
    # $QWEN_ASSISTANT_TEST_SEED runs the suite with another seed: other voices and samples
    monkeypatch.setenv("QWEN_ASSISTANT_SEED", os.environ.get("QWEN_ASSISTANT_TEST_SEED", "1"))


def model_file(name: str) -> Path:
    root = Path(os.environ.get("QWEN_ASSISTANT_TEST_MODELS") or load_config(None).paths.models_dir)
    path = root / lookup(name).main
    if not path.exists():
        pytest.fail(
            f"{path} is missing: run `qwen-assistant models fetch {name}` (scripts/test.sh does)"
        )
    return path


@pytest.fixture(scope="session")
def smollm_path() -> Path:
    return model_file(SMOLLM)


@pytest.fixture(scope="session")
def qwen_path() -> Path:
    return model_file(QWEN)


def greedy(**changes: Any) -> LLM:
    return dataclasses.replace(LLM(temperature=0.0, max_tokens=64, seed=1), **changes)


def _loaded(path: Path) -> Iterator[Engine]:
    engine = Engine(greedy(), path)
    engine.load()
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def smollm(smollm_path: Path) -> Iterator[Engine]:
    yield from _loaded(smollm_path)


@pytest.fixture(scope="session")
def qwen(qwen_path: Path) -> Iterator[Engine]:
    yield from _loaded(qwen_path)


@pytest.fixture(scope="session")
def whisper_dir() -> Path:
    return model_file("whisper-tiny-en")  # the model's directory


@pytest.fixture(scope="session")
def voice_path() -> Path:
    return model_file("piper-joe-medium")
