"""The model file is what was installed (size and sha256 against the manifest, hashed only
when the file changed), and the canary's judges: pure, list in, verdict out."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import pytest

from assistant.errors import ModelError
from assistant.llm.canary import degenerate_answer, judge_logits
from assistant.models.integrity import check_model_file
from assistant.models.store import ModelStore


def installed(tmp_path: Path, data: bytes) -> tuple[ModelStore, Path]:
    store = ModelStore(tmp_path)
    path = tmp_path / "model.gguf"
    path.write_bytes(data)
    store.save(
        {
            "roles": {"llm": "tiny"},
            "models": {
                "tiny": {
                    "role": "llm",
                    "files": [
                        {
                            "path": "model.gguf",
                            "sha256": hashlib.sha256(data).hexdigest(),
                            "size": len(data),
                        }
                    ],
                }
            },
        }
    )
    return store, path


def test_an_installed_file_is_hashed_once_then_trusted_by_its_stamp(tmp_path: Path) -> None:
    store, path = installed(tmp_path, b"GGUF" + b"x" * 1000)
    first = check_model_file(path, store)
    assert first.name == "tiny" and first.hashed_s > 0
    assert first.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    again = check_model_file(path, store)
    assert again.sha256 == first.sha256 and again.hashed_s == 0.0  # one stat, no hash


def test_a_file_changed_in_place_is_hashed_again_and_refused(tmp_path: Path) -> None:
    store, path = installed(tmp_path, b"GGUF" + b"x" * 1000)
    check_model_file(path, store)
    with path.open("r+b") as fh:  # same size, one byte flipped: the stamp (mtime) changes
        fh.seek(500)
        fh.write(b"y")
    os.utime(path, ns=(1, 1))
    with pytest.raises(ModelError) as caught:
        check_model_file(path, store)
    message = str(caught.value)
    assert message.startswith(f"{path}: sha256 ")
    assert "recorded when tiny was installed" in message
    assert message.endswith("run `qwen-assistant models fetch --force tiny`")


def test_a_file_of_the_wrong_size_is_refused_without_hashing(tmp_path: Path) -> None:
    store, path = installed(tmp_path, b"GGUF" + b"x" * 1000)
    with path.open("ab") as fh:
        fh.write(b"\0" * 4096)
    with pytest.raises(ModelError, match=r"5,100 bytes, but tiny was installed with 1,004"):
        check_model_file(path, store)


def test_a_file_the_manifest_does_not_know_is_hashed_once_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = ModelStore(tmp_path / "models")
    other = tmp_path / "mine.gguf"
    other.write_bytes(b"GGUF mine")
    digest = hashlib.sha256(b"GGUF mine").hexdigest()
    with caplog.at_level(logging.INFO):
        first = check_model_file(other, store)
        second = check_model_file(other, store)
    assert first.sha256 == second.sha256 == digest and first.name == ""
    assert first.hashed_s > 0 and second.hashed_s == 0.0
    assert caplog.text.count(f"is not in the manifest; sha256 {digest}") == 2


def test_a_models_directory_that_cannot_be_written_still_checks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, path = installed(tmp_path, b"GGUF" + b"z" * 100)

    def read_only(_data: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(store, "save", read_only)
    assert check_model_file(path, store).hashed_s > 0
    assert check_model_file(path, store).hashed_s > 0  # nothing stamped: hashed again


@pytest.mark.parametrize(
    ("logits", "problem"),
    [
        ([0.1, 2.5, -1.0], ""),
        ([0.0, 0.0, 0.0], "flat logits (every token equally likely)"),
        ([1.0, float("nan"), 0.0], "non-finite logits (NaN or infinity)"),
        ([1.0, float("inf"), 0.0], "non-finite logits (NaN or infinity)"),
    ],
)
def test_the_canary_judges_logits(logits: list[float], problem: str) -> None:
    assert judge_logits(np.array(logits, dtype=np.float32)) == problem


def test_the_canary_judges_the_answer() -> None:
    assert degenerate_answer([0, 0, 0, 0]) == "the answer is one token repeated 4 times"
    assert degenerate_answer([19, 198, 19]) == ""  # "4", a newline, "4": short and varied
    assert degenerate_answer([7]) == ""  # one token then end of answer
