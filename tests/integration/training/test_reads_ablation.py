"""`deepsynth eval --ablation` as a user runs it: own pages, another row's pages and blank pages.

A model whose output depends on its pages (trained on pages showing "apple" or "zebra", the summary being that
word, the prompt the same for both) has a clearly lower loss on its own pages than on blank ones; the untrained
tiny model, whose output ignores them, shows no gap. This checks the instrument, not reading in general: the
validation pages here are renderings of the training texts (see the README's proof-of-reading paragraph).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

pytest.importorskip("accelerate", reason="needs the train extra", exc_type=ModuleNotFoundError)

from deepsynth_cli.cli.app import app
from deepsynth_cli.config import GenerateConfig, RenderConfig
from deepsynth_cli.services import generate, train
from deepsynth_cli.training.config import load_train_config

pytestmark = pytest.mark.integration  # a CPU training and two evaluations with the ablation: over a minute

WORDS = ("apple", "zebra")


@pytest.fixture(scope="module")
def words_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ablation-words")
    corpus = root / "words"
    corpus.mkdir()
    for split, count in {"train": 8, "validation": 8}.items():
        rows = [
            {"id": f"{split}-{i}", "text": " ".join([WORDS[i % 2]] * 12), "summary": WORDS[i % 2]} for i in range(count)
        ]
        (corpus / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    render = RenderConfig(page_size=384, font_size=40, margin=12, max_pages=1)
    cfg = GenerateConfig(
        datasets=[str(corpus)], out=root / "out", num_workers=1, store="local", render=render,
        min_summary_words=1, language="en",
    )  # fmt: skip
    return Path(generate.run(cfg).datasets[0].location)


def _ablation(model: str, data: Path, out: Path) -> dict[str, Any]:
    args = ["eval", "--model", model, "-d", str(data), "--split", "validation", "--ablation", "--baselines", "none"]
    args += ["--max-new-tokens", "4", "--device", "cpu", "-o", str(out), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics == json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    (found,) = metrics["ablation"]
    assert found["rows"] == 8 and set(found["conditions"]) == {"own", "other", "blank"}
    return dict(found)


def test_a_model_that_uses_its_pages_shows_a_gap_and_an_untrained_one_none(words_data: Path, tmp_path: Path) -> None:
    cfg = load_train_config(
        None,
        {
            "model.model": "tiny",
            "data.datasets": [str(words_data)],
            "output_dir": tmp_path / "run",
            "optim.max_steps": 60,
            "optim.lr": 3e-3,
            "checkpoint.every": 1000,
            "eval.every": 1000,
            "eval.generate_rows": 0,
        },
    )
    report = train.run(cfg)
    trained = _ablation(str(report.final_model), words_data, tmp_path / "trained")
    for other in ("own-other", "own-blank"):
        loss = trained["differences"][other]["loss"]
        # Own pages: a lower loss, the whole interval below 0, and more than the untrained model's bound below.
        assert loss["high"] < 0 and loss["delta"] < -0.05, trained
        assert trained["differences"][other]["rougeL"]["low"] > 0, trained
    assert trained["conditions"]["own"]["rougeL"]["mean"] == 1.0
    assert trained["reads"] is True

    untrained = _ablation("tiny", words_data, tmp_path / "untrained")
    assert untrained["reads"] is False
    for other in ("own-other", "own-blank"):
        assert abs(untrained["differences"][other]["loss"]["delta"]) < 0.05, untrained
        assert untrained["differences"][other]["rougeL"]["delta"] == 0.0
