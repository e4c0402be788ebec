"""Generation and page limits travel with the trained model: `max_new_tokens` from the training summaries'
token lengths, `max_pages` from batching; `eval` and `serve` load them through `Summarizer.load`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("accelerate", reason="needs the train extra", exc_type=ModuleNotFoundError)

from deepsynth_cli.inference.options import GenerationOptions
from deepsynth_cli.inference.summarizer import LIMITS_FILE, Summarizer, read_model_limits
from deepsynth_cli.services import train
from deepsynth_cli.training.loop import generation_limit
from tests.unit.training.test_train import tiny_cfg


def test_generation_limit_is_the_99th_percentile_within_the_cap() -> None:
    histogram = [0] * 30
    histogram[10] = 98
    histogram[20] = 1
    histogram[29] = 1
    assert generation_limit(histogram, cap=100) == 20  # 99 of 100 rows end by 20 tokens
    assert generation_limit(histogram, cap=15) == 15
    assert generation_limit([], cap=64) == 64  # nothing seen yet: the training limit


def test_trained_limits_are_saved_and_used_by_the_summarizer(aclsum_data: Path, tmp_path: Path) -> None:
    overrides = {"optim.max_steps": 2, "checkpoint.every": 1, "batching.max_pages": 1}
    report = train.run(tiny_cfg(aclsum_data, tmp_path / "run", **overrides))
    assert report.final_model is not None
    saved = json.loads((report.final_model / LIMITS_FILE).read_text())
    # tiny_cfg cuts summaries at 24 tokens; ACLSum's summaries are longer, so the 99th percentile is that cap.
    assert saved == {"max_pages": 1, "max_new_tokens": 24}
    assert read_model_limits(report.checkpoints[-1]) == read_model_limits(report.final_model)

    summarizer = Summarizer.load(str(report.final_model), device="cpu")
    assert summarizer.render_config.max_pages == 2 and summarizer.max_pages == 1  # trained, not rendered, limit
    assert summarizer.max_new_tokens == 24
    page = __import__("PIL.Image", fromlist=["Image"]).new("RGB", (384, 384), "white")
    [summary] = summarizer.summarize([[page]], GenerationOptions(no_repeat_ngram_size=0))
    assert (summary.new_tokens == 24 or summary.finished) and summary.pages == 1
    assert Summarizer.load(str(report.final_model), device="cpu", max_pages=3).max_pages == 3  # asked for
