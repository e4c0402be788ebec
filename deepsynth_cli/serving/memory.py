"""Giving memory back. Decoded pages and their tensors are freed when the request ends, but glibc keeps freed blocks
in its arenas (one per thread that allocated): without `malloc_trim` a server that once decoded a 40-megapixel page,
or served a burst on eight threads at once, keeps its peak resident size for good. The heap is trimmed after each
large upload (`LARGE_REQUEST_PIXELS`) and whenever the server falls idle after work (`ReleaseWhenIdle`)."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import gc
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

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


class ReleaseWhenIdle:
    """ASGI middleware: when the last request in flight ends and no other starts within `idle_s`, collect and trim
    the heap off the event loop, at most once every `min_interval_s`. Only requests that can allocate (anything but
    GET and HEAD) count as work: health probes and metrics scrapes never trigger a trim."""

    def __init__(self, app: ASGIApp, idle_s: float = 0.2, min_interval_s: float = 2.0) -> None:
        self.app, self.idle_s, self.min_interval_s = app, idle_s, min_interval_s
        self.active = 0  # requests in flight (one event loop: no lock needed)
        self.dirty = False  # work was done since the last trim
        self.last = float("-inf")
        self._pending: asyncio.TimerHandle | None = None
        self._running: asyncio.Future[bool] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.active += 1
        self.dirty = self.dirty or scope.get("method") not in ("GET", "HEAD")
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1
            if self.active == 0 and self.dirty:
                self._schedule()

    def _schedule(self) -> None:
        if self._pending is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(self.idle_s, self.last + self.min_interval_s - loop.time())
        self._pending = loop.call_later(delay, self._fire)

    def _fire(self) -> None:
        self._pending = None
        if self.active or not self.dirty:
            return  # busy again: the request that ends last schedules the next try
        if self._running is not None and not self._running.done():
            self._schedule()
            return
        self.dirty = False
        self.last = asyncio.get_running_loop().time()
        self._running = asyncio.ensure_future(asyncio.to_thread(release_memory))
