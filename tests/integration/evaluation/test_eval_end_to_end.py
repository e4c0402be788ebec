"""The whole path, offline, through the CLI: `generate aclsum` -> `train` (tiny preset, 2 steps) -> `eval`, with
one row whose pages are missing so that the model fails on it: recorded on its row, the others go on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("accelerate", reason="needs the train extra", exc_type=ModuleNotFoundError)

import pyarrow as pa
import pyarrow.parquet as pq
from typer.testing import CliRunner

from deepsynth_cli.cli.app import app

BROKEN = 1  # position in the test split of the row whose pages are removed


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.stderr
    return str(result.stdout)


def _remove_pages(dataset: Path, split: str, position: int) -> str:
    (shard,) = sorted((dataset / "data").glob(f"{split}-*.parquet"))
    table = pq.read_table(shard)
    rows = table.to_pylist()
    rows[position]["pages"] = []
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), shard)
    return str(rows[position]["source_id"])


def test_generate_train_eval_writes_metrics_predictions_and_report(tmp_path: Path) -> None:
    _invoke(
        "generate", "aclsum", "--max-samples", "4", "--out", str(tmp_path / "data"), "--store", "local",
        "--page-size", "384", "--font-size", "12", "--max-pages", "2", "--num-workers", "1",
    )  # fmt: skip
    rendered = tmp_path / "data" / "aclsum"
    _invoke(
        "train", "--datasets", str(rendered), "--model", "tiny", "--max-steps", "2", "--save-every", "2",
        "--batch-size", "2", "--output-dir", str(tmp_path / "run"),
    )  # fmt: skip
    evaluated = tmp_path / "eval-data" / "aclsum"
    shutil.copytree(rendered, evaluated)
    broken_id = _remove_pages(evaluated, "test", BROKEN)

    out = tmp_path / "out"
    stdout = _invoke(
        "eval", "--model", str(tmp_path / "run"), "--datasets", str(evaluated), "--split", "test",
        "--max-new-tokens", "8", "--batch-size", "4", "--output", str(out), "--json",
    )  # fmt: skip
    metrics = json.loads(stdout)
    assert metrics == json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["model"]["spec"] == str(tmp_path / "run") and metrics["model"]["render_settings"] == "checkpoint"
    assert {"deepsynth", "torch", "transformers", "rouge-score"} <= set(metrics["versions"])
    assert all(metrics["versions"][name] for name in ("deepsynth", "torch", "transformers", "rouge-score"))
    (group,) = metrics["groups"]
    assert (group["dataset"], group["language"], group["rows"]) == ("aclsum", "en", 4)
    assert group["errors"] == 1 and metrics["totals"]["errors"] == 1
    for name in ("lead-1", "lead-3"):  # baseline rows filled, with the paired test against the model
        baseline = group["baselines"][name]
        assert baseline["rouge"]["rouge1"]["f1"]["mean"] > 0
        assert baseline["versus_model"]["rougeL"]["verdict"] in {"better", "worse", "no clear difference"}
    # Compression: the rows' text tokens over the vision tokens of the pages the model was shown (145 per page).
    assert group["compression"]["vision_tokens"] % 145 == 0 and group["compression"]["rows"] == 3
    assert group["compression"]["ratio"] > 1
    assert metrics["generation"]["documents"] == 4 and metrics["generation"]["pages_per_s"] > 0

    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 4
    failed = [row for row in rows if row["error"]]
    assert [row["id"] for row in failed] == [broken_id] and failed[0]["prediction"] == ""
    assert failed[0]["scores"]["rouge1"]["f1"] == 0.0  # scored as empty, kept in the mean
    for row in rows:
        if not row["error"]:
            assert row["prediction"] and row["reference"] and 0 < row["new_tokens"] <= 8
            assert row["vision_tokens"] == 145 * row["pages"]

    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count("<svg") == 2 and html.count('<img src="data:image/jpeg;base64,') == 3  # the broken row has none
    assert "lead-3" in html and "failed: " in html and "at most 8 new tokens" in html
