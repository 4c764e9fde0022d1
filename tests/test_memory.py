"""Freed C-heap pages go back to the system between voice turns (glibc's malloc_trim)."""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.memory import trim


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
