"""Shard files: the schema `datasets` expects, atomic commits, names that never collide."""

from __future__ import annotations

from pathlib import Path

import datasets
import pyarrow.parquet as pq

from deepsynth_cli.data import shards
from deepsynth_cli.data.shards import ShardMeta, ShardWriter


def test_row_schema_is_what_datasets_writes_for_these_features() -> None:
    features = datasets.Features(
        {
            "pages": datasets.List(datasets.Image()),
            **{name: datasets.Value("string") for name in ("text", "summary", "language")},
            **{name: datasets.Value("string") for name in ("source_dataset", "source_split", "source_id")},
            **{name: datasets.Value("int32") for name in ("num_pages", "text_tokens", "vision_tokens")},
            "truncated": datasets.Value("bool"),
            "dropped_chars": datasets.Value("int32"),
            "source_tokens": datasets.Value("int32"),
            "missing_glyphs": datasets.Value("int32"),
        }
    )
    assert features.arrow_schema.equals(shards.ROW_SCHEMA, check_metadata=True)
    assert features._to_yaml_list() == shards.hf_features_yaml()


def _meta(chunk: int = 0) -> ShardMeta:
    return ShardMeta(
        split="train", part=0, parts=1, chunk=chunk, first_position=0, positions=1, end="full", limit=None,
        fingerprint="f", rows=1, pages=1,
    )  # fmt: skip


def _row() -> dict[str, object]:
    return {
        "pages": shards.page_images([b"\x89PNG fake"]), "text": "t", "summary": "s", "language": "en",
        "source_dataset": "d", "source_split": "train", "source_id": "1", "num_pages": 1, "text_tokens": 1,
        "vision_tokens": 257, "truncated": False, "dropped_chars": 0,
    }  # fmt: skip


def test_commit_moves_a_whole_file_into_place_with_its_accounting(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, shards.shard_name("train", 0, 1, 0))
    writer.add(_row())
    assert not writer.path.exists(), "a shard must not be visible before it is complete"
    path = writer.commit(_meta())
    assert path.name == "train-00000-of-00001-00000.parquet"
    assert [p.name for p in (tmp_path / "data").iterdir()] == [path.name]
    assert shards.read_meta(path) == _meta()
    assert pq.read_table(path).num_rows == 1


def test_abort_leaves_nothing_and_partial_files_are_cleaned(tmp_path: Path) -> None:
    writer = ShardWriter(tmp_path, shards.shard_name("train", 0, 1, 0))
    for _ in range(shards.ROW_GROUP_ROWS + 1):  # forces a row group onto disk
        writer.add(_row())
    writer.abort()
    assert list((tmp_path / "data").iterdir()) == []
    stale = tmp_path / "data" / ".train-00000-of-00001-00001.parquet.partial"
    stale.write_bytes(b"half a shard")
    assert shards.remove_partial_files(tmp_path) == 1
    assert not stale.exists()


def test_scan_ignores_foreign_parquet_files(tmp_path: Path) -> None:
    ShardWriter(tmp_path, shards.shard_name("test", 1, 2, 3)).commit(_meta(3))
    pq.write_table(pq.read_table(next((tmp_path / "data").iterdir())), tmp_path / "data" / "other.parquet")
    assert list(shards.scan(tmp_path)) == ["test-00001-of-00002-00003.parquet"]


def test_names_round_trip_and_match_the_hub_split_pattern() -> None:
    name = shards.shard_name("validation", 3, 12, 41)
    assert shards.parse_shard_name(name) == {"split": "validation", "part": 3, "parts": 12, "chunk": 41}
    assert shards.parse_shard_name("train-0-of-1.parquet") is None
