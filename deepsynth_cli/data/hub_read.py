"""Read a rendered dataset on the Hub by the byte ranges a job needs, never by downloading it whole.

`list_hub_dataset` costs one file listing, the manifest and the part files (a few KB that give every shard's
row count, so a shard need not be opened to be counted). `HubDataset.open_shard` opens one Parquet shard as a
file whose every read is one HTTP range request: pyarrow then fetches its footer, and afterwards only the column
chunks it is asked for (the text column of a shard, the pages of one 16-row row group). `validate` reads a sample
of rows per split this way, `eval` the metadata columns of the row groups that hold its rows, then their pages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from deepsynth_cli.data.rendered import MANIFEST_FILE, split_of
from deepsynth_cli.data.shards import DATA_DIR
from deepsynth_cli.data.store import DatasetLocation
from deepsynth_cli.settings import Settings

if TYPE_CHECKING:
    import pyarrow.parquet as pq

# Each read becomes one range request of exactly what pyarrow asked for: no read-ahead, no block cache.
_BLOCK_SIZE = 2**16


__all__ = ["HubDataset", "list_hub_dataset", "split_of"]


@dataclass(frozen=True)
class HubDataset:
    """What one listing of a rendered dataset repo tells: its files, manifest and the rows of each shard."""

    repo_id: str
    revision: str | None  # the commit listed
    token: str | None = field(repr=False)
    files: tuple[str, ...]  # every path in the repo
    manifest: dict[str, Any] | None
    declared: dict[str, int]  # shard file name -> rows, from the part files (shards they describe)

    def shards(self) -> dict[str, list[str]]:
        """The Parquet shards under `data/` per split, in file-name order (the order a local folder reads)."""
        found: dict[str, list[str]] = {}
        for path in sorted(self.files):
            shard = PurePosixPath(path)
            if shard.parent.as_posix() == DATA_DIR and shard.suffix == ".parquet":
                found.setdefault(split_of(shard.name), []).append(path)
        return found

    def open_shard(self, path: str) -> pq.ParquetFile:
        """One shard, read by range: constructing it fetches the footer (one request); each column chunk read
        afterwards is one more. The file holds no connection, so there is nothing to close."""
        import pyarrow.parquet as pq
        from huggingface_hub import HfFileSystem

        remote = f"datasets/{self.repo_id}/{path}"
        file = HfFileSystem(token=self.token).open(
            remote, "rb", revision=self.revision, block_size=_BLOCK_SIZE, cache_type="none"
        )
        return pq.ParquetFile(file)


def list_hub_dataset(location: DatasetLocation, settings: Settings) -> HubDataset:
    """List a Hub dataset repo at one commit (its revision's latest) and read its manifest and part files (no shard
    is opened)."""
    from huggingface_hub import hf_hub_download

    from deepsynth_cli.credentials import hub_token
    from deepsynth_cli.data.hub import PARTS_DIR, hub_api

    token = hub_token(settings)
    api, repo_id = hub_api(token, timeout_s=60), str(location.repo_id)
    # Every later read names this commit: a push while a job reads cannot mix two versions of the split.
    revision = api.dataset_info(repo_id, revision=location.revision).sha or location.revision
    listed = api.list_repo_files(repo_id, repo_type="dataset", revision=revision)

    def fetch(path: str) -> Any:
        local = hf_hub_download(repo_id, path, repo_type="dataset", revision=revision, token=token)
        return json.loads(Path(local).read_text(encoding="utf-8"))

    manifest = fetch(MANIFEST_FILE) if MANIFEST_FILE in listed else None
    declared: dict[str, int] = {}
    for path in listed:
        if path.startswith(f"{PARTS_DIR}/") and path.endswith(".json"):
            shards = fetch(path).get("shards", {})
            declared.update({shard: int(meta.get("rows", 0)) for shard, meta in shards.items()})
    return HubDataset(repo_id, revision, token, tuple(listed), manifest, declared)
