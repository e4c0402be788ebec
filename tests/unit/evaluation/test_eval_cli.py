"""`deepsynth eval` as typed: --predictions with --json, and bad input as one clear error line with a hint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from deepsynth_cli.cli.app import app
from tests.unit.evaluation.conftest import news_rows


def _file(path: Path, lines: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return str(path)


def _eval(*args: str) -> Any:
    return CliRunner().invoke(app, ["eval", *args])


def test_predictions_joined_to_a_dataset_json_is_one_object(news_data: Path, tmp_path: Path) -> None:
    lines = [{"id": row["id"], "prediction": row["summary"]} for row in news_rows(12)]
    out = tmp_path / "out"
    result = _eval("--predictions", _file(tmp_path / "p.jsonl", lines), "-d", str(news_data), "-o", str(out), "--json")
    assert result.exit_code == 0, result.stderr
    metrics = json.loads(result.stdout)  # stdout is exactly one JSON object: the metrics
    assert metrics == json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["groups"][0]["rouge"]["rougeL"]["f1"]["mean"] == 1.0
    assert sorted(path.name for path in out.iterdir()) == ["metrics.json", "predictions.jsonl", "report.html"]


def test_human_output_is_a_table_per_dataset_with_the_baselines(news_data: Path, tmp_path: Path) -> None:
    lines = [{"id": row["id"], "prediction": row["summary"]} for row in news_rows(12)]
    result = _eval("--predictions", _file(tmp_path / "p.jsonl", lines), "--datasets", str(news_data), "-o", "out")
    assert result.exit_code == 0, result.stderr
    assert "news (en): 12 rows" in result.stdout
    assert "lead-1" in result.stdout and "lead-3" in result.stdout and "(better)" in result.stdout
    assert "wrote out/report.html" in result.stdout


def test_mismatched_ids_name_the_ids(news_data: Path, tmp_path: Path) -> None:
    lines = [{"id": "doc-001", "prediction": "x"}, {"id": "nope-7", "prediction": "y"}]
    result = _eval("--predictions", _file(tmp_path / "p.jsonl", lines), "--datasets", str(news_data))
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert "1 of 2 prediction ids are not in" in result.stderr and "nope-7" in result.stderr
    assert "hint:" in result.stderr and "source_id" in result.stderr
    assert not Path("eval-results/metrics.json").exists()


def test_missing_references_name_the_ids(tmp_path: Path) -> None:
    lines = [{"id": "a", "prediction": "x", "reference": "r", "language": "en"}, {"id": "b", "prediction": "y"}]
    result = _eval("--predictions", _file(tmp_path / "p.jsonl", lines))
    assert result.exit_code == 1
    assert "line 2 (id b): no reference or language" in result.stderr and "--datasets" in result.stderr


def test_unknown_dataset_and_bad_flags(tmp_path: Path) -> None:
    result = _eval("--model", "tiny", "--datasets", "no-such-dataset")
    assert result.exit_code == 1 and "rendered dataset 'no-such-dataset' not found" in result.stderr
    assert "deepsynth generate no-such-dataset" in result.stderr
    result = _eval("--model", "tiny", "--datasets", "x", "--num-beams", "0")
    assert result.exit_code == 2 and "generation.num_beams" in result.stderr
    result = _eval("--model", "tiny")
    assert result.exit_code == 2 and "--datasets" in result.stderr
    result = _eval("--predictions", str(tmp_path / "missing.jsonl"))
    assert result.exit_code == 1 and "predictions file not found" in result.stderr


def test_help_lists_the_flags_of_the_issue() -> None:
    result = CliRunner().invoke(app, ["eval", "--help"])
    assert result.exit_code == 0
    for flag in ("--model", "--predictions", "--datasets", "--split", "--max-samples", "--baselines", "--batch-size",
                 "--num-beams", "--max-new-tokens", "--output", "--config", "--json", "--rouge-scheme"):  # fmt: skip
        assert flag in result.stdout, flag
    assert "eval" in CliRunner().invoke(app, ["--help"]).stdout


def test_rows_without_a_language_need_language(tmp_path: Path) -> None:
    lines = [{"id": "a", "prediction": "the cat sat", "reference": "the cat sat down", "language": "und"}]
    path = _file(tmp_path / "p.jsonl", lines)
    result = _eval("--predictions", path)
    assert result.exit_code == 2 and "have no language ('und')" in result.stderr and "--language" in result.stderr
    result = _eval("--predictions", path, "--language", "en", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["groups"][0]["language"] == "en"
