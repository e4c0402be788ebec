"""The Hugging Face Hub as the shared store: the one seam where deepsynth builds a client and uploads.

Layout of a dataset repo (the same as a local dataset folder, so either can be pushed or loaded unchanged):

    data/{split}-{part:05d}-of-{parts:05d}-{chunk:05d}.parquet   shards (see shards.py)
    deepsynth/part-{part:05d}-of-{parts:05d}.json                what each machine's shards cover
    rendered.MANIFEST_FILE                                        summary of every part
    README.md                                                     dataset card

A part's shards and its part file always land in the same commit, so the part file describes exactly the shards
that are in the repo, and parts that split the work never collide. How shards travel (pre-upload by each part, one
committer at a bounded commit rate) is in `hub_commits.py`. The token
comes from `deepsynth_cli.credentials` and is handed to the client; it never reaches a message, a file or a log
line.
"""

from __future__ import annotations

import json
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
