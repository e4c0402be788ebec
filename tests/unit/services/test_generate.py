"""`generate` end to end on CPU: real sources, real renderer, real Parquet, loaded back with `datasets`."""

from __future__ import annotations

import io
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import pyarrow.parquet as pq
import pytest
from PIL import Image

from deepsynth_cli.config import GenerateConfig
from deepsynth_cli.data import shards
from deepsynth_cli.data.sources import Document
from deepsynth_cli.errors import DatasetError, OutputError
from deepsynth_cli.services import generate
from deepsynth_cli.services.generate import Advanced, ShardWritten, SplitStarted

MakeCfg = Callable[..., GenerateConfig]


def rows_of(folder: Path) -> list[dict[str, Any]]:
    return [row for path in sorted((folder / "data").glob("*.parquet")) for row in pq.read_table(path).to_pylist()]


def test_aclsum_offline_loads_back_with_datasets(generate_cfg: MakeCfg) -> None:
    events: list[object] = []
    report = generate.run(generate_cfg(["aclsum"], max_samples=3), events.append)
    folder = Path(report.datasets[0].location)
    assert sorted(p.name for p in (folder / "data").iterdir()) == [
        "test-00000-of-00001-00000.parquet",
        "train-00000-of-00001-00000.parquet",
        "validation-00000-of-00001-00000.parquet",
    ]
    loaded = datasets.load_dataset(str(folder))
    assert set(loaded) == {"train", "validation", "test"}
    assert {name: loaded[name].num_rows for name in loaded} == {"train": 3, "validation": 3, "test": 3}
    row = loaded["test"][0]
    page = row["pages"][0]
    assert isinstance(page, Image.Image) and page.size == (256, 256) and page.mode == "L"
    assert row["num_pages"] == len(row["pages"]) >= 1
    assert row["vision_tokens"] == 145 * row["num_pages"]
    assert row["text_tokens"] > 100
    assert row["language"] == "en" and row["source_dataset"] == "aclsum"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["splits"]["test"]["rows"] == 3
    assert manifest["render"]["page_size"] == 256
    assert manifest["model_geometry"]["vision_tokens_per_page"] == 145
    assert any(isinstance(e, SplitStarted) and e.total == 3 for e in events)
    assert sum(e.documents for e in events if isinstance(e, Advanced)) == 9
    assert sum(1 for e in events if isinstance(e, ShardWritten)) == 3


def test_source_splits_stay_apart(generate_cfg: MakeCfg) -> None:
    report = generate.run(generate_cfg(["aclsum"], max_samples=4))
    folder = Path(report.datasets[0].location)
    by_file: dict[str, set[str]] = {}
    for path in (folder / "data").glob("*.parquet"):
        table = pq.read_table(path, columns=["source_split", "source_id"]).to_pylist()
        assert len({row["source_split"] for row in table}) == 1
        by_file[path.name.split("-")[0]] = {row["source_id"] for row in table}
    assert {row["source_split"] for row in pq.read_table(next((folder / "data").glob("validation-*"))).to_pylist()} == {
        "val"
    }
    assert not by_file["train"] & by_file["test"]
    assert not by_file["train"] & by_file["validation"]


def test_unusable_rows_are_skipped_and_counted_per_reason(
    generate_cfg: MakeCfg, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    rows = [article(0), {"id": "e", "text": "   ", "summary": "A fine summary."}, article(1)]
    rows += [
        {"id": "s", "text": article(2)["text"], "summary": ""},
        {"id": "short", "text": "Too short.", "summary": "Sum."},
    ]
    rows += [{"id": "long", "text": " ".join(["x"] * 12), "summary": " ".join(["y"] * 20)}]
    report = generate.run(generate_cfg([str(make_jsonl(rows))]))
    split = report.datasets[0].splits["train"]
    assert split.rows == 2
    assert split.skipped == {
        "empty_text": 1,
        "empty_summary": 1,
        "text_too_short": 1,
        "summary_not_shorter_than_text": 1,
    }
    assert [row["source_id"] for row in rows_of(Path(report.datasets[0].location))] == ["doc-00000", "doc-00001"]


def test_a_document_over_the_size_limit_is_skipped_and_counted(
    generate_cfg: MakeCfg, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    huge = {"id": "huge", "text": "word " * 2_000, "summary": "A summary of a huge text."}  # 10,000 characters
    path = make_jsonl([article(0), huge, article(1)])
    report = generate.run(generate_cfg([str(path)], max_text_chars=9_999))
    split = report.datasets[0].splits["train"]
    assert split.rows == 2 and split.skipped == {"text_too_long": 1}
    folder = Path(report.datasets[0].location)
    assert [row["source_id"] for row in rows_of(folder)] == ["doc-00000", "doc-00001"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["fingerprint_inputs"]["max_text_chars"] == 9_999  # a setting that changes the rows
    at_limit = generate.run(generate_cfg([str(path)], out=folder.parent / "again", max_text_chars=10_000))
    assert at_limit.datasets[0].splits["train"].rows == 3, "a document of exactly the limit is kept"

    only_huge = make_jsonl([huge], name="alone/train.jsonl")
    with pytest.raises(DatasetError) as refused:
        generate.run(generate_cfg([str(only_huge)], out=folder.parent / "alone", max_text_chars=100))
    assert "text_too_long 1" in str(refused.value) and "--max-text-chars" in (refused.value.hint or "")


def test_words_past_the_first_ten_thousand_characters_still_count(generate_cfg: MakeCfg) -> None:
    # The minimum is settled on a head of the text when the head has enough words; else the whole text counts.
    late = "-" * 12_000 + " " + " ".join(f"word{n}" for n in range(12))
    assert generate.skip_reason(Document("a", late, "a short summary", "en"), generate_cfg(["x"])) is None
    few = "-" * 12_000 + " only three words"
    assert generate.skip_reason(Document("b", few, "a short summary", "en"), generate_cfg(["x"])) == "text_too_short"


def test_long_document_is_flagged_not_clipped(generate_cfg: MakeCfg, make_jsonl: Callable[..., Path]) -> None:
    long_text = " ".join(f"token{n}" for n in range(4000))
    path = make_jsonl([{"id": "long", "text": long_text, "summary": "A summary of a long text."}])
    cfg = generate_cfg([str(path)])
    report = generate.run(cfg.model_copy(update={"render": cfg.render.model_copy(update={"max_pages": 2})}))
    (row,) = rows_of(Path(report.datasets[0].location))
    assert row["truncated"] is True
    assert row["num_pages"] == 2
    assert 0 < row["dropped_chars"] < len(long_text)
    assert row["text"] == long_text, "the stored text is the whole document"
    assert report.datasets[0].splits["train"].truncated_rows == 1


def test_rerun_reuses_finished_shards_and_keeps_every_row_once(
    generate_cfg: MakeCfg, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    path = make_jsonl([article(n) for n in range(11)])
    first = generate.run(generate_cfg([str(path)], rows_per_shard=4, max_samples=6))
    assert first.datasets[0].splits["train"].rows == 6
    folder = Path(first.datasets[0].location)
    untouched = (folder / "data" / "train-00000-of-00001-00000.parquet").stat().st_mtime_ns

    second = generate.run(generate_cfg([str(path)], rows_per_shard=4))
    split = second.datasets[0].splits["train"]
    assert (split.rows, split.shards_reused, split.shards_written) == (11, 1, 2)
    assert (folder / "data" / "train-00000-of-00001-00000.parquet").stat().st_mtime_ns == untouched
    ids = [row["source_id"] for row in rows_of(folder)]
    assert sorted(ids) == [f"doc-{n:05d}" for n in range(11)]

    third = generate.run(generate_cfg([str(path)], rows_per_shard=4))
    assert third.datasets[0].splits["train"].shards_written == 0, "a complete split is not rendered again"
    assert sorted(row["source_id"] for row in rows_of(folder)) == sorted(ids)


def test_missing_shard_is_rebuilt_and_half_written_files_removed(
    generate_cfg: MakeCfg, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    path = make_jsonl([article(n) for n in range(9)])
    report = generate.run(generate_cfg([str(path)], rows_per_shard=3))
    folder = Path(report.datasets[0].location)
    (folder / "data" / "train-00000-of-00001-00001.parquet").unlink()
    (folder / "data" / ".train-00000-of-00001-00001.parquet.partial").write_bytes(b"killed mid-write")
    again = generate.run(generate_cfg([str(path)], rows_per_shard=3)).datasets[0].splits["train"]
    assert again.shards_written == 1
    assert sorted(row["source_id"] for row in rows_of(folder)) == [f"doc-{n:05d}" for n in range(9)]
    assert not list((folder / "data").glob(".*"))


def test_num_shards_partitions_are_disjoint_and_complete(
    generate_cfg: MakeCfg, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    path = make_jsonl([article(n) for n in range(10)])
    seen: list[set[str]] = []
    for index in range(3):
        report = generate.run(generate_cfg([str(path)], num_shards=3, shard_index=index, rows_per_shard=2))
        folder = Path(report.datasets[0].location)
        part = [p for p in (folder / "data").glob(f"train-{index:05d}-of-00003-*.parquet")]
        seen.append({row["source_id"] for p in part for row in pq.read_table(p).to_pylist()})
    assert [len(ids) for ids in seen] == [4, 3, 3]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    assert set().union(*seen) == {f"doc-{n:05d}" for n in range(10)}
    loaded = datasets.load_dataset(str(folder), split="train")
    assert Counter(loaded["source_id"]) == Counter(f"doc-{n:05d}" for n in range(10))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["splits"]["train"]["rows"] == 10 and manifest["parts_present"] == [0, 1, 2]


def test_changed_settings_are_refused_instead_of_mixed(
    generate_cfg: MakeCfg, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    path = make_jsonl([article(n) for n in range(3)])
    generate.run(generate_cfg([str(path)]))
    cfg = generate_cfg([str(path)])
    bigger = cfg.model_copy(update={"render": cfg.render.model_copy(update={"page_size": 384})})
    with pytest.raises(OutputError, match="other settings"):
        generate.run(bigger)
    with pytest.raises(OutputError, match="--num-shards 1"):
        generate.run(generate_cfg([str(path)], num_shards=2))
    assert len(rows_of(Path(cfg.out or "") / "corpus")) == 3, "refusing must not touch what was written"


def test_preview_writes_pngs_and_no_shards(generate_cfg: MakeCfg, tmp_path: Path) -> None:
    report = generate.run(generate_cfg(["aclsum"], splits=["test"], preview=tmp_path / "look", preview_docs=2))
    assert report.preview_files and all(p.suffix == ".png" for p in report.preview_files)
    assert {p.name.split("-")[1] for p in report.preview_files} == {"000", "001"}
    assert Image.open(io.BytesIO(report.preview_files[0].read_bytes())).size == (256, 256)
    assert not (tmp_path / "out").exists()


def test_unknown_dataset_fails_before_anything_is_written(generate_cfg: MakeCfg, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="mlsum_fr"):
        generate.run(generate_cfg(["aclsum", "mlsum_frr"]))
    assert not (tmp_path / "out").exists()


def test_report_is_json_serialisable(generate_cfg: MakeCfg) -> None:
    report = generate.run(generate_cfg(["aclsum"], max_samples=1, splits=["train"])).to_dict()
    dumped = json.loads(json.dumps(report))
    (dataset,) = dumped["datasets"]
    assert dataset["rows"] == {"train": 1}
    assert dataset["skipped"] == {}
    assert dataset["splits"]["train"]["compression"] > 0
    assert dumped["seconds"] >= 0


def test_a_split_of_an_exact_multiple_of_rows_per_shard_is_seen_complete(
    generate_cfg: MakeCfg, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    """8 rows in shards of 4: the last shard is full and also ends the source, so a rerun does not stream it again."""
    cfg = generate_cfg([str(make_jsonl([article(n) for n in range(8)]))], rows_per_shard=4)
    report = generate.run(cfg)
    metas = sorted(shards.scan(Path(report.datasets[0].location)).values(), key=lambda m: m.chunk)
    assert [(m.positions, m.end) for m in metas] == [(4, "full"), (4, "exhausted")]
    events: list[Any] = []
    generate.run(cfg, on_event=events.append)
    notices = [getattr(event, "message", "") for event in events]
    assert any("already complete (8 rows), nothing to do" in notice for notice in notices), notices


def test_shard_footers_account_for_every_source_row(
    generate_cfg: MakeCfg, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    rows = [article(n) for n in range(5)] + [{"id": "x", "text": "", "summary": ""}]
    report = generate.run(generate_cfg([str(make_jsonl(rows))], rows_per_shard=4))
    metas = sorted(shards.scan(Path(report.datasets[0].location)).values(), key=lambda m: m.chunk)
    assert [(m.first_position, m.positions, m.end) for m in metas] == [(0, 4, "full"), (4, 2, "exhausted")]
    assert sum(m.rows + sum(m.skipped.values()) for m in metas) == 6
