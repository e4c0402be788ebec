"""`deepsynth validate --model FOLDER` on a saved tiny checkpoint, each test breaking one thing in a copy."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.unit.validation.test_validate_cli import failures, the_check, validate

pytest.importorskip("transformers", reason="needs the train extra", exc_type=ModuleNotFoundError)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deepsynth_cli.models.presets import load_model, save_model

    model, processor, info = load_model("tiny")
    return save_model(model, processor, info, tmp_path_factory.mktemp("tiny") / "checkpoint")


@pytest.fixture
def checkpoint(saved: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(saved, tmp_path / "checkpoint"))


def edit_json(path: Path, **changes: object) -> None:
    values = json.loads(path.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    path.write_text(json.dumps(values), encoding="utf-8")


def test_a_saved_checkpoint_loads_and_passes(checkpoint: Path) -> None:
    code, report = validate("--model", str(checkpoint))
    assert the_check(report, f"model:{checkpoint}:load")["message"].startswith("loaded the weights")
    assert failures(report) == [] and (code, report["score"]) == (0, 100)


def test_a_processor_that_disagrees_with_the_vision_tower(checkpoint: Path) -> None:
    edit_json(checkpoint / "processor_config.json", patch_size=16)  # 384 / 16 = 24 -> 576 tokens, the model emits 144
    code, report = validate("--model", str(checkpoint))
    check = the_check(report, f"model:{checkpoint}:image-tokens")
    assert (check["status"], check["severity"]) == ("fail", "critical")
    assert "inserts 576 image tokens" in check["message"] and "emits 144" in check["message"]
    assert failures(report) == [check["name"]]
    assert (code, report["score"]) == (1, 90)


def test_a_tokenizer_without_a_pad_token(checkpoint: Path) -> None:
    edit_json(checkpoint / "tokenizer_config.json", pad_token=None)
    code, report = validate("--model", str(checkpoint))
    check = the_check(report, f"model:{checkpoint}:special-tokens")
    assert (check["status"], check["severity"]) == ("fail", "high") and "no pad token" in check["message"]
    assert failures(report) == [check["name"]]
    assert (code, report["score"]) == (1, 95)


def test_a_folder_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, report = validate("--model", str(tmp_path / "empty"))
    check = the_check(report, f"model:{tmp_path / 'empty'}:load")
    assert (check["status"], check["severity"]) == ("fail", "critical")
    assert (code, report["score"]) == (1, 90)
