"""The rendered dataset: the one home of its format. Everything that writes or reads one goes through here.

A dataset folder (or Hub dataset repo) holds

    data/{split}-{part:05d}-of-{parts:05d}-{chunk:05d}.parquet    rows (`ROW_SCHEMA`), footers with accounting
    manifest.json                                                  `MANIFEST_FILE`: settings and counts per split
    README.md                                                      the dataset card, built from the manifest

This module owns the row (`ROW_SCHEMA`, `build_row`), the manifest (`build_manifest`, `write_dataset_files`,
`read_manifest`, `read_local_manifest`, `manifest_rows`), the fingerprint, the vision-token count of a page,
the default Hub repo name, shard listing and opening (`local_shards`, `Shard`, `open_shard`) and row counts.
The Parquet writing itself (`ShardWriter`, footers, naming) lives in `shards.py` beside it.

Format versions: 1 counted `text_tokens` on the whole document; 2 counts them on the text drawn on the pages and
adds `source_tokens` (the whole document) and `missing_glyphs`. Readers accept both (a version-1 row simply
lacks the new columns).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepsynth_cli.data import shards
from deepsynth_cli.data.shards import DATA_DIR, ROW_GROUP_ROWS, ROW_SCHEMA, ShardMeta, page_images, parse_shard_name
from deepsynth_cli.errors import DatasetError

if TYPE_CHECKING:
    import pyarrow.parquet as pq

    from deepsynth_cli.data.hub_read import HubDataset
    from deepsynth_cli.data.store import DatasetLocation
    from deepsynth_cli.settings import Settings

__all__ = [
    "CARD_FILE",
    "DATA_DIR",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "READABLE_FORMATS",
    "ROW_GROUP_ROWS",
    "ROW_SCHEMA",
    "Shard",
    "ShardMeta",
    "build_row",
    "compression",
    "default_repo_id",
    "fingerprint",
    "local_shards",
    "manifest_bytes",
    "manifest_rows",
    "open_shard",
    "read_local_manifest",
    "read_manifest",
    "split_of",
    "vision_tokens_per_page",
    "write_dataset_files",
]

MANIFEST_FILE = "manifest.json"
CARD_FILE = "README.md"
FORMAT_VERSION = 2
READABLE_FORMATS = (1, 2)
REPO_PREFIX = "deepsynth-"


def default_repo_id(username: str | None, name: str) -> str | None:
    """The Hub repo a dataset NAME goes to when none is given: `{HF_USERNAME}/deepsynth-{name}`."""
    return f"{username}/{REPO_PREFIX}{name}" if username else None


def vision_tokens_per_page(page_size: int) -> int:
    """Tokens DeepSeek-OCR-2 spends on one page shown as a single global view (no tiles): the model preset's
    query count for that view size plus the view separator (notes/deepseek-ocr2.md, "Image tokens")."""
    from deepsynth_cli.models.preset_config import vision_queries

    return vision_queries(page_size) + 1


def compression(text_tokens: int, vision_tokens: int) -> float | None:
    """Text tokens drawn on the pages per vision token: the one definition every report uses."""
    return round(text_tokens / vision_tokens, 3) if vision_tokens else None


# --- rows ------------------------------------------------------------------------------------------------------
def build_row(
    *,
    pages: Sequence[bytes],
    text: str,
    summary: str,
    language: str,
    source_dataset: str,
    source_split: str,
    source_id: str,
    text_tokens: int,
    source_tokens: int,
    dropped_chars: int,
    missing_glyphs: int,
    page_size: int,
) -> dict[str, Any]:
    """One row as `ROW_SCHEMA` stores it. `text_tokens` counts the drawn text, `source_tokens` the document."""
    return {
        "pages": page_images(pages),
        "text": text,
        "summary": summary,
        "language": language,
        "source_dataset": source_dataset,
        "source_split": source_split,
        "source_id": source_id,
        "num_pages": len(pages),
        "text_tokens": text_tokens,
        "vision_tokens": vision_tokens_per_page(page_size) * len(pages),
        "truncated": dropped_chars > 0,
        "dropped_chars": dropped_chars,
        "source_tokens": source_tokens,
        "missing_glyphs": missing_glyphs,
    }


def fingerprint(spec: Mapping[str, Any]) -> str:
    """Everything that changes what a shard contains, hashed. Shards with another fingerprint cannot be mixed."""
    return hashlib.sha256(json.dumps({"format": FORMAT_VERSION, **spec}, sort_keys=True).encode()).hexdigest()[:16]


# --- manifest --------------------------------------------------------------------------------------------------
def split_order(name: str) -> tuple[int, str]:
    return ({"train": 0, "validation": 1, "test": 2}.get(name, 3), name)


def split_summaries(metas: Iterable[ShardMeta]) -> tuple[dict[str, dict[str, Any]], list[int]]:
    """Per split: what its shards hold (rows, pages, tokens, skipped rows per reason...), and the parts present."""
    per_split: dict[str, dict[str, Any]] = {}
    parts: set[int] = set()
    for meta in metas:
        parts.add(meta.part)
        split = per_split.setdefault(
            meta.split,
            {
                "rows": 0,
                "pages": 0,
                "truncated_rows": 0,
                "dropped_chars": 0,
                "text_tokens": 0,
                "source_tokens": 0,
                "vision_tokens": 0,
                "missing_glyphs": 0,
                "skipped": {},
                "shards": 0,
            },
        )
        for key in ("rows", "pages", "truncated_rows", "dropped_chars", "text_tokens", "vision_tokens"):
            split[key] += getattr(meta, key)
        split["source_tokens"] += meta.source_tokens
        split["missing_glyphs"] += meta.missing_glyphs
        for reason, count in meta.skipped.items():
            split["skipped"][reason] = split["skipped"].get(reason, 0) + count
        split["shards"] += 1
    for split in per_split.values():
        split["compression"] = compression(split["text_tokens"], split["vision_tokens"])
    ordered = dict(sorted(per_split.items(), key=lambda item: split_order(item[0])))
    return ordered, sorted(parts)


def build_manifest(metas: Iterable[ShardMeta], header: Mapping[str, Any], page_size: int) -> dict[str, Any]:
    """The manifest of a dataset folder or repo: `header` (generator, source, settings) plus the per-split
    accounting of every shard in `metas` (every part, every split)."""
    splits, parts = split_summaries(metas)
    return {
        "format_version": FORMAT_VERSION,
        **header,
        "model_geometry": {"vision_tokens_per_page": vision_tokens_per_page(page_size), "tiles": 0},
        "parts_present": parts,
        "splits": splits,
    }


def manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    return (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()


def dataset_files(manifest: Mapping[str, Any], folder: Path | None = None) -> dict[str, bytes]:
    """The files that describe a dataset: manifest and card, by name (what a folder holds and a repo gets)."""
    from deepsynth_cli.data.card import card_text

    return {MANIFEST_FILE: manifest_bytes(manifest), CARD_FILE: card_text(dict(manifest), folder).encode()}


def write_dataset_files(folder: Path, manifest: Mapping[str, Any]) -> None:
    """Write the manifest and the dataset card atomically: the folder is ready to push as is. Parts finishing
    at the same time into one folder each write whole files (the temporary name is this process's own)."""
    for name, content in dataset_files(manifest, folder).items():
        partial = folder / f".{name}.{os.getpid()}.partial"
        partial.write_bytes(content)
        partial.replace(folder / name)


def read_local_manifest(folder: Path) -> dict[str, Any] | None:
    """A dataset folder's manifest, or None when it has none. Raises DatasetError when it is not JSON."""
    path = folder / MANIFEST_FILE
    if not path.is_file():
        return None
    return _parse_manifest(path, str(folder))


def _parse_manifest(path: Path, where: str) -> dict[str, Any] | None:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise DatasetError(f"{where}: {MANIFEST_FILE} is not valid JSON", hint="rerun generate") from error
    return manifest if isinstance(manifest, dict) else None


def read_manifest(location: DatasetLocation, settings: Settings) -> dict[str, Any] | None:
    """The dataset's manifest (render settings, counts), local or on the Hub, or None when it has none."""
    if location.kind == "local":
        return read_local_manifest(Path(str(location.path)))
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    try:
        path = hf_hub_download(
            str(location.repo_id), MANIFEST_FILE, repo_type="dataset", revision=location.revision, token=token
        )
    except EntryNotFoundError:
        return None
    return _parse_manifest(Path(path), str(location))


def manifest_rows(manifest: Mapping[str, Any] | None) -> dict[str, int]:
    """Rows per split a manifest records; empty for None or a manifest without splits."""
    try:
        return {name: int(split["rows"]) for name, split in (manifest or {}).get("splits", {}).items()}
    except (KeyError, TypeError, ValueError, AttributeError):
        return {}


# --- shards ----------------------------------------------------------------------------------------------------
def split_of(name: str) -> str:
    """The split a shard file belongs to, from its name (`test-00000-of-00001-00000.parquet` -> `test`)."""
    parsed = parse_shard_name(name)
    return str(parsed["split"]) if parsed else name.split("-")[0]


def local_shards(folder: Path) -> dict[str, list[Path]]:
    """The Parquet shards of a dataset folder per split, in file-name order (temporary files excluded)."""
    found: dict[str, list[Path]] = {}
    data = folder / DATA_DIR
    if data.is_dir():
        for path in sorted(data.glob("*.parquet")):
            found.setdefault(split_of(path.name), []).append(path)
    return found


def scan(folder: Path) -> dict[str, ShardMeta]:
    """Every finished deepsynth shard in a folder with its footer accounting, by file name."""
    return shards.scan(folder)


@dataclass
class Shard:
    """One Parquet shard opened (its footer read): row counts per row group, columns, rows by group."""

    name: str
    file: pq.ParquetFile

    @property
    def columns(self) -> list[str]:
        return list(self.file.schema_arrow.names)

    @property
    def schema(self) -> Any:
        return self.file.schema_arrow

    @property
    def num_rows(self) -> int:
        return int(self.file.metadata.num_rows)

    def group_rows(self) -> list[int]:
        """Rows in each row group, in order (from the footer: nothing else is read)."""
        meta = self.file.metadata
        return [meta.row_group(group).num_rows for group in range(meta.num_row_groups)]

    def read_group(self, group: int, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """The rows of one row group (at most `ROW_GROUP_ROWS`), with `columns` (all when None)."""
        table = self.file.read_row_group(group, columns=list(columns) if columns is not None else None)
        rows: list[dict[str, Any]] = table.to_pylist()
        return rows

    def read_column(self, column: str) -> list[Any]:
        values: list[Any] = self.file.read(columns=[column]).column(column).to_pylist()
        return values


def open_shard(path: str | Path, hub: HubDataset | None = None) -> Shard:
    """A shard of a local folder (a file path) or of a Hub repo (a path in the repo, read by HTTP range). Raises
    DamagedShardError, naming the file, when its Parquet footer cannot be read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path) if hub is None else hub.open_shard(str(path))
    except (pa.ArrowException, OSError) as error:
        if hub is not None and not isinstance(error, pa.ArrowException):
            raise
        raise shards.DamagedShardError(Path(str(path)), error) from error
    return Shard(Path(str(path)).name, file)
