"""Memory the service does not need goes back to the system: freed C-heap pages between
voice turns (glibc's malloc_trim), few heaps, and the model file's pages no answer reads."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import mmap
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.llm.engine import Engine
from assistant.memory import ARENAS, release_mapped, trim

#: a fresh process: the CLI's entry (or not), then threads that each allocate; prints how
#: many heaps glibc has (malloc_info's <heap nr=...> elements)
HEAPS = """
import contextlib, ctypes, ctypes.util, sys, tempfile, threading
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.fopen.restype = libc.malloc.restype = ctypes.c_void_p
libc.fclose.argtypes = libc.free.argtypes = [ctypes.c_void_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
if sys.argv[1] == "cli":
    from assistant.cli import main
    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(None):
        main(["--version"])
together = threading.Barrier(6)  # all alive at once: none hands its heap on
def allocate():
    libc.free(libc.malloc(64))
    together.wait()
threads = [threading.Thread(target=allocate) for _ in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
with tempfile.NamedTemporaryFile("r") as out:
    fp = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, fp)
    libc.fclose(fp)
    print(out.read().count("<heap nr="))
"""


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        line = next(x for x in status if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_trim_gives_back_pages_glibc_keeps_after_free() -> None:
    """What piper's and whisper's threads leave: blocks freed under one still in use, so
    glibc cannot shrink its heap from the top by itself."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    size = 64 * 1024  # under glibc's mmap threshold: from the heap
    blocks = [libc.malloc(size) for _ in range(1600)]  # 100 MB
    for block in blocks:
        ctypes.memset(block, 1, size)  # touched: resident
    keep = libc.malloc(size)  # in use above them all
    for block in blocks:
        libc.free(block)
    try:
        held = rss_mb()
        assert trim()
        assert rss_mb() < held - 50, (held, rss_mb())
    finally:
        libc.free(keep)


def heaps(how: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    run = subprocess.run([sys.executable, "-c", HEAPS, how], capture_output=True, text=True,
                         env=env, check=True)  # fmt: skip
    return int(run.stdout)


def test_the_cli_keeps_glibc_to_its_few_heaps_whatever_the_threads() -> None:
    """Six threads alive together that allocate get a heap each (glibc's default: up to 8
    a core); after the CLI's entry they share ARENAS."""
    assert heaps("bare") == 7
    assert heaps("cli") == ARENAS


def mapped_mb(path: Path) -> float:
    """This process's resident pages of its mappings of ``path``, in MB."""
    kb, ours = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and not fields[0].endswith(":"):
            ours = len(fields) == 6 and fields[5] == str(path.resolve())
        elif ours and fields[0] == "Rss:":
            kb += int(fields[1])
    return kb / 1024


def test_release_mapped_drops_a_files_pages_and_reading_brings_them_back(
    tmp_path: Path,
) -> None:
    path = tmp_path / "weights.bin"
    data = os.urandom(1 << 20) * 32
    path.write_bytes(data)
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as m:
        assert m[:] == data  # every page read: resident
        assert mapped_mb(path) > 31
        assert release_mapped(path) == len(data)
        assert mapped_mb(path) < 1
        assert m[5 << 20 : 6 << 20] == data[5 << 20 : 6 << 20]  # from the page cache
        assert 0.9 < mapped_mb(path) < 4  # (and the pages the kernel maps around a fault)
    assert release_mapped(path) == 0  # nothing maps it now


@pytest.mark.slow
def test_the_loaded_model_keeps_only_the_pages_its_answers_read(qwen: Engine) -> None:
    """The stand-in's GGUF is 463 MB mapped; llama.cpp copies its Q4_K weights into a
    repacked buffer and its metadata into its own structures, and an answer reads only the
    embedding rows of its tokens: after the load and an answer, much of the file is not
    the process's (351 MB of 463 in docs/performance.md's probe)."""
    assert "Paris" in "".join(qwen.new_chat().ask("What is the capital of France?"))
    size = qwen.model_path.stat().st_size / 2**20
    assert mapped_mb(qwen.model_path) < 0.85 * size


@pytest.mark.slow
def test_the_voice_soak_of_docs_performance_md_at_two_turns(
    qwen_path: Path, whisper_dir: Path, voice_path: Path
) -> None:
    """`scripts/soak-voice.py` as docs/performance.md runs it (100 turns there), at the
    smallest size: the service hears both questions, answers them, and the curve and the
    peak are the service's."""
    env = {k: v for k, v in os.environ.items() if k != "QWEN_ASSISTANT_CONFIG"}
    root = Path(__file__).parent.parent
    done = subprocess.run(
        [sys.executable, "scripts/soak-voice.py", "2", "--json"], cwd=root, env=env,
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    result = json.loads(done.stdout)
    assert result["turns_answered"] == result["turns_said"] == 2
    (block,) = result["rss_per_10_turns_mb"]  # the one block, shorter than ten turns
    assert 300 < block <= result["peak_rss_mb"] < 4000  # the models are loaded in it
