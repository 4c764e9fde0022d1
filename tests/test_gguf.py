"""A model file is untrusted input: every bad shape gets one line naming the file and the fix."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from assistant.errors import EX_CONFIG, ModelError
from assistant.llm.gguf import read_gguf

FIX = "run `qwen-assistant models fetch` or point llm.model at a valid .gguf file"


def s(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def make_gguf(
    *,
    version: int = 3,
    n_floats: int = 64,
    template: str = "<|im_start|>",
    tensor_count: int | None = None,
    n_dims: int = 1,
) -> bytes:
    """A small valid GGUF: two metadata keys and one F32 tensor of ``n_floats`` values."""
    kv = [
        s("general.architecture") + struct.pack("<I", 8) + s("toy"),
        s("tokenizer.chat_template") + struct.pack("<I", 8) + s(template),
        s("toy.context_length") + struct.pack("<I", 4) + struct.pack("<I", 256),
        s("tokenizer.ggml.scores") + struct.pack("<IIQ", 9, 6, 3) + struct.pack("<3f", 0, 1, 2),
    ]
    tensor = (
        s("w")
        + struct.pack("<I", n_dims)
        + struct.pack("<Q", n_floats)
        + struct.pack("<Q", 1) * (n_dims - 1)
        + struct.pack("<IQ", 0, 0)
    )
    count = 1 if tensor_count is None else tensor_count
    header = b"GGUF" + struct.pack("<IQQ", version, count, len(kv)) + b"".join(kv) + tensor
    header += b"\0" * (-len(header) % 32)
    return header + struct.pack(f"<{n_floats}f", *range(n_floats))


def check(path: Path, detail: str) -> None:
    with pytest.raises(ModelError) as info:
        read_gguf(path)
    assert str(info.value) == f"{path}: {detail}; {FIX}"
    assert info.value.exit_code == EX_CONFIG
    assert "\n" not in str(info.value)


def test_valid_file_reads_metadata(tmp_path: Path) -> None:
    path = tmp_path / "toy.gguf"
    path.write_bytes(make_gguf())
    info = read_gguf(path)
    assert (info.version, info.tensor_count, info.architecture) == (3, 1, "toy")
    assert info.context_length == 256
    assert info.chat_template == "<|im_start|>"
    assert info.metadata["tokenizer.ggml.scores"] == 3  # arrays are kept as their length


def test_missing(tmp_path: Path) -> None:
    check(tmp_path / "none.gguf", "no such model file")


def test_zero_length(tmp_path: Path) -> None:
    (tmp_path / "empty.gguf").touch()
    check(tmp_path / "empty.gguf", "is empty (0 bytes)")


def test_directory(tmp_path: Path) -> None:
    check(tmp_path, "is a directory, not a GGUF model file")


def test_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "random.gguf"
    path.write_bytes(os.urandom(4096).replace(b"GGUF", b"XXXX"))
    check(path, "is not a GGUF model file (no GGUF magic)")


def test_not_gguf(tmp_path: Path) -> None:
    path = tmp_path / "model.gguf"
    path.write_text("<html>404 Not Found</html>" * 10)
    check(path, "is not a GGUF model file (no GGUF magic)")


def test_truncated_inside_the_tensor_data(tmp_path: Path) -> None:
    data = make_gguf()
    path = tmp_path / "cut.gguf"
    path.write_bytes(data[:-1])
    check(path, f"is truncated ({len(data) - 1:,} bytes; its tensors need at least {len(data):,})")


def test_truncated_inside_the_header(tmp_path: Path) -> None:
    path = tmp_path / "cut.gguf"
    path.write_bytes(make_gguf()[:40])
    check(path, "is truncated (40 bytes end inside the header)")


def test_unsupported_version(tmp_path: Path) -> None:
    path = tmp_path / "v1.gguf"
    path.write_bytes(make_gguf(version=1))
    check(path, "is GGUF version 1; only versions 2 and 3 are supported")


def test_absurd_counts_are_refused_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.gguf"
    path.write_bytes(make_gguf(tensor_count=2**40))
    check(path, f"is corrupt (claims {2**40} tensors and 4 metadata keys)")


def test_bad_dimension_count(tmp_path: Path) -> None:
    path = tmp_path / "dims.gguf"
    path.write_bytes(make_gguf(n_dims=9))
    check(path, "is corrupt (a tensor with 9 dimensions)")


def test_no_tensors(tmp_path: Path) -> None:
    path = tmp_path / "none.gguf"
    path.write_bytes(make_gguf(tensor_count=0))
    check(path, "holds no tensors, so it is not a model")


def test_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "locked.gguf"
    path.write_bytes(make_gguf())

    def denied(self: Path, *args: object, **kw: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "open", denied)  # root reads any file, so deny it here
    with pytest.raises(ModelError) as info:
        read_gguf(path)
    assert str(info.value) == f"{path}: permission denied; make it readable by this user"


@pytest.mark.slow
def test_real_models_pass_and_one_byte_less_fails(
    smollm_path: Path, qwen_path: Path, tmp_path: Path
) -> None:
    assert read_gguf(qwen_path).architecture == "qwen2"
    info = read_gguf(smollm_path)
    assert info.architecture == "llama"
    assert "<|im_start|>" in info.chat_template
    cut = tmp_path / "cut.gguf"
    with smollm_path.open("rb") as src, cut.open("wb") as dst:
        dst.write(src.read(info.file_size - 1))
    with pytest.raises(ModelError, match="is truncated"):
        read_gguf(cut)
