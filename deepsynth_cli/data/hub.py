"""The Hugging Face Hub as the shared store: the one seam where deepsynth builds a client and uploads.

Layout of a dataset repo (the same as a local dataset folder, so either can be pushed or loaded unchanged):

    data/{split}-{part:05d}-of-{parts:05d}-{chunk:05d}.parquet   shards (see shards.py)
    deepsynth/part-{part:05d}-of-{parts:05d}.json                what each machine's shards cover
    rendered.MANIFEST_FILE                                        summary of every part
    README.md                                                     dataset card

A machine only ever writes its own shards and its own part file, in the same commit, so the part file always
describes exactly the shards that are in the repo, and machines that split the work never collide. The token
comes from `deepsynth_cli.credentials` and is handed to the client; it never reaches a message, a file or a log
line.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deepsynth_cli.credentials import OFFLINE_HINT
from deepsynth_cli.data.shards import DATA_DIR, ShardMeta
from deepsynth_cli.errors import DeepsynthError

PARTS_DIR = "deepsynth"
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class HubError(DeepsynthError):
    """The Hub refused or kept failing. Local data is never deleted because of it."""


def part_file(part: int, parts: int) -> str:
    return f"{PARTS_DIR}/part-{part:05d}-of-{parts:05d}.json"


def shard_path_in_repo(name: str) -> str:
    return f"{DATA_DIR}/{name}"


def hub_api(token: str | None, timeout_s: float = 120.0) -> Any:
    """The one place that builds a Hub client. Imported lazily: huggingface_hub costs start-up time.

    huggingface_hub's shared HTTP session waits forever by default; a stalled upload must instead fail, be
    retried, and leave the local shards in place.
    """
    import httpx2
    from huggingface_hub import HfApi, get_session
    from huggingface_hub.utils.tqdm import disable_progress_bars

    disable_progress_bars()  # deepsynth shows its own progress; tqdm bars per file would interleave with it
    get_session().timeout = httpx2.Timeout(timeout_s, connect=min(timeout_s, 30.0))
    return HfApi(token=token, library_name="deepsynth")


_CHAIN_LIMIT = 8  # links followed from a wrapper to the error it wraps; bounded against odd cycles


def _chain(error: BaseException) -> Iterator[BaseException]:
    """`error`, then what it wraps (`__cause__`, else `__context__`), at most `_CHAIN_LIMIT` links.

    huggingface_hub wraps a failed LFS upload as `RuntimeError("Error while uploading ...") from exc`; the HTTP
    status that says whether to retry is on the wrapped error.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen and len(seen) < _CHAIN_LIMIT:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _status(error: BaseException) -> int | None:
    """The HTTP status of the first error in the chain that carries a response."""
    for link in _chain(error):
        status = getattr(getattr(link, "response", None), "status_code", None)
        if isinstance(status, int):
            return status
    return None


def _detail(error: BaseException) -> str:
    """`HTTP 503`, else the name of the innermost error (`ReadTimeout` rather than a wrapping `RuntimeError`)."""
    status = _status(error)
    if status is not None:
        return f"HTTP {status}"
    return type(list(_chain(error))[-1]).__name__


def is_transient(error: BaseException) -> bool:
    """Worth retrying: rate limits, server errors, timeouts and dropped connections, also when wrapped."""
    import httpx2

    status = _status(error)
    if status is not None:
        return status in TRANSIENT_STATUS
    return any(isinstance(link, httpx2.TransportError | TimeoutError | ConnectionError) for link in _chain(error))


def explain(error: BaseException, repo_id: str, action: str) -> HubError:
    """A one-line, token-free message for a Hub failure, with what to do about it.

    `action` reads before the repo id ("uploading shards to", "creating").
    """
    from huggingface_hub.errors import OfflineModeIsEnabled

    status = _status(error)
    if isinstance(error, OfflineModeIsEnabled):  # huggingface_hub refused the call: HF_HUB_OFFLINE=1
        return HubError(f"HF_HUB_OFFLINE=1 is set while {action} {repo_id}", hint=OFFLINE_HINT)
    if status == 401:
        return HubError(
            f"the Hub rejected the token while {action} {repo_id}", hint="check HF_TOKEN or `hf auth login` (write)"
        )
    if status == 403:
        return HubError(
            f"no write access to {repo_id}: the Hub refused {action} it (HTTP 403)",
            hint="use a token with write access to that namespace, or choose another --repo-id",
        )
    if status == 404:
        return HubError(f"{repo_id} not found while {action} it", hint="check --repo-id and HF_USERNAME")
    return HubError(
        f"the Hub kept failing while {action} {repo_id} ({_detail(error)})",
        hint="local shards are kept: run the same command again to resume the upload",
    )


def with_retries(call: Callable[[], Any], *, attempts: int, backoff_s: float, on_retry: Callable[[str], None]) -> Any:
    """Run `call`, retrying transient failures with exponential backoff; re-raise anything else at once."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as error:
            if attempt == attempts or not is_transient(error):
                raise
            delay = backoff_s * 2 ** (attempt - 1)
            on_retry(f"Hub: {_detail(error)}, retry {attempt}/{attempts - 1} in {delay:.1f} s")
            time.sleep(delay)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class Retry:
    """How hard to try: `attempts` per call, waiting `backoff_s`, then twice that, and so on."""

    attempts: int
    backoff_s: float
    notify: Callable[[str], None]

    def run(self, call: Callable[[], Any]) -> Any:
        return with_retries(call, attempts=self.attempts, backoff_s=self.backoff_s, on_retry=self.notify)


@dataclass(frozen=True)
class HubTarget:
    repo_id: str
    private: bool


def read_parts(api: Any, repo_id: str) -> dict[str, dict[str, ShardMeta]]:
    """Every part file in the repo: part file path -> {shard name: meta}. Empty for a new repo."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    try:
        files = [path for path in api.list_repo_files(repo_id, repo_type="dataset") if path.startswith(PARTS_DIR)]
    except RepositoryNotFoundError:
        return {}
    parts: dict[str, dict[str, ShardMeta]] = {}
    for path in files:
        try:
            local = hf_hub_download(repo_id, path, repo_type="dataset", token=api.token)
        except EntryNotFoundError:  # removed between listing and download
            continue
        raw = json.loads(Path(local).read_text(encoding="utf-8"))
        parts[path] = {name: ShardMeta(**meta) for name, meta in raw["shards"].items()}
    return parts


class ShardUploader:
    """Uploads finished shards in the background, a few per commit, while rendering goes on.

    `submit` never blocks on the network. A commit carries its shards and this part's updated part file, so a
    kill between commits leaves the repo consistent; the shards of a failed commit stay on disk for the rerun.
    Staged copies (no `--out`) are deleted only after the commit that holds them succeeded.
    """

    def __init__(
        self,
        api: Any,
        target: HubTarget,
        part: int,
        parts: int,
        committed: dict[str, ShardMeta],
        *,
        delete_after_upload: bool,
        commit_every: int,
        commit_interval_s: float,
        retry: Retry,
    ) -> None:
        self.api = api
        self.target = target
        self.part, self.parts = part, parts
        self.committed = dict(committed)  # this part's shards already in the repo
        self.delete_after_upload = delete_after_upload
        self.commit_every = commit_every
        self.commit_interval_s = commit_interval_s
        self.retry = retry
        self.commits = 0
        self.bytes_uploaded = 0
        self._queue: queue.Queue[tuple[Path, ShardMeta] | None] = queue.Queue()  # None: flush and stop
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="deepsynth-upload", daemon=True)
        self._thread.start()

    def submit(self, path: Path, meta: ShardMeta) -> None:
        self._raise_if_failed()
        self._queue.put((path, meta))

    def close(self) -> None:
        """Upload everything submitted so far; raise HubError if that failed."""
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
        batch: list[tuple[Path, ShardMeta]] = []
        first_at = 0.0
        while True:
            timeout = None if not batch else max(0.0, first_at + self.commit_interval_s - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:  # the interval elapsed: commit what there is
                if not self._commit(batch):
                    return
                batch = []
                continue
            if item is None:
                if batch:
                    self._commit(batch)
                return
            if not batch:
                first_at = time.monotonic()
            batch.append(item)
            if len(batch) >= self.commit_every:
                if not self._commit(batch):
                    return
                batch = []

    def _commit(self, batch: list[tuple[Path, ShardMeta]]) -> bool:
        from huggingface_hub import CommitOperationAdd

        state = dict(self.committed)
        state.update({path.name: meta for path, meta in batch})
        operations = [CommitOperationAdd(shard_path_in_repo(path.name), str(path)) for path, _ in batch]
        operations.append(CommitOperationAdd(part_file(self.part, self.parts), _part_json(state)))
        names = ", ".join(path.name for path, _ in batch)
        try:
            self.retry.run(
                lambda: self.api.create_commit(
                    self.target.repo_id,
                    operations,
                    commit_message=f"deepsynth: add {len(batch)} shard(s) of part {self.part}/{self.parts}",
                    repo_type="dataset",
                )
            )
        except BaseException as error:  # kept for the main thread: it decides how to report
            self._error = error
            return False
        self.committed = state
        self.commits += 1
        self.bytes_uploaded += sum(path.stat().st_size for path, _ in batch)
        if self.delete_after_upload:
            for path, _ in batch:
                path.unlink(missing_ok=True)
        self.retry.notify(f"Hub: committed {names} to {self.target.repo_id}")
        return True


def _part_json(shards: dict[str, ShardMeta]) -> bytes:
    payload = {"shards": {name: json.loads(meta.to_json()) for name, meta in sorted(shards.items())}}
    return (json.dumps(payload, indent=1, sort_keys=True) + "\n").encode()


def upload_files(api: Any, target: HubTarget, files: dict[str, bytes], message: str, retry: Retry) -> None:
    """Commit small files (card, manifest) in one commit, with retries."""
    from huggingface_hub import CommitOperationAdd

    operations = [CommitOperationAdd(path, content) for path, content in files.items()]
    try:
        retry.run(lambda: api.create_commit(target.repo_id, operations, commit_message=message, repo_type="dataset"))
    except Exception as error:
        raise explain(error, target.repo_id, "writing the dataset card of") from error


def create_repo(api: Any, target: HubTarget, retry: Retry) -> None:
    """Create the dataset repo if needed. `private` applies only when it is created: an existing repo keeps its
    visibility (changing it is the owner's decision, not a side effect of a generate run)."""
    try:
        retry.run(lambda: api.create_repo(target.repo_id, repo_type="dataset", private=target.private, exist_ok=True))
    except Exception as error:
        raise explain(error, target.repo_id, "creating") from error


def all_metas_named(parts: dict[str, dict[str, ShardMeta]]) -> Iterator[tuple[str, ShardMeta]]:
    """(shard name, meta) for every shard of every part."""
    for shards in parts.values():
        yield from shards.items()


def metas_of_part(parts: dict[str, dict[str, ShardMeta]], part: int, count: int) -> dict[str, ShardMeta]:
    return dict(parts.get(part_file(part, count), {}))


def repo_rows(api: Any, repo_id: str) -> dict[str, int] | None:
    """Rows per split from the repo's manifest, or None when the repo (or its manifest) does not exist."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    from deepsynth_cli.data.rendered import MANIFEST_FILE, manifest_rows

    try:
        path = hf_hub_download(repo_id, MANIFEST_FILE, repo_type="dataset", token=api.token)
    except (RepositoryNotFoundError, EntryNotFoundError):
        return None
    return manifest_rows(json.loads(Path(path).read_text(encoding="utf-8")))
