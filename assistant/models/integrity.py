"""Is the model file the one that was installed? Size and sha256 against the manifest.

A file ``models fetch`` installed is checked against the size and sha256 it recorded; the
full hash runs only when the file changed since it was last verified (its size, mtime and
inode are stamped in the manifest at install and after each verification), so a normal
start costs one ``stat``. A file the manifest does not know (an explicit ``llm.model``) is
hashed once per version of the file, and its digest logged, and shown by ``status`` and
``doctor``. Damage that keeps the digest (there is none) or a file that was never right
is the canary's job (:mod:`assistant.llm.canary`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelError
from .store import ModelStore, file_stamp, sha256_file

__all__ = ["Checked", "check_model_file"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checked:
    sha256: str
    #: the manifest's name for the file ("" when it does not know it)
    name: str
    #: seconds spent hashing now (0.0 when the stamp showed it unchanged since verified)
    hashed_s: float


def _hash(path: Path) -> tuple[str, float]:
    start = time.monotonic()
    size = path.stat().st_size
    if size > 1 << 30:
        log.info("hashing %s (%.1f GB; once per version of the file)", path, size / 1e9)
    return sha256_file(path), time.monotonic() - start


def _save(store: ModelStore, data: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):  # a read-only models directory: hash again next time
        store.save(data)


def check_model_file(path: Path, store: ModelStore) -> Checked:
    """Verify ``path`` against ``store``'s manifest; :class:`ModelError` names the file and
    the fix when its size or sha256 differs from what was installed."""
    data = store.load()
    real = path.resolve()
    for name, entry in data["models"].items():
        for f in entry.get("files", []):
            if (store.root / f["path"]).resolve() == real:
                return _known(path, name, f, store, data)
    return _unknown(path, store, data)


def _known(
    path: Path, name: str, f: dict[str, Any], store: ModelStore, data: dict[str, Any]
) -> Checked:
    fix = f"the file is damaged or was replaced; run `qwen-assistant models fetch --force {name}`"
    stamp = file_stamp(path)
    if stamp["size"] != f.get("size"):
        raise ModelError(
            f"{path}: {stamp['size']:,} bytes, but {name} was installed with "
            f"{f.get('size', 0):,}; {fix}"
        )
    if f.get("verified") == stamp:
        return Checked(f["sha256"], name, 0.0)
    got, took = _hash(path)
    if got != f["sha256"]:
        raise ModelError(
            f"{path}: sha256 {got} differs from {f['sha256']} recorded when {name} was "
            f"installed; {fix}"
        )
    f["verified"] = stamp
    _save(store, data)
    return Checked(got, name, took)


def _unknown(path: Path, store: ModelStore, data: dict[str, Any]) -> Checked:
    hashes: dict[str, Any] = data.setdefault("hashes", {})
    key = str(path.resolve())
    stamp = file_stamp(path)
    seen = hashes.get(key)
    if seen and seen.get("stamp") == stamp:
        log.info("%s is not in the manifest; sha256 %s", path, seen["sha256"])
        return Checked(seen["sha256"], "", 0.0)
    got, took = _hash(path)
    log.info("%s is not in the manifest; sha256 %s (hashed in %.1f s)", path, got, took)
    hashes[key] = {"sha256": got, "stamp": stamp}
    _save(store, data)
    return Checked(got, "", took)
