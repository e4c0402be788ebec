"""What `--help` shows: flags without a value, what repeatable options take, no undocumented positional."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from deepsynth_cli.cli.app import app

COMMANDS = ["generate", "train", "eval", "serve", "validate"]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"COLUMNS": "160", "NO_COLOR": "1"})


def _option_line(text: str, option: str) -> str:
    rows = [" ".join(line.replace("│", " ").split()) for line in text.splitlines()]
    found = [row for row in rows if row.startswith(f"{option} ")]
    assert found, f"{option} missing from:\n{text}"
    return found[0]


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_flags_show_no_value_and_no_type_reads_like_python(runner: CliRunner, command: str) -> None:
    result = runner.invoke(app, [command, "--help"] if command else ["--help"])
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.output
    assert _option_line(result.output, "--help") == "--help Show this message and exit."


@pytest.mark.parametrize("command", ["train", "eval", "validate"])
def test_datasets_option_is_shared_and_the_usage_has_no_hidden_positional(runner: CliRunner, command: str) -> None:
    text = runner.invoke(app, [command, "--help"]).output
    usage = next(line.strip() for line in text.splitlines() if "Usage:" in line)
    assert usage == f"Usage: deepsynth {command} [OPTIONS]"
    assert "more_datasets" not in text and "<list[" not in text
    rows = [" ".join(line.replace("│", " ").split()) for line in text.splitlines()]
    assert any(row.startswith("--datasets -d NAME... Rendered datasets:") for row in rows), text


def test_train_flags_and_lists(runner: CliRunner) -> None:
    text = runner.invoke(app, ["train", "--help"]).output
    assert _option_line(text, "--lora") == (
        "--lora Train LoRA adapters on the language model's linear layers (lr 2e-4 unless given)."
    )
    assert _option_line(text, "--json").startswith("--json Print exactly one JSON object")
    assert _option_line(text, "--weight").startswith("--weight WEIGHT Sampling weight")
    assert _option_line(text, "--report-to").startswith("--report-to TRACKER Experiment tracker")


def test_generate_usage_names_what_the_positional_takes(runner: CliRunner) -> None:
    text = runner.invoke(app, ["generate", "--help"]).output
    assert "[DATASET]..." in text and "[datasets]" not in text
    assert _option_line(text, "--split").startswith("--split SPLIT Source split")
    assert _option_line(text, "--list").startswith("--list Show the dataset registry")


def test_validate_takes_datasets_a_b_like_train_and_eval(runner: CliRunner, tmp_path: object) -> None:
    result = runner.invoke(app, ["validate", "--datasets", "/nonexistent/a", "/nonexistent/b", "--json"])
    assert "unexpected extra argument" not in result.output
    checks = {check["name"] for check in json.loads(result.stdout)["checks"]}
    assert {"dataset:/nonexistent/a:found", "dataset:/nonexistent/b:found"} <= checks


def test_an_unknown_option_is_still_refused(runner: CliRunner) -> None:
    result = runner.invoke(app, ["validate", "--datasets", "a", "--no-such-flag"])
    assert result.exit_code == 2 and "No such option" in result.output


def test_list_names_splits_as_the_output_folder_does(runner: CliRunner) -> None:
    result = runner.invoke(app, ["generate", "--list", "--json"])
    entries = {entry["key"]: entry for entry in json.loads(result.stdout)["datasets"]}
    assert entries["aclsum"]["splits"] == ["train", "validation", "test"]  # the registry's source says `val`
