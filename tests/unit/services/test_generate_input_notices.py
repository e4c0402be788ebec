"""generate on input that gives nothing, and on a folder that already holds more rows than --max-samples."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deepsynth_cli.config import GenerateConfig, RenderConfig
from deepsynth_cli.errors import DatasetError, OutputError
from deepsynth_cli.services import generate

MakeCfg = Callable[..., GenerateConfig]


def test_an_empty_file_is_an_error_with_a_hint(tmp_path: Path, generate_cfg: MakeCfg) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("", encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        generate.run(generate_cfg([str(path)]))
    assert caught.value.message == "empty: the source holds no rows (an empty file?)"
    assert caught.value.exit_code == 1 and "one document a line" in caught.value.hint


def test_a_file_whose_rows_are_all_skipped_says_why(
    make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]], generate_cfg: MakeCfg
) -> None:
    path = make_jsonl([{**article(n), "summary": ""} for n in range(3)])
    with pytest.raises(DatasetError, match=r"corpus: all 3 rows were skipped \(.* 3\), nothing rendered"):
        generate.run(generate_cfg([str(path)]))


def test_more_rows_than_max_samples_from_an_earlier_run_get_a_notice(
    make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]], generate_cfg: MakeCfg
) -> None:
    path = make_jsonl([article(n) for n in range(6)])
    generate.run(generate_cfg([str(path)]))
    notices: list[str] = []
    report = generate.run(generate_cfg([str(path)], max_samples=2), lambda e: notices.append(getattr(e, "message", "")))
    assert report.datasets[0].splits["train"].rows == 6
    expected = "corpus/train: 6 rows, more than --max-samples 2: an earlier run left them and they are kept"
    assert any(notice.startswith(expected) for notice in notices), notices


def test_other_settings_are_named_when_a_folder_holds_shards_made_differently(
    make_jsonl: Callable[..., Path],
    article: Callable[..., dict[str, Any]],
    generate_cfg: MakeCfg,
    small_render: RenderConfig,
) -> None:
    path = make_jsonl([article(n) for n in range(3)])
    generate.run(generate_cfg([str(path)]))
    bigger = small_render.model_copy(update={"font_size": 12.0})
    with pytest.raises(OutputError) as caught:
        generate.run(generate_cfg([str(path)], render=bigger, min_text_words=5))
    message = caught.value.message
    assert "already holds shards made with other settings" in message
    assert "render.font_size was 11.0, now 12.0" in message and "min_text_words was" in message
    assert "render.page_size" not in message, "only what differs is named"
