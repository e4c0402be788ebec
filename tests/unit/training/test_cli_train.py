"""`deepsynth train` as typed: `--datasets a b`, repeated `--datasets`, `--json`, errors with hints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("accelerate", reason="needs the train extra", exc_type=ModuleNotFoundError)

from typer.testing import CliRunner

from deepsynth_cli.cli.app import app

FAST = ["--model", "tiny", "--max-steps", "2", "--save-every", "2", "--batch-size", "1"]


def test_datasets_a_b_as_written_and_json(aclsum_data: Path, words_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "--datasets", str(aclsum_data), str(words_data), "--output-dir", str(out), *FAST, "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)  # stdout is exactly one JSON object
    assert payload["datasets"] == ["aclsum", "words"] and payload["steps"] == 2
    assert payload["final_model"] == str(out) and (out / "step-000002" / "trainer_state.json").is_file()
    assert payload["truncation"]["rows"] == 2 and payload["trainable_params"] < payload["total_params"]


def test_repeated_datasets_and_human_output(aclsum_data: Path, words_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["train", "--datasets", str(aclsum_data), "--datasets", str(words_data), "--output-dir", str(out), *FAST]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert "trainable /" in result.stderr and "parameters" in result.stderr  # the parameter count, first
    assert "step 2/2: loss" in result.stderr and f"final model: {out}" in result.stdout
    # Evaluation (on by default) with the pixel ablation: one line at the evaluation, one in the final report.
    assert "step 2: pages (en, 8 rows): loss on own " in result.stderr, result.stderr
    assert "  pages (en, 8 rows): loss on own " in result.stdout and "reads its pages" in result.stdout
    state = json.loads((out / "step-000002" / "trainer_state.json").read_text())
    assert set(state["data_position"]) == {"0:aclsum", "1:words"}


def test_errors_are_one_line_with_a_hint(aclsum_data: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--datasets", "nope", "--model", "tiny"])
    assert result.exit_code == 1 and "error:" in result.stderr and "hint:" in result.stderr
    assert "deepsynth generate nope" in result.stderr and "Traceback" not in result.stderr

    result = runner.invoke(app, ["train", "--datasets", str(aclsum_data), "--model", "tiny", "--resume-from", "."])
    assert result.exit_code == 1 and "not a training checkpoint" in result.stderr

    result = runner.invoke(app, ["train", "--datasets", str(aclsum_data), "--precision", "fp8"])
    assert result.exit_code == 2 and "precision" in result.stderr

    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0 and "--datasets" in result.stdout and "--resume" in result.stdout


def test_a_folder_that_is_not_a_rendered_dataset_names_the_missing_column(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    bare = tmp_path / "bare"
    (bare / "data").mkdir(parents=True)
    pq.write_table(pa.table({"text": ["a"], "summary": ["b"]}), bare / "data" / "train-00000-of-00001-00000.parquet")
    result = CliRunner().invoke(app, ["train", "--datasets", str(bare), *FAST, "--output-dir", str(tmp_path / "o")])
    assert result.exit_code == 1 and "no 'pages' column" in result.stderr
    assert "hint:" in result.stderr and "deepsynth generate" in result.stderr and "Traceback" not in result.stderr


def test_a_model_whose_processor_miscounts_image_tokens_is_refused(aclsum_data: Path, tmp_path: Path) -> None:
    from deepsynth_cli.models.presets import load_model, save_model

    model, processor, info = load_model("tiny")
    processor.patch_size, processor.downsample_ratio = 16, 4  # the real model's: 36 tokens for 384 px, not 144
    folder = save_model(model, processor, info, tmp_path / "miscounting")
    args = ["train", "--datasets", str(aclsum_data), "--model", str(folder), "--output-dir", str(tmp_path / "o")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.stderr
    assert "inserts 36 image tokens for a 384 px view but the model emits 144" in result.stderr
    assert "hint:" in result.stderr and "patch_size" in result.stderr and not (tmp_path / "o").exists()


def test_memory_and_tracker_flags_reach_the_run(aclsum_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="the dev extra installs tensorboard")
    out = tmp_path / "run"
    args = ["train", "--datasets", str(aclsum_data), "--output-dir", str(out), *FAST]
    result = CliRunner().invoke(app, [*args, "--activation-checkpointing", "--report-to", "tensorboard", "--json"])
    assert result.exit_code == 0, result.stderr
    saved = json.loads((out / "train_config.json").read_text())
    assert saved["activation_checkpointing"] is True and saved["report_to"] == ["tensorboard"]
    assert saved["compile"] is False and list((out / "logs" / "deepsynth-train").glob("events.out.tfevents.*"))
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logged = EventAccumulator(str(out / "logs" / "deepsynth-train")).Reload().Tags()["scalars"]
    assert {"eval/loss", "eval/pages/loss_own", "eval/pages/loss_other", "eval/pages/loss_blank"} <= set(logged)

    help_text = CliRunner().invoke(app, ["train", "--help"]).stdout
    assert "--compile" in help_text and "--report-to" in help_text and "--activation-checkpointing" in help_text
