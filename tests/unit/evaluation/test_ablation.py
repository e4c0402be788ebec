"""The pixel ablation's page swaps: a seeded derangement and blank pages of the same count and size."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image

from deepsynth_cli.evaluation.ablation import blank_pages, condition_pages, derangement
from deepsynth_cli.evaluation.config import EvalConfig


@pytest.mark.parametrize("n", [2, 3, 7, 50])
def test_the_derangement_moves_every_row_and_is_seeded(n: int) -> None:
    sigma = derangement(n, seed=3)
    assert sorted(sigma) == list(range(n))
    assert all(sigma[i] != i for i in range(n))
    assert derangement(n, seed=3) == sigma


def test_one_row_has_no_other_row() -> None:
    with pytest.raises(ValueError, match="at least 2 rows"):
        derangement(1)


def _png(size: tuple[int, int], colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_each_condition_shows_the_right_pages() -> None:
    rows = [{"pages": [_png((64, 64), "black"), _png((64, 48), "black")]}, {"pages": [_png((32, 32), "red")]}]
    shown = condition_pages(rows)
    assert shown["own"] == [rows[0]["pages"], rows[1]["pages"]]
    assert shown["other"] == [rows[1]["pages"], rows[0]["pages"]]  # two rows: the only derangement is the swap
    blank = shown["blank"][0]
    assert [page.size for page in blank] == [(64, 64), (64, 48)]  # as many pages, the same sizes
    assert all(page.getextrema() == ((255, 255),) * 3 for page in blank)  # white
    assert len(blank_pages(rows[1]["pages"])) == 1


def test_the_ablation_needs_a_model() -> None:
    with pytest.raises(ValueError, match="needs --model"):
        EvalConfig(predictions="p.jsonl", ablation=True)  # type: ignore[arg-type]


def test_eval_with_the_ablation_writes_it_to_metrics_and_report(news_data: Path, tmp_path: Path) -> None:
    from deepsynth_cli.inference.options import GenerationOptions
    from deepsynth_cli.services import eval as service

    cfg = EvalConfig(
        model="tiny",
        datasets=[str(news_data)],
        output=tmp_path / "out",
        max_samples=3,
        baselines=[],
        ablation=True,
        generation=GenerationOptions(max_new_tokens=2),
    )
    metrics = service.run(cfg).metrics
    (found,) = metrics["ablation"]
    assert (found["dataset"], found["language"], found["rows"], found["generated_rows"]) == ("news", "en", 3, 3)
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "Pixel ablation" in html
    for condition, scores in found["conditions"].items():
        row = re.search(rf'<tr class="ablation-{condition}">(.*?)</tr>', html, re.S)
        assert row is not None and f"{scores['loss']['mean']:.4f}" in row.group(1), condition
    delta = found["differences"]["own-blank"]["loss"]["delta"]
    assert f"{delta:+.4f}" in html
    assert "No sign that it reads its pages" in html  # untrained: own pages are no better (at most noise)
    assert found["reads"] is False, found["differences"]

    without = service.run(cfg.model_copy(update={"ablation": False, "output": tmp_path / "plain"})).metrics
    assert "ablation" not in without
    assert "Pixel ablation" not in (tmp_path / "plain" / "report.html").read_text(encoding="utf-8")
