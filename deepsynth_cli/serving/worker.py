"""Micro-batching in front of one model: one thread owns the model, requests wait in a bounded queue.

Requests with the same generation options that arrive within `max_wait_ms` of the oldest waiting one share one
`generate` call (up to `max_batch_size` documents): on a GPU, and on a CPU for a small model, a batch of 16 costs
little more than one document, because decoding is bound by per-step overhead, not arithmetic. Different options
never share a batch (beams and sampling change the whole call). The queue counts documents waiting or running;
when it is full, `submit` refuses at once (the API answers 503 with Retry-After) rather than letting latency grow
without bound.
"""

from __future__ import annotations

import asyncio
import logging
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from deepsynth_cli.inference.options import GenerationOptions
from deepsynth_cli.serving.config import BatchingConfig

log = logging.getLogger("deepsynth.serve")

SummarizeFn = Callable[..., list[Any]]  # (documents: page lists or PreparedPages, options[, on_tokens=...])


class QueueFullError(Exception):
    """No room for the request's documents; try again after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"queue full, retry after {retry_after} s")
        self.retry_after = retry_after


class WorkerStoppedError(Exception):
    """The model thread is not running (shutting down, or it died)."""


@dataclass
class Done:
    """One document's result and how it was served."""

    summary: Any  # inference.summarizer.Summary
    queued_s: float  # from submission to the start of its batch
    generate_s: float  # the whole batch's model call
    batch_size: int


@dataclass(eq=False)  # jobs are compared by identity: two requests for the same text are still two jobs
class _Job:
    pages: Any  # a list of pages, or PreparedPages
    options: GenerationOptions
    key: str
    on_token: Callable[[int], None] | None = None  # streaming: hears each token from the model thread
    future: Future[Done] = field(default_factory=Future)
    submitted: float = field(default_factory=time.perf_counter)


@dataclass
class BatchObserver:
    """Hooks for metrics: called from the model thread after each batch."""

    on_batch: Callable[[int, float], None] = lambda size, seconds: None


class MicroBatcher:
    """Owns the model thread. `await batcher.run(documents, options, timeout)` from the event loop."""

    def __init__(self, summarize: SummarizeFn, cfg: BatchingConfig, observer: BatchObserver | None = None) -> None:
        self._summarize = summarize
        self.cfg = cfg
        self._observer = observer or BatchObserver()
        self._inbox: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._depth = 0
        self._stopping = False
        self._last_batch_s = 0.0
        self._thread = threading.Thread(target=self._loop, name="deepsynth-model", daemon=True)

    # -- event-loop side -------------------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Documents waiting or being summarised."""
        return self._depth

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stopping

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the running batch, refuse the rest, join the thread."""
        self._stopping = True
        self._inbox.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout)

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained by one batch's worth: a hint, at least 1."""
        batches = math.ceil(max(self._depth, 1) / self.cfg.max_batch_size)
        return max(1, min(60, math.ceil(batches * self._last_batch_s)))

    def submit(
        self,
        documents: Sequence[Any],
        options: GenerationOptions,
        on_tokens: Sequence[Callable[[int], None] | None] | None = None,
    ) -> list[Future[Done]]:
        """Queue every document of one request, or none (QueueFullError) when they do not all fit. `on_tokens`:
        per document, a listener called (in the model thread) with each token as it is generated."""
        if not self.alive:
            raise WorkerStoppedError("the model thread is not running")
        key = options.model_dump_json()
        with self._lock:
            if self._depth + len(documents) > self.cfg.max_queue:
                raise QueueFullError(self.retry_after())
            self._depth += len(documents)
        listeners = list(on_tokens) if on_tokens is not None else [None] * len(documents)
        jobs = [_Job(pages, options, key, listen) for pages, listen in zip(documents, listeners, strict=True)]
        for job in jobs:
            job.future.add_done_callback(self._release)
            self._inbox.put(job)
        return [job.future for job in jobs]

    async def run(
        self,
        documents: Sequence[Any],
        options: GenerationOptions,
        timeout: float,
        on_tokens: Sequence[Callable[[int], None] | None] | None = None,
    ) -> list[Done]:
        """Summaries in the order given. TimeoutError after `timeout` s; the request's queued documents are
        dropped (a batch already running finishes, its result is discarded)."""
        futures = self.submit(documents, options, on_tokens)
        try:
            return list(await asyncio.wait_for(asyncio.gather(*map(asyncio.wrap_future, futures)), timeout))
        finally:
            for future in futures:
                future.cancel()  # no-op for finished ones; frees the queue slots of the others now

    def _release(self, _: Future[Done]) -> None:
        with self._lock:
            self._depth -= 1

    # -- model thread --------------------------------------------------------------------------------------------

    def _loop(self) -> None:
        pending: deque[_Job] = deque()
        try:
            self._serve(pending)
        except BaseException as error:  # a bug here must not leave requests waiting for their timeout
            log.error("the model thread stopped: %s", type(error).__name__)
            self._stopping = True
            self._drain(pending)
            for job in pending:
                if job.future.set_running_or_notify_cancel():
                    job.future.set_exception(WorkerStoppedError("the model thread stopped"))
            raise

    def _serve(self, pending: deque[_Job]) -> None:
        wait_s = self.cfg.max_wait_ms / 1000.0
        limit = self.cfg.max_batch_size
        while True:
            if not pending:
                job = self._inbox.get()
                if job is None:
                    break
                pending.append(job)
            stop = self._drain(pending)
            first = pending[0]
            # The oldest document waits at most max_wait for company with the same options; one that already
            # waited behind a running batch goes at once with whatever has gathered.
            while not stop and sum(job.key == first.key for job in pending) < limit:
                remaining = first.submitted + wait_s - time.perf_counter()
                if remaining <= 0:
                    break
                try:
                    job = self._inbox.get(timeout=remaining)
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                else:
                    pending.append(job)
            batch = [job for job in pending if job.key == first.key][:limit]
            for job in batch:
                pending.remove(job)
            self._run_batch(batch)
            if stop:
                break
        for job in pending:
            job.future.cancel()

    def _drain(self, pending: deque[_Job]) -> bool:
        """Move everything already queued into `pending` without waiting; True when asked to stop."""
        while True:
            try:
                job = self._inbox.get_nowait()
            except queue.Empty:
                return False
            if job is None:
                return True
            pending.append(job)

    def _run_batch(self, batch: list[_Job]) -> None:
        live = [job for job in batch if job.future.set_running_or_notify_cancel()]  # skips timed-out requests
        if not live:
            return
        started = time.perf_counter()
        try:
            pages, options = [job.pages for job in live], live[0].options
            if any(job.on_token for job in live):  # streamed and plain requests share a batch
                summaries = self._summarize(pages, options, on_tokens=[job.on_token for job in live])
            else:
                summaries = self._summarize(pages, options)
        except Exception as error:  # every waiting request must hear about it
            log.error("batch of %d failed: %s", len(live), type(error).__name__)
            for job in live:
                job.future.set_exception(error)
            return
        seconds = time.perf_counter() - started
        self._last_batch_s = seconds
        for job, summary in zip(live, summaries, strict=True):
            job.future.set_result(Done(summary, started - job.submitted, seconds, len(live)))
        self._observer.on_batch(len(live), seconds)
