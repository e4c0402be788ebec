"""The `deepsynth` CLI as a user types it (Typer's CliRunner): output channels, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deepsynth_cli import __version__
from deepsynth_cli.cli.app import app

SMALL = ["--page-size", "256", "--font-size", "11"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_version_and_help(runner: CliRunner) -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"deepsynth {__version__}"
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "generate" in result.stdout
    result = runner.invoke(app, ["generate", "--help"])
    assert result.exit_code == 0
    for flag in ("--split", "--max-samples", "--num-workers", "--num-shards", "--shard-index", "--preview", "--list"):
        assert flag in result.stdout


def test_generate_json_prints_exactly_one_object(runner: CliRunner, tmp_path: Path) -> None:
    args = ["generate", "aclsum", "--max-samples", "2", "--split", "test", "--out", str(tmp_path / "o"), "--json"]
    result = runner.invoke(app, args + SMALL)
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)  # the whole of stdout is one JSON document
    (dataset,) = payload["datasets"]
    assert dataset["dataset"] == "aclsum"
    assert dataset["rows"] == {"test": 2}
    assert dataset["location"] == str(tmp_path / "o" / "aclsum")
    assert set(dataset) >= {"pages", "skipped", "seconds"}


def test_generate_human_output_is_a_table_on_stdout(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "aclsum", "--max-samples", "1", "--split", "train", *SMALL])
    assert result.exit_code == 0, result.stderr
    assert "aclsum" in result.stdout and "train" in result.stdout
    assert (tmp_path / "deepsynth-data" / "aclsum" / "manifest.json").is_file(), "default root from settings"
    assert "wrote train-00000-of-00001-00000.parquet" in result.stderr, "plain progress lines off a terminal"


def test_list_shows_registry_and_local_state(runner: CliRunner, tmp_path: Path) -> None:
    runner.invoke(app, ["generate", "aclsum", "--max-samples", "1", "--split", "test", *SMALL])
    result = runner.invoke(app, ["generate", "--list", "--json"])
    assert result.exit_code == 0
    entries = {entry["key"]: entry for entry in json.loads(result.stdout)["datasets"]}
    assert {"mlsum_fr", "mlsum_es", "mlsum_de", "cnn_dailymail", "xsum", "billsum", "xlsum_arabic"} <= set(entries)
    assert entries["aclsum"]["local_rows"] == {"test": 1}
    assert entries["mlsum_fr"]["local"] is False
    human = runner.invoke(app, ["generate", "--list"])
    assert human.exit_code == 0 and "xlsum_hindi" in human.stdout


def test_unknown_dataset_is_one_line_with_a_hint(runner: CliRunner) -> None:
    result = runner.invoke(app, ["generate", "mlsum_frr"])
    assert result.exit_code == 1
    assert "error:" in result.stderr and "hint:" in result.stderr
    assert "mlsum_fr" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_debug_shows_the_traceback(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPSYNTH_DEBUG", "1")
    result = runner.invoke(app, ["generate", "mlsum_frr"])
    assert result.exit_code != 0
    assert type(result.exception).__name__ == "DatasetError"


def test_config_error_is_a_usage_error(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "aclsum", "--num-shards", "2", "--shard-index", "2"])
    assert result.exit_code == 2
    assert "shard_index" in result.stderr
    (tmp_path / "bad.yaml").write_text("render:\n  pagesize: 10\n")
    result = runner.invoke(app, ["generate", "--config", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 2 and "render.pagesize" in result.stderr


def test_non_utf8_file_names_the_problem(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes('{"text": "r\xe9forme", "summary": "x"}\n'.encode("latin-1"))
    result = runner.invoke(app, ["generate", str(bad)])
    assert result.exit_code == 1
    assert "UTF-8" in result.stderr and "latin1.jsonl" in result.stderr


def test_missing_column_names_the_columns_present(runner: CliRunner, tmp_path: Path) -> None:
    data = tmp_path / "news.jsonl"
    data.write_text(json.dumps({"article": " ".join(["alpha"] * 16), "highlights": "beta gamma"}) + "\n")
    result = runner.invoke(app, ["generate", str(data)])
    assert result.exit_code == 1 and "article" in result.stderr and "--text-column" in result.stderr
    fixed = runner.invoke(
        app, ["generate", str(data), "--text-column", "article", "--summary-column", "highlights", "--json", *SMALL]
    )
    assert fixed.exit_code == 0, fixed.stderr
    assert json.loads(fixed.stdout)["datasets"][0]["rows"] == {"train": 1}


def test_preview_writes_pngs(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(app, ["generate", "aclsum", "--split", "test", "--max-samples", "1", "--preview", "look"])
    assert result.exit_code == 0, result.stderr
    assert len(list((tmp_path / "look" / "aclsum").glob("test-000-*-page*.png"))) >= 1
