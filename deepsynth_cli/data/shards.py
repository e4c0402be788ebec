"""Parquet shards in the Hub-native layout, written atomically, each describing itself in its footer.

Layout of one dataset folder (what `datasets.load_dataset(folder)` and the Hub auto-detect):

    data/{split}-{part:05d}-of-{parts:05d}-{chunk:05d}.parquet

`part`/`parts` are `--shard-index`/`--num-shards`, so machines that split the work never write the same file;
`chunk` numbers the consecutive blocks of `rows_per_shard` source rows of that part. Every file carries its own
accounting (source row range, rows, pages, skipped rows per reason, settings fingerprint) in the Parquet
key-value metadata: the folder is its own resume state, and the manifest is derived from the footers.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from deepsynth_cli.errors import DatasetError

META_KEY = b"deepsynth"
DATA_DIR = "data"
_NAME = re.compile(r"^(?P<split>\w+)-(?P<part>\d{5})-of-(?P<parts>\d{5})-(?P<chunk>\d{5,})\.parquet$")

# The HF `datasets` features of a row, as `datasets.Features(...).arrow_schema` writes them (a test checks they
# agree). Written by hand so that `generate` does not import `datasets` (seconds of start-up per process).
HF_FEATURES: dict[str, dict[str, Any]] = {
    "pages": {"feature": {"_type": "Image"}, "_type": "List"},
    "text": {"dtype": "string", "_type": "Value"},
    "summary": {"dtype": "string", "_type": "Value"},
    "language": {"dtype": "string", "_type": "Value"},
    "source_dataset": {"dtype": "string", "_type": "Value"},
    "source_split": {"dtype": "string", "_type": "Value"},
    "source_id": {"dtype": "string", "_type": "Value"},
    "num_pages": {"dtype": "int32", "_type": "Value"},
    "text_tokens": {"dtype": "int32", "_type": "Value"},
    "vision_tokens": {"dtype": "int32", "_type": "Value"},
    "truncated": {"dtype": "bool", "_type": "Value"},
    "dropped_chars": {"dtype": "int32", "_type": "Value"},
    "source_tokens": {"dtype": "int32", "_type": "Value"},
    "missing_glyphs": {"dtype": "int32", "_type": "Value"},
}


def hf_features_yaml() -> list[dict[str, str]]:
    """The features as a card's `dataset_info` lists them (`datasets.Features._to_yaml_list`; a test checks)."""
    out: list[dict[str, str]] = []
    for name, feature in HF_FEATURES.items():
        if feature["_type"] == "List":
            out.append({"name": name, "list": str(feature["feature"]["_type"]).lower()})
        else:
            out.append({"name": name, "dtype": str(feature["dtype"])})
    return out


_IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
ROW_SCHEMA = pa.schema(
    [
        ("pages", pa.list_(_IMAGE)),
        ("text", pa.string()),
        ("summary", pa.string()),
        ("language", pa.string()),
        ("source_dataset", pa.string()),
        ("source_split", pa.string()),
        ("source_id", pa.string()),
        ("num_pages", pa.int32()),
        ("text_tokens", pa.int32()),
        ("vision_tokens", pa.int32()),
        ("truncated", pa.bool_()),
        ("dropped_chars", pa.int32()),
        ("source_tokens", pa.int32()),  # format 2: the whole document; `text_tokens` counts what was drawn
        ("missing_glyphs", pa.int32()),  # format 2: drawn characters no font has a glyph for
    ],
    metadata={b"huggingface": json.dumps({"info": {"features": HF_FEATURES}}).encode()},
)
# Small row groups keep readers (and the Hub viewer) from loading hundreds of pages at once, and let `eval` and
# `validate` fetch a sample's pages from the Hub by range without most of the split (a row group is the unit).
ROW_GROUP_ROWS = 16


@dataclass
class ShardMeta:
    """What one shard holds and which source rows it accounts for."""

    split: str
    part: int
    parts: int
    chunk: int
    first_position: int  # position of its first source row within this part's stream of the split
    positions: int  # source rows accounted for (written + skipped)
    end: str  # "full", "exhausted" (the split ended inside this chunk) or "limit" (max_samples reached)
    limit: int | None  # max_samples in force when end == "limit"
    fingerprint: str
    rows: int = 0
    pages: int = 0
    truncated_rows: int = 0
    dropped_chars: int = 0
    text_tokens: int = 0
    vision_tokens: int = 0
    source_tokens: int = 0  # format 2 (0 in the footers of format-1 shards)
    missing_glyphs: int = 0  # format 2
    missing_chars: str = ""  # format 2: a few of the characters without a glyph, for the warning
    undetermined_rows: int = 0  # format 2: rows whose language is "und"
    skipped: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> ShardMeta:
        return cls(**json.loads(raw))


def shard_name(split: str, part: int, parts: int, chunk: int) -> str:
    return f"{split}-{part:05d}-of-{parts:05d}-{chunk:05d}.parquet"


def parse_shard_name(name: str) -> dict[str, Any] | None:
    match = _NAME.match(name)
    if not match:
        return None
    return {"split": match["split"], **{key: int(match[key]) for key in ("part", "parts", "chunk")}}


DAMAGED_SUFFIX = ".damaged"  # a shard set aside: no `.parquet` suffix, so nothing reads it as data


class DamagedShardError(DatasetError):
    """A shard file whose Parquet footer cannot be read (cut short by a full disk, a crash, a bad copy)."""

    def __init__(self, path: Path, error: BaseException) -> None:
        super().__init__(
            f"shard {path} is damaged ({type(error).__name__}: {str(error).splitlines()[0][:120]})",
            hint="run the same `deepsynth generate` again: it sets damaged shards aside and renders them anew",
        )
        self.path = path


def read_meta(path: Path) -> ShardMeta | None:
    """The footer accounting of a shard; None for a Parquet file that deepsynth did not write. Raises
    DamagedShardError, naming the file, when its footer cannot be read."""
    try:
        metadata = pq.read_metadata(path).metadata or {}
    except (pa.ArrowException, OSError) as error:
        raise DamagedShardError(path, error) from error
    raw = metadata.get(META_KEY)
    return ShardMeta.from_json(raw) if raw else None


def set_aside_damaged(folder: Path) -> list[str]:
    """Rename every shard of `folder` whose footer cannot be read to `NAME.damaged` (kept, for a look, but no
    longer data) so that a resuming run renders its rows again. Returns the names set aside."""
    moved: list[str] = []
    data = folder / DATA_DIR
    if data.is_dir():
        for path in sorted(data.glob("*.parquet")):
            try:
                read_meta(path)
            except DamagedShardError:
                if not path.exists():  # another part's run set it aside (or uploaded and deleted it) meanwhile
                    continue
                try:
                    path.replace(path.with_name(path.name + DAMAGED_SUFFIX))
                except FileNotFoundError:
                    continue
                moved.append(path.name)
    return moved


def _of_part(name: str, part: int | None) -> bool:
    """Whether shard file `name` belongs to `part` (every name does when `part` is None)."""
    if part is None:
        return True
    parsed = parse_shard_name(name)
    return parsed is not None and parsed["part"] == part


def scan(folder: Path, part: int | None = None) -> dict[str, ShardMeta]:
    """Every finished shard in a dataset folder (of one `part` only, when given), by file name. Temporary files
    are ignored, and so is a shard that another part's run removes while this one looks (a staged upload)."""
    data = folder / DATA_DIR
    found: dict[str, ShardMeta] = {}
    if data.is_dir():
        for path in sorted(data.glob("*.parquet")):
            if not _of_part(path.name, part):
                continue
            try:
                meta = read_meta(path)
            except DamagedShardError:
                if path.exists():
                    raise
                continue
            if meta is not None:
                found[path.name] = meta
    return found


def remove_partial_files(folder: Path, part: int | None = None) -> int:
    """Delete shards a killed run left half-written (of one `part` only, when given: another part may be
    writing its own at this moment). They never carry a `.parquet` suffix."""
    removed = 0
    data = folder / DATA_DIR
    if data.is_dir():
        for path in data.glob(".*.parquet.partial"):
            if not _of_part(path.name[1 : -len(".partial")], part):
                continue
            path.unlink(missing_ok=True)
            removed += 1
    return removed


class ShardWriter:
    """Streams rows into `.{name}.partial`, then renames it into place: a shard is either whole or absent."""

    def __init__(self, folder: Path, name: str) -> None:
        data = folder / DATA_DIR
        data.mkdir(parents=True, exist_ok=True)
        self.path = data / name
        self._partial = data / f".{name}.partial"
        self._writer: pq.ParquetWriter | None = None
        self._buffer: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self._buffer.append(row)
        if len(self._buffer) >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._writer is None:
            self._writer = pq.ParquetWriter(self._partial, ROW_SCHEMA, compression="none")
        if self._buffer:
            # Pages are PNG/WebP already; a second compression pass costs time and saves nothing.
            self._writer.write_table(pa.Table.from_pylist(self._buffer, schema=ROW_SCHEMA))
            self._buffer.clear()

    def commit(self, meta: ShardMeta) -> Path:
        """Finish the file with `meta` in its footer and move it into place atomically."""
        self._flush()
        assert self._writer is not None
        self._writer.add_key_value_metadata({META_KEY: meta.to_json()})
        self._writer.close()
        self._writer = None
        _fsync(self._partial)  # the bytes reach the disk before the name does: a crash leaves no cut shard
        self._partial.replace(self.path)
        _fsync(self.path.parent)  # and the rename itself
        return self.path

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._partial.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def page_images(pages: Iterable[bytes]) -> list[dict[str, Any]]:
    """Pages as HF `Image` values: bytes inline, no path (the folder must be movable)."""
    return [{"bytes": page, "path": None} for page in pages]
