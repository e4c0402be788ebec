"""Hub ids as sources, read with the real `datasets` and `huggingface_hub` clients from the loopback Hub: a language
per row, and parts that fetch only their own row groups of a repo of Parquet files."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from huggingface_hub import HfApi

from deepsynth_cli.config import GenerateConfig, RenderConfig
from deepsynth_cli.data.sources import ROUND_ROBIN, ROW_RANGES, HubSource, open_source
from deepsynth_cli.errors import DatasetError
from deepsynth_cli.services import generate
from tests.support.hub_fixture import HubEnv

pytestmark = pytest.mark.hub
REPO = "test-user/sums"
LANGS = ("fr", "de", "", "es")  # "" falls back to the source's language


def _words(seed: int, count: int) -> str:
    """Text Parquet cannot compress away, so that bytes on the wire follow the rows asked for."""
    draw = random.Random(seed)
    return " ".join(f"{draw.getrandbits(40):010x}" for _ in range(count))


def _rows(start: int, count: int) -> list[dict[str, Any]]:
    return [
        {"body": f"Body of document {n}. " + _words(n, 400), "tldr": f"Doc {n}.",
         "lang": LANGS[n % len(LANGS)], "extra": _words(-n - 1, 400)}
        for n in range(start, start + count)
    ]  # fmt: skip


def _publish(tmp_path: Path, files: dict[str, list[dict[str, Any]]], row_group_size: int = 8) -> dict[str, int]:
    """Upload Parquet files (path in repo -> rows) to REPO with the real client; returns each file's size."""
    folder = tmp_path / "upload"
    sizes = {}
    for name, rows in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=row_group_size)
        sizes[name] = path.stat().st_size
    api = HfApi()
    api.create_repo(REPO, repo_type="dataset")
    api.upload_folder(folder_path=folder, repo_id=REPO, repo_type="dataset")
    return sizes


def test_bare_hub_id_reads_a_language_per_row(hub_env: HubEnv, tmp_path: Path) -> None:
    _publish(tmp_path, {"data/train-00000-of-00001.parquet": _rows(0, 8)})
    auto = open_source(REPO, text_column="body", summary_column="tldr")
    assert [document.language for document in auto.documents("train")] == ["fr", "de", "und", "es"] * 2
    named = open_source(REPO, text_column="body", summary_column="tldr", language_column="lang", language="en")
    assert [document.language for document in named.documents("train")][:4] == ["fr", "de", "en", "es"]
    # --language without --language-column: one language for the whole dataset, the column is not used.
    whole = open_source(REPO, text_column="body", summary_column="tldr", language="pt")
    assert {document.language for document in whole.documents("train")} == {"pt"}
    missing = open_source(REPO, text_column="body", summary_column="tldr", language_column="locale")
    with pytest.raises(DatasetError, match="'locale'"):
        next(missing.documents("train"))


def test_parts_read_only_their_row_groups_from_the_hub(hub_env: HubEnv, tmp_path: Path) -> None:
    files = {"data/train-00000-of-00002.parquet": _rows(0, 64), "data/train-00001-of-00002.parquet": _rows(64, 64)}
    sizes = _publish(tmp_path, files)
    source = open_source(REPO, text_column="body", summary_column="tldr")
    assert isinstance(source, HubSource)
    whole = list(source.documents("train"))
    assert len(whole) == 128

    read: list[int] = []
    for count in (1, 2, 4):
        union = []
        for index in range(count):
            fresh = open_source(REPO, text_column="body", summary_column="tldr")  # footers not yet read
            fresh.splits()  # what `datasets` reads to list the splits is the same with or without parts
            before = len(hub_env.server.requests)
            part = fresh.part("train", index, count)
            assert part.scheme == (ROW_RANGES if count > 1 else ROUND_ROBIN)
            documents = list(part)
            if count > 1:
                assert part.rows == len(documents) == 128 // count
            union += documents
            if count == 4:
                read.append(hub_env.server.bytes_served(sizes, before))
        # Contiguous ranges: parts one after another are the split in order, ids and languages included.
        assert union == whole, count
    # Footers of both files (64 KiB each), then the row groups of a quarter of the rows and only the columns used
    # ("extra" is never fetched): under a quarter of the files, where streaming the split fetches all of them.
    assert max(read) < sum(sizes.values()) / 4, (read, sizes)


def test_parts_keep_the_first_max_samples_rows(hub_env: HubEnv, tmp_path: Path) -> None:
    _publish(tmp_path, {"data/train-00000-of-00001.parquet": _rows(0, 40)})
    source = open_source(REPO, text_column="body", summary_column="tldr")
    parts = [source.part("train", index, 3, limit=20) for index in range(3)]
    documents = [[document.source_id for document in part] for part in parts]
    assert [part.rows for part in parts] == [len(ids) for ids in documents] == [13, 7, 0]
    assert [part.limited for part in parts] == [False, True, True]
    # The rows have no `id` column: each is named by its row number in the split, as a whole-split read names it.
    assert [source_id for ids in documents for source_id in ids] == [f"train-{n}" for n in range(20)]


def test_a_hub_dataset_of_json_lines_is_dealt_round_robin(hub_env: HubEnv, tmp_path: Path) -> None:
    folder = tmp_path / "upload" / "data"
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in _rows(0, 9)), encoding="utf-8")
    api = HfApi()
    api.create_repo(REPO, repo_type="dataset")
    api.upload_folder(folder_path=folder.parent, repo_id=REPO, repo_type="dataset")
    source = open_source(REPO, text_column="body", summary_column="tldr")
    parts = [source.part("train", index, 2) for index in range(2)]
    assert {part.scheme for part in parts} == {ROUND_ROBIN}
    ids = [[document.source_id for document in part] for part in parts]
    assert ids == [[f"train-{n}" for n in range(0, 9, 2)], [f"train-{n}" for n in range(1, 9, 2)]]


def test_generate_two_parts_of_a_hub_id(hub_env: HubEnv, tmp_path: Path, small_render: RenderConfig) -> None:
    _publish(tmp_path, {"data/train-00000-of-00001.parquet": _rows(0, 10)}, row_group_size=3)
    for index in range(2):
        cfg = GenerateConfig(
            datasets=[REPO], text_column="body", summary_column="tldr", out=tmp_path / "out", store="local",
            num_workers=1, num_shards=2, shard_index=index, render=small_render,
        )  # fmt: skip
        generate.run(cfg)
    folder = tmp_path / "out" / "test-user__sums"
    for index, expected in ((0, range(0, 5)), (1, range(5, 10))):
        files = sorted((folder / "data").glob(f"train-{index:05d}-of-00002-*.parquet"))
        rows = [row for path in files for row in pq.read_table(path, columns=["source_id", "language"]).to_pylist()]
        assert [row["source_id"] for row in rows] == [f"train-{n}" for n in expected]
        assert [row["language"] for row in rows] == [LANGS[n % 4] or "und" for n in expected]
