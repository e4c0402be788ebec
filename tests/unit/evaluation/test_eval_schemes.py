"""`eval` and ROUGE schemes: each dataset's default, the override, the record in every file, and the guard
against putting numbers scored differently side by side."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from deepsynth_cli.cli.app import app
from deepsynth_cli.config import load_config
from deepsynth_cli.errors import ConfigError
from deepsynth_cli.evaluation.config import EvalConfig
from deepsynth_cli.evaluation.rouge import Pair, score
from deepsynth_cli.services import eval as service
from tests.unit.evaluation.conftest import news_rows

CHINESE = [
    ("1", "香港警方说，2020年有超过一万人被捕！", "警方表示去年有一万多人被逮捕。"),
    ("2", "联合国表示，这场冲突已导致数百万人流离失所", "联合国：冲突使数百万人无家可归"),
]
ENGLISH = [("3", "The council approved the budget.", "The council approved the new budget on Monday.")]


def _lines() -> list[dict[str, Any]]:
    lines = [
        {"id": i, "prediction": p, "reference": r, "language": "zh-Hans", "dataset": "xlsum_chinese_simplified"}
        for i, p, r in CHINESE
    ]
    english = [{"id": i, "prediction": p, "reference": r, "language": "en", "dataset": "notes"} for i, p, r in ENGLISH]
    return lines + english


def _file(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    return path


def _run(predictions: Path, output: Path, **values: Any) -> tuple[dict[str, Any], list[str]]:
    notices: list[str] = []
    cfg = EvalConfig(predictions=predictions, output=output, baselines=[], **values)

    def collect(event: service.Event) -> None:
        if isinstance(event, service.Notice):
            notices.append(event.message)

    return service.run(cfg, collect).metrics, notices


def test_each_dataset_gets_its_papers_scheme_recorded_everywhere(tmp_path: Path) -> None:
    metrics, notices = _run(_file(tmp_path / "in.jsonl", _lines()), tmp_path / "out")
    groups = {group["dataset"]: group for group in metrics["groups"]}
    assert groups["xlsum_chinese_simplified"]["rouge_scheme"]["name"] == "xlsum"
    assert groups["xlsum_chinese_simplified"]["rouge_scheme"]["segmenter"] == "jieba"
    assert groups["notes"]["rouge_scheme"]["name"] == "deepsynth"  # not in the registry: the default
    assert metrics["rouge_schemes"] == {"xlsum": ["xlsum_chinese_simplified (zh-Hans)"], "deepsynth": ["notes (en)"]}
    # The numbers are the xlsum scheme's (jieba words), not deepsynth's characters.
    want = score([Pair(p, r) for _, p, r in CHINESE], "zh-Hans", "xlsum")
    mean = sum(row["rouge1"].f1 for row in want) / len(want)
    assert groups["xlsum_chinese_simplified"]["rouge"]["rouge1"]["f1"]["mean"] == pytest.approx(mean)
    mixed = [notice for notice in notices if "different ROUGE schemes" in notice]
    assert mixed and "compare numbers within one only" in mixed[0]
    out = tmp_path / "out"
    written = [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {line["dataset"]: line["rouge_scheme"] for line in written} == {
        "xlsum_chinese_simplified": "xlsum",
        "notes": "deepsynth",
    }
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "ROUGE schemes:" in report and "Numbers under different schemes are not comparable" in report
    assert "Segmenter jieba" in report


def test_the_flag_overrides_every_default(tmp_path: Path) -> None:
    metrics, notices = _run(_file(tmp_path / "in.jsonl", _lines()), tmp_path / "out", rouge_scheme="deepsynth")
    assert metrics["rouge_schemes"] == {"deepsynth": ["xlsum_chinese_simplified (zh-Hans)", "notes (en)"]}
    assert metrics["settings"]["rouge_scheme"] == "deepsynth"
    assert not any("ROUGE scheme" in notice for notice in notices)
    with pytest.raises(ConfigError, match="rouge_scheme"):
        load_config(EvalConfig, None, {"predictions": "p.jsonl", "rouge_scheme": "rouge155"})


def test_rescoring_a_run_says_when_the_scheme_changed(tmp_path: Path) -> None:
    first, _ = _run(_file(tmp_path / "in.jsonl", _lines()), tmp_path / "first")
    again, notices = _run(tmp_path / "first" / "predictions.jsonl", tmp_path / "again")
    assert [group["rouge"] for group in again["groups"]] == [group["rouge"] for group in first["groups"]]
    assert not any("rescored" in notice for notice in notices)
    _, notices = _run(tmp_path / "first" / "predictions.jsonl", tmp_path / "other", rouge_scheme="rouge_score")
    changed = [notice for notice in notices if "rescored here with rouge_score" in notice]
    assert len(changed) == 2 and "not comparable" in changed[0] and "--rouge-scheme xlsum" in " ".join(changed)


def test_a_file_that_mixes_schemes_for_one_dataset_is_refused(tmp_path: Path) -> None:
    _run(_file(tmp_path / "in.jsonl", _lines()), tmp_path / "a", rouge_scheme="xlsum")
    lines = [json.loads(line) for line in (tmp_path / "a" / "predictions.jsonl").read_text("utf-8").splitlines()]
    lines[1]["rouge_scheme"] = "deepsynth"  # as if two runs' lines were pasted together
    with pytest.raises(ConfigError, match="mixes rows of xlsum_chinese_simplified scored with different ROUGE schemes"):
        _run(_file(tmp_path / "mixed.jsonl", lines), tmp_path / "b")


def test_a_rendered_dataset_takes_the_scheme_of_the_source_its_manifest_names(news_data: Path, tmp_path: Path) -> None:
    # The same rendered rows, as if generated from the registry's cnn_dailymail: its papers score with rouge_score.
    copy = tmp_path / "news"
    shutil.copytree(news_data, copy)
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    manifest["source"]["key"] = "cnn_dailymail"
    (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    lines = [{"id": row["id"], "prediction": row["summary"]} for row in news_rows(12)]
    predictions = _file(tmp_path / "p.jsonl", lines)
    metrics, _ = _run(predictions, tmp_path / "out", datasets=[str(copy)])
    assert metrics["groups"][0]["rouge_scheme"]["name"] == "rouge_score"
    metrics, _ = _run(predictions, tmp_path / "plain", datasets=[str(news_data)])
    assert metrics["groups"][0]["rouge_scheme"]["name"] == "deepsynth"


def test_cli_flag_and_table_title_name_the_scheme(tmp_path: Path) -> None:
    path = str(_file(tmp_path / "in.jsonl", _lines()[:2]))
    result = CliRunner().invoke(app, ["eval", "--predictions", path, "-o", str(tmp_path / "o"), "--baselines", "none"])
    assert result.exit_code == 0, result.stderr
    assert "ROUGE scheme xlsum" in result.stdout
    args = ["eval", "--predictions", path, "-o", str(tmp_path / "o2"), "--rouge-scheme", "deepsynth", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["groups"][0]["rouge_scheme"]["name"] == "deepsynth"
    result = CliRunner().invoke(app, ["eval", "--predictions", path, "--rouge-scheme", "rouge155"])
    assert result.exit_code == 2 and "rouge_scheme" in result.stderr


def test_a_missing_segmenter_stops_a_model_run_before_the_model_loads(
    news_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deepsynth_cli.evaluation import rouge

    rouge.xlsum_tokenizer.cache_clear()
    monkeypatch.setitem(sys.modules, "pyonmttok", None)  # as if the eval-xlsum extra were not installed
    notices: list[str] = []
    cfg = EvalConfig(model="tiny", datasets=[str(news_data)], output=tmp_path / "out", rouge_scheme="xlsum")
    with pytest.raises(ConfigError, match="needs pyonmttok") as raised:
        service.run(cfg, lambda event: notices.append(str(event)))
    assert "deepsynth[eval-xlsum]" in raised.value.hint
    assert not any("loading" in notice for notice in notices) and not (tmp_path / "out" / "metrics.json").exists()
    rouge.xlsum_tokenizer.cache_clear()
