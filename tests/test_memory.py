"""Freed C-heap pages go back to the system between voice turns (glibc's malloc_trim)."""

from __future__ import annotations

import ctypes
import ctypes.util

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
