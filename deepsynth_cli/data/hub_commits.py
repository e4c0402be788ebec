"""Shards to the Hub at scale: every part pre-uploads its shard files, one committer batches the commits.

    a part (any process, any machine)                 the committer (the driver's process, or a Ray actor)
    ShardUploader.submit(path, meta)
      preupload(): the bytes go to the Hub's LFS
      storage, no commit yet  ----- PreUploaded ----> HubCommitter.submit(upload)
                                                        at most one commit per 3600 / max_commits_per_hour s,
                                                        each carrying many parts' shards and their part files
                                                      HubCommitter.close(describe): the last shards, the
                                                        manifest and the card, in one commit

Why: each commit is one request that the Hub rate-limits per repo (128 an hour when this was written), while
LFS uploads are not limited that way. N parts committing on their own hit the limit long before N = 64; one
committer keeps the commit rate where the setting puts it, whatever N is.

What keeps resume working: a part file (`hub.part_file`) lands in the same commit as the shards it lists, so the
repo is always its own resume state. A part killed after its pre-upload and before the commit has lost nothing
but time: its shard files are still on its disk (or rendered again elsewhere), and pre-uploading them again
costs no bytes (the Hub answers that it holds them).

A `PreUploaded` pickles (the `CommitOperationAdd`s carry their `upload_info` and `_is_uploaded`, content freed):
`create_commit` sends LFS files by sha256 and size without reading them again, so it may run on another machine.
"""

from __future__ import annotations

import contextlib
import json
import math
import queue
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from deepsynth_cli.data import hub
from deepsynth_cli.data.hub import HubError, HubTarget, Retry, explain
from deepsynth_cli.data.shards import ShardMeta

if TYPE_CHECKING:
    from deepsynth_cli.config import HubConfig

Parts = dict[str, dict[str, ShardMeta]]  # part file path -> {shard name: meta}, as `hub.read_parts` returns
Describe = Callable[[Parts], dict[str, bytes]]  # every part's shards -> the files that describe them (manifest, card)
_DESCRIBE_ROUNDS = 3  # describe again when machines outside this committer committed meanwhile; bounded


@dataclass(frozen=True)
class PreUploaded:
    """Shards of one part whose bytes are in the Hub's storage but in no commit yet: what a part hands over."""

    part: int
    parts: int
    shards: dict[str, ShardMeta]  # the shards in `operations`
    accounting: dict[str, ShardMeta]  # every shard of this part in the repo once these are: its part file
    operations: tuple[Any, ...]  # huggingface_hub CommitOperationAdd, uploaded (LFS) or holding its bytes (small)
    nbytes: int
    host: str  # where `local_paths` are
    local_paths: tuple[str, ...] = ()  # staged copies to delete once committed; empty keeps them


class CommitSink(Protocol):
    """Where a part hands its pre-uploaded shards: a `HubCommitter`, or `RayCommitSink` for one in a Ray actor."""

    def submit(self, upload: PreUploaded) -> None: ...


class Committer(Protocol):
    """What owns the commits of a run: a `HubCommitter` in this process or a `RayCommitter` (an actor)."""

    @property
    def sink(self) -> CommitSink: ...

    @property
    def commits(self) -> int: ...

    def close(self, describe: Describe | None = None) -> None: ...


def preupload(
    api: Any,
    target: HubTarget,
    part: int,
    parts: int,
    files: list[tuple[Path, ShardMeta]],
    accounting: dict[str, ShardMeta],
    retry: Retry,
    *,
    delete_after_commit: bool = False,
) -> PreUploaded:
    """Upload the bytes of `files` (shards of `part`) to the Hub's storage, in parallel, and return what the
    committer needs to commit them with `accounting` (the part's shards before these) as the part file.

    Raises HubError when the Hub keeps failing. Usable from any process: nothing here needs the committer.
    """
    from huggingface_hub import CommitOperationAdd

    def attempt() -> list[Any]:
        # Fresh operations for each try: preupload_lfs_files mutates them.
        operations = [CommitOperationAdd(hub.shard_path_in_repo(path.name), str(path)) for path, _ in files]
        api.preupload_lfs_files(target.repo_id, operations, repo_type="dataset", free_memory=True)
        for operation, (path, _) in zip(operations, files, strict=True):
            if operation._upload_mode != "lfs":  # sent inline by the commit: carry the bytes, not a local path
                operation.path_or_fileobj = path.read_bytes()
        return operations

    try:
        operations = retry.run(attempt)
    except Exception as error:
        raise explain(error, target.repo_id, "uploading shards to") from error
    shards = {path.name: meta for path, meta in files}
    return PreUploaded(
        part=part,
        parts=parts,
        shards=shards,
        accounting={**accounting, **shards},
        operations=tuple(operations),
        nbytes=sum(path.stat().st_size for path, _ in files),
        host=socket.gethostname(),
        local_paths=tuple(str(path) for path, _ in files) if delete_after_commit else (),
    )


class HubCommitter:
    """The one writer of commits to a repo: takes pre-uploaded shards from any number of parts (thread-safe) and
    commits them at a bounded rate, each part's part file in the same commit as its shards.

    A commit happens when `commit_every` shards wait or the oldest has waited `commit_interval_s`, and never
    sooner than 3600 / `max_commits_per_hour` seconds after the previous one; `close` makes the last commit at once.
    So the repo sees at most `max_commits_per_hour` commits an hour from this committer, plus the last one.

    A commit that keeps failing stops the committer: `submit` and `close` then raise HubError. Nothing local is
    deleted for a commit that did not happen; a rerun of the parts uploads and commits again.
    """

    def __init__(
        self,
        api: Any,
        target: HubTarget,
        retry: Retry,
        *,
        max_commits_per_hour: float,
        commit_every: int,
        commit_interval_s: float,
    ) -> None:
        self.api = api
        self.target = target
        self.retry = retry
        self.gap_s = 3600.0 / max_commits_per_hour
        self.commit_every = commit_every
        self.commit_interval_s = commit_interval_s
        self.accounting: Parts = {}  # what this committer committed, per part file
        self.commits = 0
        self.shards_committed = 0
        self._host = socket.gethostname()
        self._lock = threading.Condition()
        self._pending: list[PreUploaded] = []
        self._first_at = 0.0  # when the oldest pending upload arrived
        self._last_at = -math.inf  # when the last commit succeeded
        self._closing = False
        self._closed = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="deepsynth-commit", daemon=True)
        self._thread.start()

    @classmethod
    def from_config(cls, api: Any, target: HubTarget, settings: HubConfig, retry: Retry) -> HubCommitter:
        return cls(
            api,
            target,
            retry,
            max_commits_per_hour=settings.max_commits_per_hour,
            commit_every=settings.commit_every,
            commit_interval_s=settings.commit_interval_s,
        )

    @property
    def sink(self) -> CommitSink:
        """What parts hand their uploads to: this committer itself (a `RayCommitter` gives its actor's)."""
        return self

    def submit(self, upload: PreUploaded) -> None:
        """Queue `upload` for a coming commit; never waits for the network. Raises HubError if a commit failed."""
        with self._lock:
            self._raise_if_failed()
            if self._closing:
                raise RuntimeError("the committer is closed: hand shards over before closing it")
            if not self._pending:
                self._first_at = time.monotonic()
            self._pending.append(upload)
            self._lock.notify_all()

    def close(self, describe: Describe | None = None) -> None:
        """Commit everything handed over, at once. With `describe`, that commit also carries the files that
        describe every part in the repo (this committer's and any committed by others), written once here.

        Machines outside this committer (separate runs with `--shard-index`) may commit meanwhile: the parts are
        read again afterwards and described again if they changed, at most `_DESCRIBE_ROUNDS` times in all.
        """
        with self._lock:
            if self._closed:
                return
            self._closing = True
            self._lock.notify_all()
        self._thread.join()
        with self._lock:
            batch, self._pending, self._closed = self._pending, [], True
            self._raise_if_failed()
        if describe is None:
            if batch:
                self._commit_or_raise(batch, {}, "uploading shards to")
            return
        described: Parts | None = None
        for _ in range(_DESCRIBE_ROUNDS):
            parts = {**self._read_parts(), **self._accounting_with(batch)}
            if parts == described:
                break
            action = "uploading shards to" if batch else "writing the dataset card of"
            self._commit_or_raise(batch, describe(parts), action)
            batch, described = [], parts

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            error = self._error
            if isinstance(error, HubError):
                raise error
            raise explain(error, self.target.repo_id, "uploading shards to") from error

    def _due(self, now: float) -> float | None:
        """When the pending uploads may be committed, or None when none wait."""
        if not self._pending:
            return None
        waiting = sum(len(upload.shards) for upload in self._pending)
        ready = now if waiting >= self.commit_every else self._first_at + self.commit_interval_s
        return max(ready, self._last_at + self.gap_s)

    def _run(self) -> None:
        while True:
            with self._lock:
                while True:
                    if self._closing:  # close() makes the last commit itself, with the description
                        return
                    now = time.monotonic()
                    due = self._due(now)
                    if due is not None and due <= now:
                        break
                    self._lock.wait(None if due is None else due - now)
                batch, self._pending = self._pending, []
            try:  # the network outside the lock: parts keep handing over meanwhile
                self._commit(batch, {})
            except BaseException as error:  # kept for the callers: submit and close report it
                with self._lock:
                    self._error = error
                return

    def _accounting_with(self, batch: Iterable[PreUploaded]) -> Parts:
        """This committer's part files once `batch` is committed. A union: a shard once committed stays listed
        (a part retried from an older view of the repo cannot make the part file forget it)."""
        accounting = {path: dict(shards) for path, shards in self.accounting.items()}
        for upload in batch:
            accounting.setdefault(hub.part_file(upload.part, upload.parts), {}).update(upload.accounting)
        return accounting

    def _commit_or_raise(self, batch: list[PreUploaded], files: dict[str, bytes], action: str) -> None:
        try:
            self._commit(batch, files)
        except HubError:
            raise
        except Exception as error:
            raise explain(error, self.target.repo_id, action) from error

    def _commit(self, batch: list[PreUploaded], files: dict[str, bytes]) -> None:
        from huggingface_hub import CommitOperationAdd

        accounting = self._accounting_with(batch)
        changed = sorted({hub.part_file(upload.part, upload.parts) for upload in batch})
        # One operation per path, the latest: a part retried after handing over may hand the same shard again.
        latest = {operation.path_in_repo: operation for upload in batch for operation in upload.operations}
        operations = list(latest.values())
        operations += [CommitOperationAdd(path, part_json(accounting[path])) for path in changed]
        operations += [CommitOperationAdd(path, content) for path, content in files.items()]
        shards = sum(len(upload.shards) for upload in batch)
        message = f"deepsynth: add {shards} shard(s) of {len(changed)} part(s)"
        if files:
            message += ", describe the dataset"
        self.retry.run(
            lambda: self.api.create_commit(self.target.repo_id, operations, commit_message=message, repo_type="dataset")
        )
        # huggingface_hub makes no commit when every file equals the repo's (a rerun describing an unchanged repo)
        made = not all(op._remote_oid is not None and op._remote_oid == op._local_oid for op in operations)
        with self._lock:
            self.accounting = accounting
            self.commits += made
            self.shards_committed += shards
            if made:
                self._last_at = time.monotonic()
        for upload in batch:  # staged copies go only once the commit that holds them succeeded
            if upload.host == self._host:
                for path in upload.local_paths:
                    Path(path).unlink(missing_ok=True)
        if shards:
            self.retry.notify(f"Hub: committed {shards} shard(s) of {len(changed)} part(s) to {self.target.repo_id}")

    def _read_parts(self) -> Parts:
        try:
            parts: Parts = self.retry.run(lambda: hub.read_parts(self.api, self.target.repo_id))
        except Exception as error:
            raise explain(error, self.target.repo_id, "reading the state of") from error
        return parts


def part_json(shards: dict[str, ShardMeta]) -> bytes:
    """The content of a part file: `hub.read_parts` reads it back."""
    payload = {"shards": {name: json.loads(meta.to_json()) for name, meta in sorted(shards.items())}}
    return (json.dumps(payload, indent=1, sort_keys=True) + "\n").encode()


class ShardUploader:
    """One part's side: pre-uploads finished shards in the background while rendering goes on, and hands them
    to `sink` (this process's committer, or one elsewhere).

    `submit` never blocks on the network. Shards are pre-uploaded as they come, up to `batch` per call (the
    client uploads them in parallel). `accounting` is this part's shards in the repo plus those handed over.
    """

    def __init__(
        self,
        api: Any,
        target: HubTarget,
        part: int,
        parts: int,
        committed: dict[str, ShardMeta],
        *,
        sink: CommitSink,
        retry: Retry,
        delete_after_commit: bool,
        batch: int = 8,
    ) -> None:
        self.api = api
        self.target = target
        self.part, self.parts = part, parts
        self.accounting = dict(committed)
        self.sink = sink
        self.retry = retry
        self.delete_after_commit = delete_after_commit
        self.batch = batch
        self.bytes_uploaded = 0
        self.shards_handed = 0
        self._queue: queue.Queue[tuple[Path, ShardMeta] | None] = queue.Queue()  # None: finish and stop
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="deepsynth-upload", daemon=True)
        self._thread.start()

    def submit(self, path: Path, meta: ShardMeta) -> None:
        self._raise_if_failed()
        self._queue.put((path, meta))

    def close(self) -> None:
        """Pre-upload and hand over everything submitted so far; raise HubError if that failed."""
        self._queue.put(None)
        self._thread.join()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            if isinstance(error, HubError):
                raise error
            raise explain(error, self.target.repo_id, "uploading shards to") from error

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            files = [item]
            stop = False
            while len(files) < self.batch:  # whatever else is ready goes in the same pre-upload
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stop = True
                    break
                files.append(more)
            try:
                upload = preupload(
                    self.api, self.target, self.part, self.parts, files, self.accounting, self.retry,
                    delete_after_commit=self.delete_after_commit,
                )  # fmt: skip
                self.sink.submit(upload)
            except BaseException as error:  # kept for the rendering thread: it decides how to report
                self._error = error
                return
            self.accounting = dict(upload.accounting)
            self.bytes_uploaded += upload.nbytes
            self.shards_handed += len(files)
            if stop:
                return


class CommitterActor:
    """A `HubCommitter` run as a Ray actor, so that parts on any machine share one committer. Built where it
    runs (the client and its HTTP session do not pickle). Use it through `RayCommitter`."""

    def __init__(self, token: str | None, target: HubTarget, settings: HubConfig) -> None:
        self._notices: deque[str] = deque(maxlen=_NOTICES_KEPT)
        retry = Retry(settings.attempts, settings.backoff_s, self._notices.append)
        self.committer = HubCommitter.from_config(hub.hub_api(token, settings.timeout_s), target, settings, retry)

    def submit(self, upload: PreUploaded) -> None:
        self.committer.submit(upload)

    def close(self, describe: Describe | None = None) -> int:
        self.committer.close(describe)
        return self.committer.commits

    def notices(self) -> list[str]:
        """The messages (retries, commits) since the last call, the latest `_NOTICES_KEPT` at most."""
        taken = []
        while self._notices:
            taken.append(self._notices.popleft())
        return taken


_NOTICES_KEPT = 256


class RayCommitter:
    """The driver's side of a `CommitterActor`: the same `sink` / `close` / `commits` as a `HubCommitter`.

        committer = RayCommitter.start(token, target, cfg.hub, notify)   # on the driver, connected to Ray
        ...every part's task runs ShardUploader(..., sink=committer.sink)...
        committer.close(describe)                                        # on the driver, once the parts are done

    The actor takes no CPU (the parts need them) and is not restarted: if it dies, the parts handing over fail,
    and a rerun resumes from what the repo holds.
    """

    def __init__(self, handle: Any, notify: Callable[[str], None]) -> None:
        self.handle = handle
        self.sink = RayCommitSink(handle)
        self.notify = notify
        self.commits = 0
        self._closed = False

    @classmethod
    def start(
        cls, token: str | None, target: HubTarget, settings: HubConfig, notify: Callable[[str], None]
    ) -> RayCommitter:
        import ray

        actor = ray.remote(num_cpus=0, max_restarts=0)(CommitterActor)
        return cls(actor.remote(token, target, settings), notify)

    def close(self, describe: Describe | None = None) -> None:
        """As `HubCommitter.close`, in the actor; then the actor goes. Raises HubError (the actor's own)."""
        if self._closed:
            return
        self._closed = True
        import ray

        try:
            self.commits = _unwrapped(lambda: ray.get(self.handle.close.remote(describe)))
        finally:
            with contextlib.suppress(ray.exceptions.RayError):
                for message in ray.get(self.handle.notices.remote()):
                    self.notify(message)
                ray.kill(self.handle)


class RayCommitSink:
    """A part's handle on a `CommitterActor` (it pickles into a task): `submit` waits until the actor has queued
    the upload, so a failed committer stops the part at its next shard, with the committer's HubError."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle

    def submit(self, upload: PreUploaded) -> None:
        import ray

        _unwrapped(lambda: ray.get(self.handle.submit.remote(upload)))


def _unwrapped(call: Callable[[], Any]) -> Any:
    """`call()`, raising a HubError from inside the actor as itself rather than wrapped in a RayTaskError."""
    import ray

    try:
        return call()
    except ray.exceptions.RayTaskError as error:
        if isinstance(error.cause, HubError):
            raise error.cause from None
        raise
