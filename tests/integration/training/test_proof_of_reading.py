"""Proof of reading: a tiny model learns to write a word that exists only in the pixels, and writes it for pages
laid out as no training page was.

Each page shows one of four words (chance: 25 %) repeated N times after L blank lines; the summary is the word, the
prompt is the same for all. Training pages have N in 2, 4, ..., 12 and L in 0..2; validation pages have odd N
(3 to 9), so every validation page is a layout never seen in training (other line breaks, other positions, other
ink), and no validation page is byte-identical to a training page. Rendered at 192 px with 24 px type: the frozen
random vision tower's features already separate the four words on unseen layouts (nearest-centroid 12/12), and
72 training pages in 18 layouts per word keep the decoder from memorising layouts instead (with 6 layouts per word
it stayed at chance). Measured (benchmarks/RESULTS.md): 16/16 right on its own pages, against ROUGE-L 31 % on
another row's pages (a quarter of the swapped-in pages happen to show the same word) and 25 % on blank pages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

pytest.importorskip("accelerate", reason="needs the train extra", exc_type=ModuleNotFoundError)

from deepsynth_cli.cli.app import app
from deepsynth_cli.config import GenerateConfig, RenderConfig
from deepsynth_cli.services import generate, train
from deepsynth_cli.training.config import load_train_config

pytestmark = pytest.mark.integration  # about 10 s of training idle, a minute or two on 2 contended cores

WORDS = ("apple", "zebra", "mango", "tiger")
CHANCE = 1 / len(WORDS)
IMAGE_SIZE = 192


def _text(word: str, count: int, blank_lines: int) -> str:
    return "\n" * blank_lines + " ".join([word] * count)


@pytest.fixture(scope="module")
def words(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("proof-of-reading")
    corpus = root / "words"
    corpus.mkdir()
    k = len(WORDS)
    train_rows = [
        {
            "id": f"train-{i}",
            "text": _text(WORDS[i % k], 2 * (1 + (i // k) % 6), (i // (6 * k)) % 3),
            "summary": WORDS[i % k],
        }
        for i in range(18 * k)
    ]
    validation_rows = [
        {"id": f"validation-{i}", "text": _text(WORDS[i % k], 3 + 2 * (i // k), (i // k) % 3), "summary": WORDS[i % k]}
        for i in range(4 * k)
    ]
    for split, rows in {"train": train_rows, "validation": validation_rows}.items():
        (corpus / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    render = RenderConfig(page_size=IMAGE_SIZE, font_size=24, margin=12, max_pages=1)
    cfg = GenerateConfig(
        datasets=[str(corpus)], out=root / "out", num_workers=1, store="local", render=render,
        min_text_words=1, min_summary_words=1, language="en",
    )  # fmt: skip
    return Path(generate.run(cfg).datasets[0].location)


def _pages(data: Path, split: str) -> list[dict[str, Any]]:
    return [
        row for path in sorted((data / "data").glob(f"{split}-*.parquet")) for row in pq.read_table(path).to_pylist()
    ]


def test_a_trained_tiny_model_writes_the_word_on_pages_laid_out_as_none_in_training(
    words: Path, tmp_path: Path
) -> None:
    training, validation = _pages(words, "train"), _pages(words, "validation")
    assert len(training) == 72 and len(validation) == 16
    seen = {page["bytes"] for row in training for page in row["pages"]}
    assert not any(page["bytes"] in seen for row in validation for page in row["pages"])  # new renderings only

    cfg = load_train_config(
        None,
        {
            "model.model": "tiny",  # vision tower frozen (the default): projector + decoder learn to read it
            "model.image_size": IMAGE_SIZE,
            "data.datasets": [str(words)],
            "output_dir": tmp_path / "run",
            "optim.max_steps": 100,
            "optim.batch_size": 4,
            "optim.lr": 3e-3,
            "checkpoint.every": 1000,
            "eval.every": 0,  # once, after the last step
            "eval.rows": 16,
            "eval.generate_rows": 16,
            "eval.max_new_tokens": 4,
        },
    )
    report = train.run(cfg)
    # Training's own evaluation, with its pixel ablation, says it reads.
    (found,) = report.evaluations[-1]["ablation"]
    assert found["rows"] == 16 and found["reads"] is True, found

    # `eval --ablation` as a user runs it, on the model the run saved.
    out = tmp_path / "eval"
    args = ["eval", "--model", str(report.final_model), "-d", str(words), "--split", "validation", "--ablation"]
    args += ["--baselines", "none", "--max-new-tokens", "4", "--device", "cpu", "-o", str(out), "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    right = sum(row["prediction"].strip() == row["reference"] for row in predictions)
    assert len(predictions) == 16 and right / 16 >= CHANCE + 0.5, predictions  # measured 16 / 16

    (ablation,) = json.loads(result.stdout)["ablation"]
    conditions, differences = ablation["conditions"], ablation["differences"]
    assert ablation["reads"] is True
    assert conditions["own"]["rougeL"]["mean"] >= CHANCE + 0.5 and conditions["blank"]["rougeL"]["mean"] <= 0.35
    for other in ("other", "blank"):
        # Own pages: a far lower loss and a far higher ROUGE-L than another row's pages or blank ones.
        assert differences[f"own-{other}"]["loss"]["high"] < -0.2, ablation  # measured -0.46 and -0.33
        assert differences[f"own-{other}"]["rougeL"]["low"] > 0.3, ablation  # measured 0.50 and 0.50
