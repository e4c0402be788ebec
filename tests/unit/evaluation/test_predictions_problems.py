"""Every problem of a predictions file at once, with line numbers; the hint for a split a dataset lacks."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deepsynth_cli.config import GenerateConfig
from deepsynth_cli.data.store import resolve_dataset
from deepsynth_cli.errors import DatasetError
from deepsynth_cli.evaluation.rows import SplitReader, read_predictions, self_contained_rows
from deepsynth_cli.services import generate
from deepsynth_cli.settings import Settings


def test_format_problems_and_duplicates_are_reported_together_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    lines = ['{"id": "a", "prediction": "x"}', "not json", '{"id": "a", "prediction": "y"}', '{"id": "b"}']
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        read_predictions(path)
    message = caught.value.message
    assert "line 2: not JSON" in message and "line 4 (id b): no prediction field" in message
    assert "duplicate ids a (lines 1, 3)" in message


def test_a_self_contained_file_gets_every_class_of_problem_in_one_error(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    lines = [
        '{"id": "a", "prediction": "x", "reference": "r", "language": "en"}',
        "not json",
        '{"id": "b", "prediction": "y"}',
        '{"id": "a", "prediction": "z", "reference": "r", "language": "en"}',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        read_predictions(path, self_contained=True)
    assert caught.value.message == (
        f"{path}: line 2: not JSON, line 3 (id b): no reference or language, duplicate ids a (lines 1, 4)"
    )


def test_lines_without_reference_are_named_by_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    rows: list[dict[str, Any]] = [
        {"id": "ok", "prediction": "p", "reference": "r", "language": "en"},
        {"id": "no-ref", "prediction": "p", "language": "en"},
        {"id": "no-lang", "prediction": "p", "reference": "r"},
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        self_contained_rows(read_predictions(path))
    assert caught.value.message == "no reference or language for ids no-ref, no-lang (lines 2, 3)"


def test_a_dataset_rendered_from_one_file_gets_a_hint_that_can_work(
    tmp_path: Path,
    make_jsonl: Callable[..., Path],
    article: Callable[..., dict[str, Any]],
    generate_cfg: Callable[..., GenerateConfig],
) -> None:
    source = make_jsonl([article(n) for n in range(2)], name="notes.jsonl")  # one file: train only
    folder = Path(generate.run(generate_cfg([str(source)])).datasets[0].location)
    settings = Settings()
    with pytest.raises(DatasetError) as caught:
        SplitReader(resolve_dataset(str(folder), settings), "test", settings)
    assert "generate --split" not in caught.value.hint
    assert "--holdout 0.05,0.05" in caught.value.hint
    assert "train.jsonl, validation.jsonl and test.jsonl" in caught.value.hint
    carved = generate.run(generate_cfg([str(source)], out=tmp_path / "carved", holdout=(0.4, 0.4)))
    split = next(name for name in ("test", "validation") if carved.datasets[0].splits[name].rows)
    assert SplitReader(resolve_dataset(carved.datasets[0].location, settings), split, settings)  # the hint works


def test_a_text_over_the_per_document_limit_is_a_problem_of_its_line(tmp_path: Path) -> None:
    from deepsynth_cli.config import MAX_TEXT_CHARS

    path = tmp_path / "p.jsonl"
    huge = "word " * (MAX_TEXT_CHARS // 5 + 1)
    lines = [
        {"id": "a", "prediction": "x", "reference": "r", "language": "en", "source": "a fine source"},
        {"id": "b", "prediction": "y", "reference": "r", "language": "en", "source": huge},
        {"id": "c", "prediction": huge, "reference": "r", "language": "en"},
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        read_predictions(path, self_contained=True)
    message = caught.value.message
    assert f"line 2 (id b): source has {len(huge):,} characters, over the limit of {MAX_TEXT_CHARS:,}" in message
    assert "line 3 (id c): prediction has" in message and "line 1" not in message
