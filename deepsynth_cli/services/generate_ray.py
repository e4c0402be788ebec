"""`deepsynth generate --executor ray`: every part of the deterministic split runs as one Ray Core task.

A task runs exactly what `--shard-index I` runs on one machine (`generate_part.run_part`, with
`--num-workers-per-task` render processes) into the same output folder, so the shards are those of a one-machine
run, byte for byte. Core tasks rather than Ray Data: a part is the unit of resume (its shard footers say what is
done) and of identity (the same rows in the same shards, whatever the executor); a Ray Data pipeline would
re-plan blocks on its own and has no resume. Ray runs a task again when its worker dies (`_MAX_RETRIES`); the
new attempt finds the part's finished shards and renders only the rest. Errors inside a part come back as a
value and are raised here as one line naming the part.

Progress: each task sends, at most every `_FLUSH_S`, its document and page counts and its few notable events to
one small actor (`_Board`, bounded); the driver polls it while it waits and shows one aggregated figure.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass
from typing import Any

from deepsynth_cli import processes
from deepsynth_cli.config import GenerateConfig
from deepsynth_cli.data.hub import HubError
from deepsynth_cli.errors import ConfigError, DatasetError, DeepsynthError, OutputError, RenderError
from deepsynth_cli.services.generate_part import FolderState, PartJob, run_part
from deepsynth_cli.services.generate_report import (
    Advanced,
    Event,
    EventSink,
    Notice,
    PartReport,
    PartsProgress,
    ShardWritten,
    SplitStarted,
)
from deepsynth_cli.services.render_pool import make_pool

_MAX_RETRIES = 3  # attempts after the first when a part's worker dies (a crash, the OOM killer, a lost node)
_FLUSH_S = 0.5  # how often a task sends its progress to the board
_POLL_S = 0.5  # how often the driver reads the board while it waits
_BOARD_EVENTS = 256  # events the board keeps between two polls; older ones are dropped (and counted)
_CANCEL_WAIT_S = 30.0  # after a failure, how long the other parts get to stop (their finished shards stay)
_ERRORS: dict[str, type[DeepsynthError]] = {
    cls.__name__: cls for cls in (ConfigError, DatasetError, OutputError, RenderError, HubError)
}
RAY_MISSING_HINT = "install it with: pip install 'deepsynth[ray]' (or use --executor local)"


def import_ray(start_local: bool) -> Any:
    """Ray, or a one-line ConfigError when it is not installed. For a Ray started here, `start_local` keeps its
    node on loopback: Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER once, at import, and without it advertises
    (and its servers listen on) the machine's primary interface."""
    if start_local and "ray" not in sys.modules:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ModuleNotFoundError:
        raise ConfigError("--executor ray needs Ray, which is not installed", hint=RAY_MISSING_HINT) from None
    return ray


class RayParts:
    """The parts executor on Ray: joins the cluster at `--ray-address` (or `auto`), uses the one this process
    is already connected to, or starts a local Ray on 127.0.0.1 and stops it at the end."""

    def __init__(self, cfg: GenerateConfig, emit: EventSink) -> None:
        self.address = cfg.ray_address
        self.workers = cfg.num_workers_per_task
        self.emit = emit
        self._ray: Any = None
        self._started_here = False

    def __enter__(self) -> RayParts:
        ray = self._ray = import_ray(start_local=self.address is None)
        if ray.is_initialized():
            return self
        try:
            if self.address is None:
                ray.init(include_dashboard=False, configure_logging=False, log_to_driver=False)
            else:
                ray.init(address=self.address, configure_logging=False, log_to_driver=False)
        except ConnectionError as error:
            raise ConfigError(
                f"cannot reach the Ray cluster at {self.address}: {str(error).splitlines()[0][:160]}",
                hint="start it with `ray start --head`, check --ray-address, or leave it out to start a local Ray",
            ) from None
        self._started_here = True
        where = "a local Ray on 127.0.0.1" if self.address is None else f"the Ray cluster at {self.address}"
        self.emit(Notice(f"ray: using {where} ({int(ray.cluster_resources().get('CPU', 0))} CPUs)"))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._started_here:
            self._ray.shutdown()

    def run_parts(self, job: PartJob, state: FolderState, emit: EventSink) -> list[PartReport]:
        """Every part of `job` as one task; their reports in part order. `state` is not passed on: each task
        reads its own part, so an attempt after a worker death sees what the first one finished."""
        ray = self._ray
        parts = job.cfg.num_shards
        board = ray.remote(num_cpus=0)(_Board).remote(parts)
        task = ray.remote(num_cpus=self.workers, max_retries=_MAX_RETRIES)(_part_task)
        pending = {task.remote(job.for_part(part), self.workers, board): part for part in range(parts)}
        reports: dict[int, PartReport] = {}
        seen = _Seen()
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=_POLL_S, fetch_local=True)
                for ref in ready:
                    part = pending.pop(ref)
                    reports[part] = _outcome(ray, ref, part, parts, seen.attempts.get(part, 1))
                    seen.done += 1
                seen.show(ray.get(board.drain.remote()), job.source.name, parts, emit)
        except BaseException:
            # The other parts stop on their own when they next report (their half-written shard goes, finished
            # ones stay). Not `ray.cancel`: cancelling a task as it completes aborts this process in Ray 2.60
            # ("Check failed: it != submissible_tasks_.end()" in TaskManager::CompletePendingTask).
            with contextlib.suppress(ray.exceptions.RayError):
                ray.get(board.stop.remote(), timeout=_CANCEL_WAIT_S)
                ray.wait(list(pending), num_returns=len(pending), timeout=_CANCEL_WAIT_S)
            raise
        finally:
            with contextlib.suppress(ray.exceptions.RayError):  # a lost cluster must not hide the first error
                seen.show(ray.get(board.drain.remote(), timeout=_CANCEL_WAIT_S), job.source.name, parts, emit)
                ray.kill(board)
        for part, report in reports.items():
            report.attempts = max(report.attempts, seen.attempts.get(part, 1))
        return [reports[part] for part in range(parts)]


@dataclass
class _Failure:
    """An error inside a part, sent back as a value: a Ray traceback would bury the one line that matters."""

    kind: str
    message: str
    hint: str
    detail: str  # the traceback inside the task, shown with DEEPSYNTH_DEBUG=1


def _outcome(ray: Any, ref: Any, part: int, parts: int, attempts: int) -> PartReport:
    try:
        result = ray.get(ref)
    except ray.exceptions.RayError as error:  # the worker died more than _MAX_RETRIES times, or the node went
        cause = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise DeepsynthError(
            f"part {part} of {parts}: its Ray task failed after {attempts} attempt(s) ({type(error).__name__}: "
            f"{cause})",
            hint="finished shards are kept: run the same command again to resume; the Ray logs say why it died",
        ) from None
    if isinstance(result, _Failure):
        error_type = _ERRORS.get(result.kind, DeepsynthError)
        failure = error_type(f"part {part} of {parts}: {result.message}", hint=result.hint)
        raise failure from (RuntimeError(result.detail) if result.detail else None)
    assert isinstance(result, PartReport)
    return result


class _Seen:
    """What the driver has gathered from the board: attempts per part, totals, parts done."""

    def __init__(self) -> None:
        self.attempts: dict[int, int] = {}
        self.documents = self.pages = self.done = 0
        self._last: tuple[int, int, int, int] | None = None

    def show(self, drained: tuple[list[Event], int, int, dict[int, int], int], dataset: str, parts: int,
             emit: EventSink) -> None:  # fmt: skip
        events, documents, pages, attempts, dropped = drained
        for event in events:
            emit(event)
        if dropped:
            emit(Notice(f"{dataset}: {dropped} progress message(s) from the parts were not shown"))
        self.documents += documents
        self.pages += pages
        self.attempts.update(attempts)
        retries = sum(count - 1 for count in self.attempts.values() if count > 1)
        now = (self.done, self.documents, self.pages, retries)
        if now != self._last:
            self._last = now
            emit(PartsProgress(dataset, parts, self.done, self.documents, self.pages, retries))


class _Board:
    """The Ray actor the parts report to. Counts are summed, events kept in a bounded queue until drained."""

    def __init__(self, parts: int) -> None:
        self.attempts: dict[int, int] = {}
        self.documents = self.pages = self.dropped = 0
        self.events: deque[Event] = deque(maxlen=_BOARD_EVENTS)
        self._changed: dict[int, int] = {}
        self.parts = parts
        self.stopping = False  # the driver gave up (another part failed, or Ctrl-C): parts stop at their next push

    def stop(self) -> None:
        self.stopping = True

    def started(self, part: int) -> int:
        self.attempts[part] = self.attempts.get(part, 0) + 1
        self._changed[part] = self.attempts[part]
        return self.attempts[part]

    def push(self, documents: int, pages: int, events: list[Event]) -> bool:
        """Add a part's progress; True when the part should stop."""
        self.documents += documents
        self.pages += pages
        for event in events:
            if len(self.events) == self.events.maxlen:
                self.dropped += 1
            self.events.append(event)
        return self.stopping

    def drain(self) -> tuple[list[Event], int, int, dict[int, int], int]:
        out = (list(self.events), self.documents, self.pages, dict(self._changed), self.dropped)
        self.events.clear()
        self.documents = self.pages = self.dropped = 0
        self._changed.clear()
        return out


class _StoppedError(Exception):
    """Raised inside a task when the driver has given up on the run (its board says so, or is gone)."""


class _Relay:
    """A task's event sink: sums documents and pages, keeps shard and notice events, sends them to the board
    at most every `_FLUSH_S` (one small message, whatever the rendering rate). The board's answer to the last
    message says whether to stop: then the next event raises `_StoppedError` in the part's loop."""

    def __init__(self, board: Any, part: int, parts: int) -> None:
        import ray

        self.ray, self.board, self.prefix = ray, board, f"[part {part}/{parts}] "
        self.documents = self.pages = 0
        self.events: list[Event] = []
        self._sent = time.monotonic()
        self._answer: Any = None  # the board's reply to the last push, read once it has come

    def _check(self) -> None:
        if self._answer is None:
            return
        ready, _ = self.ray.wait([self._answer], timeout=0)
        if not ready:
            return
        answer, self._answer = self._answer, None
        try:
            stop = self.ray.get(answer)
        except self.ray.exceptions.RayError:  # the board is gone: so is the driver's run
            stop = True
        if stop:
            raise _StoppedError

    def __call__(self, event: Event) -> None:
        if isinstance(event, Advanced):
            self.documents += event.documents
            self.pages += event.pages
        elif isinstance(event, Notice):
            self.events.append(Notice(self.prefix + event.message))
        elif isinstance(event, ShardWritten):
            self.events.append(event)
        elif isinstance(event, SplitStarted):
            pass  # the driver shows the parts, not each part's splits
        self._check()
        if time.monotonic() - self._sent >= _FLUSH_S:
            self.flush()

    def flush(self) -> None:
        if self.documents or self.pages or self.events:
            self._answer = self.board.push.remote(self.documents, self.pages, self.events[:_BOARD_EVENTS])
        self.documents = self.pages = 0
        self.events = []
        self._sent = time.monotonic()


def _part_task(job: PartJob, workers: int, board: Any) -> PartReport | _Failure:
    """The body of one Ray task: part `job.cfg.shard_index`, holding that part's lock, as `--shard-index` would."""
    import ray

    part, parts = job.cfg.shard_index, job.cfg.num_shards
    attempt = ray.get(board.started.remote(part))
    relay = _Relay(board, part, parts)
    try:
        with processes.output_lock(job.store.folder, part, parts):
            pool = make_pool(job.cfg.render, job.cfg.tokenizer, workers)
            try:
                report = run_part(job, pool, 2 * workers, relay)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        report.attempts = attempt
        return report
    except _StoppedError:
        return _Failure("", "stopped: the run gave up on its other parts", "", "")
    except DeepsynthError as error:
        return _Failure(type(error).__name__, error.message, error.hint, traceback.format_exc())
    except Exception as error:
        message = f"unexpected {type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
        return _Failure("", message, "rerun with DEEPSYNTH_DEBUG=1 for the traceback", traceback.format_exc())
    finally:
        relay.flush()
