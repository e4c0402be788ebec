"""The trained model reads the pixels: pages show "apple" or "zebra", the summary is that word, the prompt is the
same for both. Only the image can tell which word to write."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("accelerate", reason="needs the train extra", exc_type=ModuleNotFoundError)

from deepsynth_cli.data.store import resolve_dataset
from deepsynth_cli.models.batching import Batcher
from deepsynth_cli.models.presets import load_model
from deepsynth_cli.services import train
from deepsynth_cli.settings import Settings
from deepsynth_cli.training.config import load_train_config
from deepsynth_cli.training.data import eval_rows


def test_a_word_shown_only_in_the_image_is_learned(words_data: Path, tmp_path: Path) -> None:
    cfg = load_train_config(
        None,
        {
            "model.model": "tiny",  # vision tower frozen (the default): projector + decoder learn to read it
            "data.datasets": [str(words_data)],
            "output_dir": tmp_path / "run",
            "optim.max_steps": 60,
            "optim.lr": 3e-3,
            "checkpoint.every": 1000,
            "eval.enabled": True,
            "eval.every": 60,
            "eval.rows": 2,
            "eval.generate_rows": 2,
            "eval.max_new_tokens": 4,
        },
    )
    report = train.run(cfg)
    assert report.evaluations[-1]["rougeL"] == 1.0, report.evaluations  # both validation words exactly right

    # Training's evaluation ran the pixel ablation: own pages beat the other row's and blank ones.
    (found,) = report.evaluations[-1]["ablation"]
    assert found["language"] == "en" and found["rows"] == 2 and found["generated_rows"] == 2
    assert found["reads"] is True, found
    own = found["conditions"]["own"]
    for other in ("other", "blank"):
        assert own["loss"]["mean"] < found["conditions"][other]["loss"]["mean"] - 0.05, found["conditions"]
        assert found["differences"][f"own-{other}"]["loss"]["high"] < 0
    assert own["rougeL"]["mean"] == 1.0 and found["conditions"]["other"]["rougeL"]["mean"] < 1.0

    model, processor, info = load_model(str(report.final_model))
    rows = eval_rows(resolve_dataset(str(words_data), Settings()), "validation", Settings(), 2)
    assert [row["summary"] for row in rows] == ["apple", "zebra"]
    batch = Batcher(processor, info).generation_inputs(rows)
    assert batch.inputs["input_ids"][0].tolist() == batch.inputs["input_ids"][1].tolist()  # the same prompt
    out = model.generate(**batch.inputs, max_new_tokens=4, do_sample=False)
    texts = processor.tokenizer.batch_decode(out[:, batch.inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert [text.strip() for text in texts] == ["apple", "zebra"]  # two images, two different outputs
