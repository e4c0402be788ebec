"""Giving memory back after a large request. Decoded pages and their tensors are freed when the request ends, but
glibc keeps freed blocks in its arenas (one per thread that allocated): without `malloc_trim` a server that once
decoded a 40-megapixel page keeps its peak resident size for good."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
from collections.abc import Callable

LARGE_REQUEST_PIXELS = 4_000_000
"""Uploads read as more pixels than this (about four A4 pages at 96 dpi) trim the heap when they are done."""


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim  # glibc only; musl and macOS have none
    except (OSError, AttributeError):
        return None
    return trim


def release_memory() -> bool:
    """Collect garbage and hand free heap pages back to the OS; False where the C library cannot."""
    gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
