"""Freed memory back to the system, between the voice's steps.

Piper (onnxruntime, its arena shrunk after each run) and whisper (ctranslate2) allocate
their buffers with the C library's ``malloc`` on their own threads and free them after each
call; glibc keeps the freed pages in its heaps for the next allocation, so the process stays
as big as its biggest moment. :func:`trim` (glibc's ``malloc_trim(0)``) gives the free pages
back: a probe that loaded the three models and used each once went from 941 to 869 MB, in
6-7 ms. It is called after each chunk the mouth synthesises (once its player has it), as a
voice answer starts (what the recognizer freed, on a worker thread) and once it has been spoken.
The price: the next call touches fresh pages (whisper's next transcription about 9 ms
slower, piper's sentences about 7 %; probes in docs/performance.md). Elsewhere (musl, macOS)
it does nothing.

:func:`limit_arenas` caps glibc's heaps (arenas) at :data:`ARENAS` for the whole process,
before any thread allocates: by default each new thread that allocates gets its own (up to
8 per core), and memory one thread freed (whisper's, on the recognizer's thread) is kept
for that thread rather than reused by another (piper's, on the mouth's). Measured
(docs/performance.md): a seeded 30-turn voice soak's peak 1104.5 → 1069.6 MB, ``bench
voice``'s 1082-1088 → 1048-1055 MB with its first audio within the runs' spread; one heap
was no smaller and slower to the first audio.

:func:`release_mapped` drops this process's pages of a mapped file (the GGUF that llama.cpp
maps) once the model is loaded: the pages an answer reads come back from the page cache at
the next decode (the canary's), and the ones nothing reads after the load stop counting in
the service's memory: the weights llama.cpp copied into buffers of its own (repacked for
the CPU's kernels), the file's metadata and the embedding rows of tokens never seen. The
stand-in model's mapping went from 463 to 351 MB after an answer and a long prompt (a
probe; its 28 MB of Q4_K weights are repacked, its 89 MB embedding table read row by row).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from pathlib import Path
from typing import Any

__all__ = ["ARENAS", "limit_arenas", "release_mapped", "trim"]

#: the most glibc arenas (heaps) the process keeps: :func:`limit_arenas`
ARENAS = 2
#: glibc's ``mallopt`` parameter for the most arenas (malloc.h)
_M_ARENA_MAX = -8
#: Linux's madvise advice that drops a range's pages from the process (a file mapping's
#: come back from the page cache when read again)
_MADV_DONTNEED = 4


@functools.cache
def _libc(symbol: str) -> Any:
    """glibc's ``symbol``, or None (no glibc)."""
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), symbol) if name else None
    except (OSError, AttributeError):  # no glibc
        return None


def limit_arenas(arenas: int = ARENAS) -> bool:
    """At most ``arenas`` C heaps from now on (call it before threads start; an explicit
    ``$MALLOC_ARENA_MAX`` wins); False where there is no glibc."""
    mallopt = _libc("mallopt")
    if mallopt is None or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    return bool(mallopt(_M_ARENA_MAX, arenas))


def trim() -> bool:
    """Give the C heaps' free pages back to the system; False where there is no glibc."""
    malloc_trim = _libc("malloc_trim")
    if malloc_trim is None:
        return False
    malloc_trim(0)
    return True


def _spans(path: Path) -> list[tuple[int, int]]:
    """The address ranges of this process's mappings of ``path``."""
    name = str(path.resolve())
    spans = []
    with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
        for line in maps:
            fields = line.split(maxsplit=5)
            if len(fields) == 6 and fields[5].rstrip("\n") == name:
                begin, end = (int(x, 16) for x in fields[0].split("-"))
                spans.append((begin, end))
    return spans


def release_mapped(path: str | Path) -> int:
    """Drop this process's pages of its mappings of ``path`` (they stay in the page cache,
    and come back when read); the bytes of address space advised. 0 where nothing maps it,
    where there is no /proc (not Linux) or where the pages are locked (``mlock``)."""
    madvise = _libc("madvise")
    if madvise is None:
        return 0
    try:
        spans = _spans(Path(path))
    except OSError:
        return 0
    done = 0
    for begin, end in spans:
        if madvise(ctypes.c_void_p(begin), ctypes.c_size_t(end - begin), _MADV_DONTNEED) == 0:
            done += end - begin
    return done
