"""Giving freed memory back to the system: the only module that calls into the C library.

glibc's malloc keeps the memory a program frees for its next allocations. The imports at
start leave several megabytes of it (pydantic builds and drops its schemas, onnxruntime its
graph), and every conversation about 4 MB more (reply audio, TLS and JSON buffers) that the
speaker then holds all day while it only listens for the wake word. ``malloc_trim(0)``
returns those free pages; the next conversation takes what it needs again. On a C library
without it (musl) this does nothing.
"""

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)


def _malloc_trim() -> "ctypes._NamedFuncPointer | None":
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # no such library, or no malloc_trim in it
        return None


_TRIM = _malloc_trim()


def give_back_free_memory() -> None:
    """Return the pages malloc holds free to the system (a few ms; call it when idle)."""
    if _TRIM is not None:
        _TRIM(0)
