"""`train` evaluates on a validation split carved by `generate --holdout` out of one local file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("accelerate", reason="needs the train extra", exc_type=ModuleNotFoundError)

from deepsynth_cli.data.store import resolve_dataset
from deepsynth_cli.services import train
from deepsynth_cli.settings import Settings
from deepsynth_cli.training.config import load_train_config
from deepsynth_cli.training.data import eval_rows
from deepsynth_cli.training.events import Evaluated, Event
from tests.unit.training.conftest import render


def test_training_evaluates_on_the_carved_validation_split(tmp_path: Path) -> None:
    corpus = tmp_path / "one-file.jsonl"
    rows = [
        {
            "id": f"n{n}",
            "text": f"Note {n}: " + " ".join(f"word{(n * 5 + k) % 61}" for k in range(30)),
            "summary": f"note {n}",
        }
        for n in range(40)
    ]
    corpus.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    folder = render([str(corpus)], tmp_path / "data", holdout=(0.25, 0.1), language="en")
    validation = eval_rows(resolve_dataset(str(folder), Settings()), "validation", Settings(), 100)
    assert 0 < len(validation) < 40

    events: list[Event] = []
    values = {
        "model.model": "tiny", "data.datasets": [str(folder)], "output_dir": tmp_path / "run",
        "optim.max_steps": 2, "checkpoint.every": 100, "eval.rows": 2, "eval.generate_rows": 0,
        "batching.max_target_tokens": 24,
    }  # fmt: skip
    report = train.run(load_train_config(None, values), events.append)
    evaluated = [event for event in events if isinstance(event, Evaluated)]
    assert [event.step for event in evaluated] == [2] and evaluated[0].loss is not None
    assert [item["step"] for item in report.evaluations] == [2]
