"""`services.eval.run` on predictions (no model): metrics, baselines with the paired test, the three files."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from deepsynth_cli.evaluation.baselines import lead
from deepsynth_cli.evaluation.config import EvalConfig
from deepsynth_cli.services import eval as service
from tests.unit.evaluation.conftest import news_rows

NEWS = news_rows(12)


def _predictions(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    return path


def _run(tmp_path: Path, lines: list[dict[str, Any]], **values: Any) -> dict[str, Any]:
    cfg = EvalConfig(predictions=_predictions(tmp_path / "in.jsonl", lines), output=tmp_path / "out", **values)
    return service.run(cfg).metrics


def test_perfect_predictions_beat_both_baselines_and_every_file_is_written(news_data: Path, tmp_path: Path) -> None:
    lines = [{"id": row["id"], "prediction": row["summary"]} for row in NEWS]
    metrics = _run(tmp_path, lines, datasets=[str(news_data)])
    (group,) = metrics["groups"]
    assert (group["dataset"], group["language"], group["rows"]) == ("news", "en", 12)
    for metric in ("rouge1", "rouge2", "rougeL", "rougeLsum"):
        assert group["rouge"][metric]["f1"] == {"mean": 1.0, "low": 1.0, "high": 1.0}
    assert set(group["baselines"]) == {"lead-1", "lead-3"}
    for baseline in group["baselines"].values():
        assert 0 < baseline["rouge"]["rougeL"]["f1"]["mean"] < 1
        versus = baseline["versus_model"]["rougeL"]
        assert versus["verdict"] == "better" and versus["model_beats_baseline"] and versus["delta"] > 0
    # The summary is the second sentence: Lead-3 contains it and has perfect recall, Lead-1 does not.
    assert group["baselines"]["lead-3"]["rouge"]["rouge1"]["recall"]["mean"] == 1.0
    assert group["baselines"]["lead-1"]["rouge"]["rouge1"]["recall"]["mean"] < 1.0
    assert group["novel_ngrams"]["share"]["1"] == 0.0  # the summaries are copied from the text
    assert metrics["versions"]["deepsynth"] and "rouge-score" in metrics["versions"] and "torch" in metrics["versions"]
    assert metrics["settings"]["bootstrap"]["resamples"] == 1000 and metrics["settings"]["split"] == "test"
    out = tmp_path / "out"
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8")) == metrics
    written = [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [row["id"] for row in written] == [row["id"] for row in NEWS]
    assert written[0]["reference"] == NEWS[0]["summary"] and written[0]["scores"]["rougeL"]["f1"] == 1.0
    assert (out / "report.html").stat().st_size > 0


def test_a_baseline_against_itself_is_no_clear_difference(news_data: Path, tmp_path: Path) -> None:
    lines = [{"id": row["id"], "prediction": lead(row["text"], "en", 3)} for row in NEWS]
    (group,) = _run(tmp_path, lines, datasets=[str(news_data)], baselines=["lead-3"])["groups"]
    versus = group["baselines"]["lead-3"]["versus_model"]["rougeL"]
    assert (versus["delta"], versus["verdict"], versus["p_value"]) == (0.0, "no clear difference", 0.5)
    assert group["rouge"]["rougeL"] == group["baselines"]["lead-3"]["rouge"]["rougeL"]


def test_empty_predictions_score_zero_and_stay_in_the_mean(news_data: Path, tmp_path: Path) -> None:
    lines = [{"id": row["id"], "prediction": row["summary"] if i < 3 else ""} for i, row in enumerate(NEWS[:4])]
    (group,) = _run(tmp_path, lines, datasets=[str(news_data)])["groups"]
    assert group["rows"] == 4 and group["empty_predictions"] == 1
    assert group["rouge"]["rouge1"]["f1"]["mean"] == pytest.approx(0.75)
    assert group["lengths"]["empty"] == 1


def test_rows_are_grouped_per_language_and_scored_with_its_tokens(tmp_path: Path) -> None:
    lines = [
        {"id": "1", "prediction": "la réforme des retraites", "reference": "la réforme du code", "language": "fr"},
        {"id": "2", "prediction": "会议讨论了预算", "reference": "会议通过了预算", "language": "zh"},
        {"id": "3", "prediction": "نشرت الحكومة التقرير", "reference": "الحكومة نشرت تقريرا", "language": "ar"},
    ]
    metrics = _run(tmp_path, lines)
    by_language = {group["language"]: group for group in metrics["groups"]}
    assert set(by_language) == {"fr", "zh", "ar"}
    assert by_language["fr"]["rouge"]["rouge1"]["f1"]["mean"] == pytest.approx(2 / 4)  # la, réforme
    assert by_language["zh"]["rouge"]["rouge1"]["f1"]["mean"] == pytest.approx(5 / 7)  # 会 议 了 预 算
    assert by_language["ar"]["rouge"]["rouge1"]["f1"]["mean"] > 0
    # No source texts in the file: no baselines, and the report says why.
    assert all(group["baselines"] == {} and group["baselines_skipped"] for group in metrics["groups"])


def test_max_samples_draws_the_same_rows_every_run(news_data: Path, tmp_path: Path) -> None:
    lines = [{"id": row["id"], "prediction": row["summary"]} for row in NEWS]
    cfg = {"datasets": [str(news_data)], "max_samples": 5, "baselines": []}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = _run(tmp_path / "a", lines, **cfg), _run(tmp_path / "b", lines, **cfg)
    ids = [
        [json.loads(line)["id"] for line in (tmp_path / run / "out" / "predictions.jsonl").read_text().splitlines()]
        for run in ("a", "b")
    ]
    assert ids[0] == ids[1] and len(ids[0]) == 5 and ids[0] == sorted(ids[0])
    assert first["groups"][0]["rows"] == second["groups"][0]["rows"] == 5


def test_report_is_self_contained_and_escapes_the_texts(news_data: Path, tmp_path: Path) -> None:
    hostile = '<script>alert("x")</script> & <b>bold</b>'
    lines = [{"id": row["id"], "prediction": hostile if i == 0 else row["summary"]} for i, row in enumerate(NEWS)]
    _run(tmp_path, lines, datasets=[str(news_data)])
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "<script" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;" in html
    assert html.count("<svg") == 2  # score distribution, length against score
    images = re.findall(r'<img src="([^"]+)"', html)
    assert len(images) == 6 and all(src.startswith("data:image/jpeg;base64,") for src in images)
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing loaded from elsewhere
    for name in ("lead-1", "lead-3", "ROUGE-Lsum", "doc-000"):
        assert name in html
