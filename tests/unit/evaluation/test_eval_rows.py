"""Rows for eval: the seeded subset, reading a rendered split by position, predictions files and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepsynth_cli.data.store import resolve_dataset
from deepsynth_cli.errors import DatasetError
from deepsynth_cli.evaluation.rows import (
    SplitReader,
    dataset_rows,
    joined_rows,
    read_predictions,
    sample_indices,
    self_contained_rows,
)
from deepsynth_cli.settings import Settings
from tests.unit.evaluation.conftest import news_rows


def _reader(folder: Path, split: str = "test") -> SplitReader:
    settings = Settings()
    return SplitReader(resolve_dataset(str(folder), settings), split, settings)


def _write(path: Path, lines: list[object]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def test_the_subset_is_fixed_by_its_seed_sorted_and_without_repeats() -> None:
    first = sample_indices(1000, 50, seed=0)
    assert first == sample_indices(1000, 50, seed=0)  # the same rows every run
    assert first != sample_indices(1000, 50, seed=1)
    assert first == sorted(set(first)) and len(first) == 50 and all(0 <= i < 1000 for i in first)
    assert sample_indices(5, 50, seed=0) == [0, 1, 2, 3, 4]  # asking for more than there is gives all rows
    assert sample_indices(5, None, seed=0) == [0, 1, 2, 3, 4]


def test_rows_are_read_by_position_across_shards(news_data: Path) -> None:
    reader = _reader(news_data)
    assert len(reader) == 12 and len(list((news_data / "data").glob("test-*.parquet"))) > 1
    rows = dataset_rows(reader, "news", [0, 6, 11])
    expected = news_rows(12)
    assert [row.id for row in rows] == ["doc-000", "doc-006", "doc-011"]
    assert [row.reference for row in rows] == [expected[i]["summary"] for i in (0, 6, 11)]
    assert all(row.language == "en" and row.text_tokens and row.source for row in rows)
    (only_pages,) = [row for _, row in reader.read([6], ["pages"])]
    assert set(only_pages) == {"pages"} and only_pages["pages"][0]["bytes"].startswith(b"\x89PNG")


def test_a_missing_split_names_the_ones_there(news_data: Path) -> None:
    with pytest.raises(DatasetError, match=r"no 'validation' split \(it has: test\)"):
        _reader(news_data, "validation")


def test_predictions_file_errors_name_the_lines_and_ids(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "a", "prediction": "x"}\nnot json\n{"id": "b"}\n{"prediction": "y"}\n', encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        read_predictions(path)
    assert "line 2: not JSON" in caught.value.message
    assert "line 3 (id b): no prediction field" in caught.value.message
    assert "line 4: no id" in caught.value.message
    _write(path, [{"id": "a", "prediction": "x"}, {"id": "a", "prediction": "y"}])
    with pytest.raises(DatasetError, match="duplicate ids a"):
        read_predictions(path)
    with pytest.raises(DatasetError, match="not found"):
        read_predictions(tmp_path / "missing.jsonl")


def test_empty_and_null_predictions_are_kept_as_empty(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "p.jsonl",
        [
            {"id": "a", "prediction": "", "reference": "r a", "language": "en"},
            {"id": "b", "prediction": None, "reference": "r b", "language": "en"},
        ],
    )
    rows = self_contained_rows(read_predictions(path))
    assert [(row.id, row.prediction) for row in rows] == [("a", ""), ("b", "")]


def test_self_contained_lines_need_a_reference_and_a_language(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "p.jsonl",
        [
            {"id": "ok", "prediction": "p", "reference": "r", "language": "en"},
            {"id": "no-ref", "prediction": "p", "language": "en"},
            {"id": "no-lang", "prediction": "p", "reference": "r"},
        ],
    )
    with pytest.raises(DatasetError, match="no reference or language for ids no-ref, no-lang"):
        self_contained_rows(read_predictions(path))


def test_joined_rows_take_references_from_the_split_and_refuse_unknown_ids(news_data: Path, tmp_path: Path) -> None:
    readers = {"news": _reader(news_data)}
    good = _write(tmp_path / "good.jsonl", [{"id": "doc-003", "prediction": "p3"}, {"id": "doc-001", "prediction": ""}])
    rows = joined_rows(read_predictions(good), readers)
    assert [(row.id, row.prediction) for row in rows] == [("doc-001", ""), ("doc-003", "p3")]  # split order
    assert rows[1].reference == news_rows(12)[3]["summary"] and rows[1].source
    bad = _write(
        tmp_path / "bad.jsonl",
        [{"id": "doc-003", "prediction": "p"}, {"id": "zz-1", "prediction": "p"}, {"id": "zz-2", "prediction": "p"}],
    )
    with pytest.raises(DatasetError, match=r"2 of 3 prediction ids are not in .*: zz-1, zz-2"):
        joined_rows(read_predictions(bad), readers)


def test_with_several_datasets_each_line_names_its_dataset(news_data: Path, tmp_path: Path) -> None:
    readers = {"news": _reader(news_data), "again": _reader(news_data)}
    path = _write(tmp_path / "p.jsonl", [{"id": "doc-003", "prediction": "p"}])
    with pytest.raises(DatasetError, match="no dataset field for ids doc-003"):
        joined_rows(read_predictions(path), readers)
    path = _write(tmp_path / "p.jsonl", [{"id": "doc-003", "prediction": "p", "dataset": "other"}])
    with pytest.raises(DatasetError, match=r"doc-003 \(other\)"):
        joined_rows(read_predictions(path), readers)
