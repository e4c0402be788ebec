"""`deepsynth validate --datasets ... --model ...` on datasets made by `generate`: a clean one scores 100, and each
test breaks exactly one thing and asserts the check, its severity, the exit code and the JSON."""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from typer.testing import CliRunner

from deepsynth_cli.cli.app import app
from deepsynth_cli.config import GenerateConfig, RenderConfig
from deepsynth_cli.services import generate, validate
from tests.unit.validation.test_validate_cli import failures, the_check

RENDER = RenderConfig(page_size=384, font_size=12, margin=12)
runner = CliRunner()
LONG = 300  # words: a document that fills about two 384 px pages (compression within bounds)


def render(datasets: list[str], out: Path, **overrides: Any) -> Path:
    values: dict[str, Any] = {"datasets": datasets, "out": out, "num_workers": 1, "render": RENDER, **overrides}
    report = generate.run(GenerateConfig(**values), lambda event: None)
    return Path(report.datasets[0].location)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(["aclsum"], tmp_path_factory.mktemp("clean"), max_samples=4)


@pytest.fixture
def copy(clean: Path, tmp_path: Path) -> Path:
    """A copy of the clean dataset for one test to break."""
    return Path(shutil.copytree(clean, tmp_path / "aclsum"))


def run(*args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["validate", *args, "--json"])
    assert result.stdout.strip(), result.output
    return result.exit_code, json.loads(result.stdout)


def rewrite_shard(folder: Path, split: str, change: Callable[[list[dict[str, Any]]], None]) -> None:
    (path,) = sorted((folder / "data").glob(f"{split}-*.parquet"))
    table = pq.read_table(path)
    rows = table.to_pylist()
    change(rows)
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)


def test_a_clean_generated_dataset_and_the_tiny_preset_score_100(clean: Path) -> None:
    code, report = run("--datasets", str(clean), "--model", "tiny", "--sample", "4")
    assert failures(report) == [], report
    assert (code, report["score"]) == (0, 100)
    names = {check["name"] for check in report["checks"]}
    for part in ("found", "schema", "images", "empty-text", "duplicates", "leakage", "row-counts", "truncation"):
        assert f"dataset:{clean}:{part}" in names
    assert {"model:tiny:load", "model:tiny:image-tokens", "model:tiny:special-tokens"} <= names
    assert report["seconds"] < 30


def test_a_corrupt_image_in_a_shard(copy: Path) -> None:
    def corrupt(rows: list[dict[str, Any]]) -> None:
        rows[1]["pages"][0]["bytes"] = rows[1]["pages"][0]["bytes"][:200]

    rewrite_shard(copy, "train", corrupt)
    code, report = run("--datasets", str(copy))
    check = the_check(report, f"dataset:{copy}:images")
    assert (check["status"], check["severity"]) == ("fail", "high") and "does not decode" in check["message"]
    assert failures(report) == [check["name"]]
    assert (code, report["score"]) == (1, 95)


def test_a_page_of_the_wrong_size(copy: Path) -> None:
    def shrink(rows: list[dict[str, Any]]) -> None:
        buffer = io.BytesIO()
        Image.new("L", (100, 100), 255).save(buffer, format="PNG")
        rows[0]["pages"][0]["bytes"] = buffer.getvalue()

    rewrite_shard(copy, "test", shrink)
    code, report = run("--datasets", str(copy))
    check = the_check(report, f"dataset:{copy}:images")
    assert check["severity"] == "high" and "100x100, not 384px" in check["message"]
    assert failures(report) == [check["name"]] and code == 1


def test_a_missing_column(copy: Path) -> None:
    (path,) = sorted((copy / "data").glob("validation-*.parquet"))
    pq.write_table(pq.read_table(path).drop_columns(["summary"]), path)
    code, report = run("--datasets", str(copy))
    check = the_check(report, f"dataset:{copy}:schema")
    assert (check["status"], check["severity"]) == ("fail", "critical") and "'summary'" in check["message"]
    assert code == 1


def test_an_empty_summary(copy: Path) -> None:
    def empty(rows: list[dict[str, Any]]) -> None:
        rows[2]["summary"] = "  "

    rewrite_shard(copy, "validation", empty)
    code, report = run("--datasets", str(copy))
    check = the_check(report, f"dataset:{copy}:empty-text")
    assert (check["status"], check["severity"]) == ("fail", "high") and "(summary)" in check["message"]
    assert failures(report) == [check["name"]]
    assert (code, report["score"]) == (1, 95)


def test_rows_missing_against_the_manifest(copy: Path) -> None:
    manifest = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))
    manifest["splits"]["train"]["rows"] = 5
    (copy / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    code, report = run("--datasets", str(copy))
    check = the_check(report, f"dataset:{copy}:row-counts")
    assert (check["status"], check["severity"]) == ("fail", "high")
    assert "train: 4 rows, manifest says 5" in check["message"]
    assert failures(report) == [check["name"]]
    assert (code, report["score"]) == (1, 95)


def test_an_unknown_dataset(tmp_path: Path) -> None:
    code, report = run("--datasets", "no-such-dataset")
    check = the_check(report, "dataset:no-such-dataset:found")
    assert (check["status"], check["severity"]) == ("fail", "critical") and "deepsynth generate" in check["hint"]
    assert (code, report["score"]) == (1, 90)


def test_a_test_row_leaked_into_train(
    tmp_path: Path, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    make_jsonl([article(i, LONG) for i in range(4)], "corpus/train.jsonl")
    make_jsonl([article(10, LONG), {**article(2, LONG), "id": "leaked"}], "corpus/test.jsonl")
    folder = render([str(tmp_path / "corpus")], tmp_path / "out")
    code, report = run("--datasets", str(folder))
    check = the_check(report, f"dataset:{folder}:leakage")
    assert (check["status"], check["severity"]) == ("fail", "critical")
    assert check["message"] == "1 test row(s) (1 distinct text(s)) also in train"
    assert failures(report) == [check["name"]]
    assert (code, report["score"]) == (1, 90)


def test_leaked_rows_are_counted_as_rows_and_as_distinct_texts(
    tmp_path: Path, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    make_jsonl([article(i, LONG) for i in range(4)], "corpus/train.jsonl")
    leaked = [{**article(2, LONG), "id": f"leaked-{n}"} for n in range(2)]
    make_jsonl([article(10, LONG), *leaked], "corpus/test.jsonl")
    folder = render([str(tmp_path / "corpus")], tmp_path / "out")
    _, report = run("--datasets", str(folder))
    leakage = the_check(report, f"dataset:{folder}:leakage")
    assert leakage["message"] == "2 test row(s) (1 distinct text(s)) also in train"


def test_duplicates_within_a_split_warn(
    tmp_path: Path, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    make_jsonl([article(0, LONG), article(1, LONG), {**article(1, LONG), "id": "again"}], "corpus/train.jsonl")
    folder = render([str(tmp_path / "corpus")], tmp_path / "out")
    code, report = run("--datasets", str(folder))
    check = the_check(report, f"dataset:{folder}:duplicates")
    assert (check["status"], check["severity"]) == ("warn", "medium") and "train: 1 duplicate" in check["message"]
    assert failures(report) == [check["name"]]
    assert (code, report["score"]) == (0, 98)


def test_a_script_without_a_font(
    tmp_path: Path, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    cuneiform = " ".join(["\U00012000\U00012001\U00012002"] * 20)
    text = article(1, LONG)["text"] + " " + cuneiform
    make_jsonl([article(0, LONG), {**article(1, LONG), "text": text}], "corpus/train.jsonl")
    folder = render([str(tmp_path / "corpus")], tmp_path / "out")
    code, report = run("--datasets", str(folder))
    check = the_check(report, f"dataset:{folder}:fonts")
    assert (check["status"], check["severity"]) == ("fail", "high") and "CUNEIFORM" in check["message"]
    assert failures(report) == [check["name"]]
    assert (code, report["score"]) == (1, 95)


def test_validate_and_the_rows_agree_on_a_private_use_character(
    tmp_path: Path, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    """U+E000 (private use) draws as an empty box: the rows count it and validate names it, by one rule."""
    text = article(1, LONG)["text"] + " \ue000\ue000"
    make_jsonl([article(0, LONG), {**article(1, LONG), "text": text}], "corpus/train.jsonl")
    folder = render([str(tmp_path / "corpus")], tmp_path / "out")
    _, report = run("--datasets", str(folder))
    check = the_check(report, f"dataset:{folder}:fonts")
    assert check["status"] == "fail" and "U+E000" in check["message"]
    counted = sum(sum(pq.read_table(shard).column("missing_glyphs").to_pylist()) for shard in folder.rglob("*.parquet"))
    assert counted == 2


def test_most_of_the_text_truncated_warns(tmp_path: Path) -> None:
    folder = render(["aclsum"], tmp_path / "out", max_samples=2, splits=["train"], render=RENDER.model_copy(
        update={"max_pages": 1}))  # fmt: skip
    code, report = run("--datasets", str(folder))
    check = the_check(report, f"dataset:{folder}:truncation")
    assert (check["status"], check["severity"]) == ("warn", "medium") and "did not fit" in check["message"]
    assert failures(report) == [check["name"]]
    assert (code, report["score"]) == (0, 98)


def test_mostly_empty_pages_warn_about_compression(
    tmp_path: Path, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    make_jsonl([article(i, words=12) for i in range(3)], "corpus/train.jsonl")
    folder = render([str(tmp_path / "corpus")], tmp_path / "out")
    code, report = run("--datasets", str(folder))
    check = the_check(report, f"dataset:{folder}:compression")
    assert (check["status"], check["severity"]) == ("warn", "medium") and "outside 1-20x" in check["message"]
    assert failures(report) == [check["name"]]
    assert (code, report["score"]) == (0, 98)


def test_the_service_runs_without_the_cli(clean: Path) -> None:
    report = validate.run(validate.ValidateConfig(datasets=[str(clean)], sample=2))
    assert report.score == 100 and report.exit_code == 0


def test_pages_counted_for_another_geometry_than_the_model_warn(tmp_path: Path) -> None:
    big = RENDER.model_copy(update={"page_size": 1024, "font_size": 18, "margin": 24})
    folder = render(["aclsum"], tmp_path / "out", max_samples=2, splits=["train"], render=big)
    code, report = run("--datasets", str(folder), "--model", "tiny")
    check = the_check(report, "model:tiny:dataset-geometry")
    assert (check["status"], check["severity"]) == ("warn", "medium") and "[257]" in check["message"]
    assert failures(report) == [check["name"]]
    assert (code, report["score"]) == (0, 98)


def test_a_dataset_without_its_manifest_warns(copy: Path) -> None:
    (copy / "manifest.json").unlink()
    code, report = run("--datasets", str(copy))
    check = the_check(report, f"dataset:{copy}:row-counts")
    assert (check["status"], check["severity"]) == ("warn", "medium")
    assert check["message"] == "no manifest.json" and "deepsynth generate" in check["hint"]
    assert failures(report) == [check["name"]]
    assert (code, report["score"]) == (0, 98)


def train_config(tmp_path: Path, *datasets: str) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text("data:\n  datasets: [" + ", ".join(f"'{name}'" for name in datasets) + "]\n", encoding="utf-8")
    return path


def test_a_train_config_without_datasets_flag_checks_its_own_datasets(clean: Path, tmp_path: Path) -> None:
    code, report = run("--config", str(train_config(tmp_path, str(clean))), "--sample", "2")
    for part in ("found", "schema", "images", "leakage", "row-counts"):
        assert the_check(report, f"dataset:{clean}:{part}")["status"] == "pass"
    assert failures(report) == [] and (code, report["score"]) == (0, 100)


def test_a_train_config_naming_a_dataset_that_does_not_exist(clean: Path, tmp_path: Path) -> None:
    config = train_config(tmp_path, str(clean), "never-generated")
    code, report = run("--config", str(config), "--sample", "2")
    check = the_check(report, "dataset:never-generated:found")
    assert (check["status"], check["severity"]) == ("fail", "critical") and "not found" in check["message"]
    assert failures(report) == [check["name"]]
    assert (code, report["score"]) == (1, 90)
    # --datasets says what to check: the config's own list is then not read.
    code, report = run("--config", str(config), "--datasets", str(clean), "--sample", "2")
    assert not any(check["name"].startswith("dataset:never-generated") for check in report["checks"])
    assert (code, report["score"]) == (0, 100)


def test_an_unreadable_dataset_of_a_train_config(copy: Path, tmp_path: Path) -> None:
    (path,) = sorted((copy / "data").glob("test-*.parquet"))
    path.write_bytes(b"not parquet")
    code, report = run("--config", str(train_config(tmp_path, str(copy))), "--sample", "2")
    check = the_check(report, f"dataset:{copy}:found")
    assert (check["status"], check["severity"]) == ("fail", "critical") and f"shard {path} is damaged" in check[
        "message"
    ]
    assert failures(report) == [check["name"]]
    assert (code, report["score"]) == (1, 90)
