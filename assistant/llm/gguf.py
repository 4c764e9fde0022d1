"""Check a GGUF file before llama.cpp parses it.

llama.cpp's GGUF parser has had heap overflows (CVE-2025-53630, CVE-2026-27940,
CVE-2026-33298) and treats a truncated file inconsistently, so a model file is untrusted
input: this module reads the header with bounds on every count and length, checks that
every tensor's data lies inside the file, and reports the first problem as a
:class:`~assistant.errors.ModelError` that names the file and the fix.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ModelError

__all__ = ["GGUFInfo", "read_gguf"]

FIX = "run `qwen-assistant models fetch` or point llm.model at a valid .gguf file"
_MAX_STRING = 16 * 1024 * 1024
_MAX_COUNT = 1 << 26
_KEEP_STRING = 64 * 1024
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
# ggml type id -> (elements per block, bytes per block), from ggml.h / ggml.c type_traits
_GGML_TYPES = {
    0: (1, 4),
    1: (1, 2),
    2: (32, 18),
    3: (32, 20),
    6: (32, 22),
    7: (32, 24),
    8: (32, 34),
    9: (32, 36),
    10: (256, 84),
    11: (256, 110),
    12: (256, 144),
    13: (256, 176),
    14: (256, 210),
    15: (256, 292),
    16: (256, 66),
    17: (256, 74),
    18: (256, 98),
    19: (256, 50),
    20: (32, 18),
    21: (256, 110),
    22: (256, 82),
    23: (256, 136),
    24: (1, 1),
    25: (1, 2),
    26: (1, 4),
    27: (1, 8),
    28: (1, 8),
    29: (256, 56),
    30: (1, 2),
    34: (256, 54),
    35: (256, 66),
    39: (32, 17),
}


@dataclass(frozen=True)
class GGUFInfo:
    path: Path
    version: int
    file_size: int
    tensor_count: int
    #: scalar and short string metadata; arrays are kept as their length
    metadata: dict[str, Any] = field(repr=False)

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", "?"))

    @property
    def name(self) -> str:
        return str(self.metadata.get("general.name", self.path.stem))

    @property
    def chat_template(self) -> str:
        return str(self.metadata.get("tokenizer.chat_template", ""))

    @property
    def context_length(self) -> int:
        return int(self.metadata.get(f"{self.architecture}.context_length", 0))


class _Truncated(Exception):
    pass


class _Reader:
    def __init__(self, buf: mmap.mmap) -> None:
        self.buf, self.pos = buf, 0

    def take(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > len(self.buf):
            raise _Truncated
        self.pos += n
        return start

    def unpack(self, fmt: str) -> Any:
        return struct.unpack_from(fmt, self.buf, self.take(struct.calcsize(fmt)))[0]

    def string(self, keep: bool = True) -> str | None:
        n = self.unpack("<Q")
        if n > _MAX_STRING:
            raise ValueError(f"a string of {n} bytes")
        start = self.take(n)
        if not keep or n > _KEEP_STRING:
            return None
        return self.buf[start : start + n].decode("utf-8", "replace")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            etype, count = self.unpack("<I"), self.unpack("<Q")
            if count > _MAX_COUNT or etype == _ARRAY:
                raise ValueError(f"an array of {count} items of type {etype}")
            if etype in _SCALARS:
                self.take(struct.calcsize(_SCALARS[etype]) * count)
            elif etype == _STRING:
                for _ in range(count):
                    self.string(keep=False)
            else:
                raise ValueError(f"an array of unknown type {etype}")
            return count
        raise ValueError(f"unknown metadata type {vtype}")


def read_gguf(path: str | Path) -> GGUFInfo:
    """Validate ``path`` as a complete GGUF v2/v3 file; raise ModelError naming it if not."""
    path = Path(path)

    def bad(what: str) -> ModelError:
        return ModelError(f"{path}: {what}; {FIX}")

    try:
        size = path.stat().st_size
        if path.is_dir():
            raise bad("is a directory, not a GGUF model file")
        if size == 0:
            raise bad("is empty (0 bytes)")
        with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse(path, size, _Reader(buf), bad)
    except ModelError:
        raise
    except FileNotFoundError:
        raise bad("no such model file") from None
    except PermissionError:
        raise ModelError(f"{path}: permission denied; make it readable by this user") from None
    except OSError as exc:
        raise bad(f"cannot read ({exc.strerror or exc})") from None


def _parse(path: Path, size: int, r: _Reader, bad: Any) -> GGUFInfo:
    try:
        if size < 24 or r.buf[:4] != b"GGUF":
            raise bad("is not a GGUF model file (no GGUF magic)")
        r.take(4)
        version = r.unpack("<I")
        if version not in (2, 3):
            raise bad(f"is GGUF version {version}; only versions 2 and 3 are supported")
        n_tensors, n_kv = r.unpack("<Q"), r.unpack("<Q")
        if n_tensors > _MAX_COUNT or n_kv > _MAX_COUNT:
            raise bad(f"is corrupt (claims {n_tensors} tensors and {n_kv} metadata keys)")
        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key = r.string() or ""
            meta[key] = r.value(r.unpack("<I"))
        alignment = int(meta.get("general.alignment", 32)) or 32
        tensors = []
        for _ in range(n_tensors):
            r.string(keep=False)
            n_dims = r.unpack("<I")
            if not 1 <= n_dims <= 4:
                raise bad(f"is corrupt (a tensor with {n_dims} dimensions)")
            dims = [r.unpack("<Q") for _ in range(n_dims)]
            tensors.append((dims, r.unpack("<I"), r.unpack("<Q")))
        data_start = -(-r.pos // alignment) * alignment
        for dims, ttype, offset in tensors:
            count = 1
            for d in dims:
                count *= d
            block, nbytes = _GGML_TYPES.get(ttype, (0, 0))
            end = data_start + offset + (count // block * nbytes if block else 0)
            if end > size:
                raise bad(f"is truncated ({size:,} bytes; its tensors need at least {end:,})")
        if n_tensors == 0:
            raise bad("holds no tensors, so it is not a model")
        return GGUFInfo(path, version, size, n_tensors, meta)
    except _Truncated:
        raise bad(f"is truncated ({size:,} bytes end inside the header)") from None
    except (ValueError, struct.error, UnicodeDecodeError) as exc:
        raise bad(f"is corrupt ({exc})") from None
