"""The models directory: installed files and ``manifest.json``, which says what is there.

The manifest maps each role (llm, stt, tts) to the model installed for it, so a config
that says ``model = "auto"`` follows whatever ``models fetch`` installed — the official
file on a Pi with internet, the offline mirror elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import ModelError
from .catalog import CATALOG, ModelSpec, lookup, roles

__all__ = ["Entry", "ModelStore", "file_stamp", "resolve_model", "sha256_file"]

MANIFEST = "manifest.json"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_stamp(path: Path) -> dict[str, int]:
    """What identifies this version of a file without reading it: size, mtime, inode. A file
    changed in place or replaced gets a new stamp (models/integrity.py trusts an unchanged one)."""
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ino": st.st_ino}


@dataclass(frozen=True)
class Entry:
    """One row of ``models list``."""

    name: str
    roles: tuple[str, ...]
    source: str
    path: Path
    size: int
    sha256: str
    status: str  # "ok", "missing", "size differs"


class ModelStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"roles": {}, "models": {}}
        except OSError as exc:  # e.g. another user's file: deleting it is not the fix
            raise ModelError(
                f"{self.manifest_path}: cannot be read ({exc.strerror}); run as the user the "
                "models belong to, or give this user read access to the models directory"
            ) from None
        except ValueError as exc:
            raise ModelError(
                f"{self.manifest_path}: unreadable ({exc}); delete it and run "
                "`qwen-assistant models fetch`"
            ) from None
        if not isinstance(data, dict):
            raise ModelError(
                f"{self.manifest_path}: not a manifest; delete it and run "
                "`qwen-assistant models fetch`"
            )
        data.setdefault("roles", {})
        data.setdefault("models", {})
        return data

    def save(self, data: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".manifest-")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.manifest_path)

    def record(self, spec: ModelSpec, *, role: str | None) -> None:
        data = self.load()
        data["models"][spec.name] = {
            "role": spec.role,
            "source": spec.source,
            "engine": spec.engine,
            "title": spec.title,
            "licence": spec.licence,
            "installed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "files": [self._file(f.dest, f.sha256, f.md5) for f in spec.files],
        }
        if role:
            data["roles"][role] = spec.name
        self.save(data)

    def assign(self, role: str, name: str) -> None:
        """Make the installed model ``name`` the one ``role`` uses."""
        data = self.load()
        data["roles"][role] = name
        self.save(data)

    def _file(self, rel: str, sha256: str, md5: str = "") -> dict[str, Any]:
        """A manifest row; a single file just checked against ``sha256`` (fetch does that
        before it records) is stamped as verified, so loading it need not hash it again.
        A file pinned by its md5 (and checked against it) gets its sha256 computed here, so
        the integrity check works the same for every file."""
        path = self.root / rel
        if not sha256 and path.is_file():
            sha256 = sha256_file(path)
        row: dict[str, Any] = {"path": rel, "sha256": sha256, "size": self._size(rel)}
        if md5:
            row["md5"] = md5
        if path.is_file():
            row["verified"] = file_stamp(path)
        return row

    def _size(self, rel: str) -> int:
        path = self.root / rel
        if path.is_dir():
            return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return path.stat().st_size if path.exists() else 0

    def is_installed(self, spec: ModelSpec) -> bool:
        """Recorded with these hashes and every file present at its recorded size."""
        entry = self.load()["models"].get(spec.name)
        if not entry:
            return False
        recorded = {f["path"]: f for f in entry.get("files", [])}
        for f in spec.files:
            rec = recorded.get(f.dest)
            if not rec or self._size(f.dest) != rec.get("size"):
                return False
            if (rec.get("sha256") != f.sha256) if f.sha256 else (rec.get("md5") != f.md5):
                return False
        return True

    def role_model(self, role: str) -> str | None:
        name = self.load()["roles"].get(role)
        return str(name) if name else None

    def path_for(self, role: str, language: str = "en") -> Path:
        """The installed model for ``role``, or where the official one (for
        ``speech.language``) would be."""
        name = self.role_model(role) or roles(language)[role][0]
        try:
            return self.root / lookup(name).main
        except KeyError:
            raise ModelError(
                f"{self.manifest_path}: role {role} names unknown model {name!r}; "
                "run `qwen-assistant models fetch`"
            ) from None

    def language_of(self, path: Path) -> str | None:
        """The spoken language of the catalog model installed at ``path`` (None: not one
        the catalog knows, e.g. a model of the user's own)."""
        for spec in CATALOG:
            if spec.role in ("stt", "tts") and self.root / spec.main == Path(path):
                return spec.language
        return None

    def entries(self, verify: bool = False) -> list[Entry]:
        data = self.load()
        roles: dict[str, list[str]] = {}
        for role, name in data["roles"].items():
            roles.setdefault(name, []).append(role)
        rows = []
        for name, entry in sorted(data["models"].items()):
            for f in entry.get("files", []):
                path = self.root / f["path"]
                size = self._size(f["path"])
                if not path.exists():
                    status = "missing"
                elif size != f.get("size"):
                    status = "size differs"
                elif verify and path.is_file() and sha256_file(path) != f["sha256"]:
                    status = "sha256 differs"
                else:
                    status = "ok"
                rows.append(
                    Entry(
                        name,
                        tuple(roles.get(name, [entry.get("role", "")])),
                        entry.get("source", "?"),
                        path,
                        size,
                        f["sha256"],
                        status,
                    )
                )
        return rows


def resolve_model(config: Config) -> Path:
    """The GGUF file the LLM engine loads: llm.model, or what `models fetch` installed."""
    if config.llm.model not in ("", "auto"):
        return Path(config.llm.model)
    return ModelStore(config.paths.models_dir).path_for("llm")
