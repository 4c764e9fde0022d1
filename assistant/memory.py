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
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any

__all__ = ["trim"]


@functools.cache
def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # no glibc
        return None


def trim() -> bool:
    """Give the C heaps' free pages back to the system; False where there is no glibc."""
    malloc_trim = _malloc_trim()
    if malloc_trim is None:
        return False
    malloc_trim(0)
    return True
