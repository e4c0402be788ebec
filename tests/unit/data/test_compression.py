"""Compression as a target, measured with the real renderer and the real tokenizer."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepsynth_cli.config import GenerateConfig, RenderConfig
from deepsynth_cli.data.compression import (
    MIN_LEGIBLE_FONT_PX,
    fit_font_size,
    full_page_compression,
    min_legible_font_px,
)
from deepsynth_cli.data.sources import open_source
from deepsynth_cli.data.tokens import TextTokenCounter
from deepsynth_cli.errors import ConfigError
from deepsynth_cli.services import generate

RENDER = RenderConfig(page_size=384, margin=12, max_pages=4)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    source = open_source("aclsum")
    return [document.text for _, document in zip(range(8), source.documents("train"), strict=False)]


@pytest.fixture(scope="module")
def counter() -> TextTokenCounter:
    return TextTokenCounter()


def test_compression_falls_as_the_font_grows(texts: list[str], counter: TextTokenCounter) -> None:
    text = "\n".join(texts)
    values = [full_page_compression(RENDER, size, text, "en", counter) for size in (10, 14, 20, 28)]
    assert all(value is not None for value in values)
    assert values == sorted(values, reverse=True)  # type: ignore[type-var]


def test_fit_meets_the_target_on_full_pages(texts: list[str], counter: TextTokenCounter) -> None:
    fit = fit_font_size(RENDER, 2.0, texts, "en", counter)
    assert MIN_LEGIBLE_FONT_PX <= fit.font_size <= 96
    assert abs(fit.achieved - 2.0) < 0.35
    measured = full_page_compression(RENDER, fit.font_size, "\n".join(texts), "en", counter)
    assert measured == fit.achieved
    # one pixel either way is further from the target (or beyond the legible limit)
    for other in (fit.font_size - 1, fit.font_size + 1):
        if other >= MIN_LEGIBLE_FONT_PX:
            value = full_page_compression(RENDER, other, "\n".join(texts), "en", counter)
            assert value is not None and abs(value - 2.0) >= abs(fit.achieved - 2.0)


def test_target_below_the_legible_font_is_refused_naming_the_largest(
    texts: list[str], counter: TextTokenCounter
) -> None:
    densest = full_page_compression(RENDER, MIN_LEGIBLE_FONT_PX, "\n".join(texts), "en", counter)
    with pytest.raises(ConfigError, match=rf"largest reachable is {densest:.2f}x at {MIN_LEGIBLE_FONT_PX} px"):
        fit_font_size(RENDER, 50.0, texts, "en", counter)


def test_cjk_and_thai_have_higher_legible_floors(counter: TextTokenCounter) -> None:
    """Tesseract reads CJK at 10 px with 6.9 % and Thai with 14.9 % of characters wrong (benchmarks/legibility.py):
    their floors are 12 and 14 px, and a target is refused below them, whatever Latin could do."""
    assert (min_legible_font_px("en"), min_legible_font_px("zh-Hans"), min_legible_font_px("th")) == (10, 12, 14)
    chinese = ["光学压缩把文档的文字渲染成页面图像，视觉编码器把每一页压缩成几百个视觉标记。" * 40]
    with pytest.raises(ConfigError, match=r"below 12 px, the smallest legible size for zh-Hans") as caught:
        fit_font_size(RENDER, 1000.0, chinese, "zh-Hans", counter)
    largest = float(caught.value.message.split("largest reachable is ")[1].split("x")[0])
    assert largest == pytest.approx(full_page_compression(RENDER, 12, chinese[0], "zh-Hans", counter), abs=0.01)


def test_generate_reports_the_chosen_font_and_achieved_compression(tmp_path: Path) -> None:
    cfg = GenerateConfig(
        datasets=["aclsum"],
        splits=["test"],
        max_samples=4,
        out=tmp_path / "out",
        num_workers=1,
        render=RenderConfig(page_size=384, margin=12, max_pages=1, target_compression=1.5),
    )
    events: list[object] = []
    report = generate.run(cfg, events.append).to_dict()
    (dataset,) = report["datasets"]
    assert dataset["target_compression"] == 1.5 and dataset["font_size"] >= MIN_LEGIBLE_FONT_PX
    assert dataset["font_size"] != 18.0
    # aclsum documents overflow one page, so every page is full: the split carries about the target
    assert abs(dataset["splits"]["test"]["compression"] - 1.5) < 0.4
    assert any("font size" in getattr(event, "message", "") for event in events)


def test_cli_refuses_an_unreachable_target_in_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from deepsynth_cli.cli.app import app

    args = ["generate", "aclsum", "--split", "test", "--max-samples", "2", "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(app, [*args, "--page-size", "384", "--target-compression", "60"])
    assert result.exit_code == 2, "a config the CLI cannot honour is a usage error"
    assert "compression 60x needs a font below 10 px, the smallest legible size for en: the largest" in result.stderr
    assert not (tmp_path / "o" / "aclsum" / "data").exists(), "refused before anything was rendered"


def test_a_sample_of_huge_documents_is_joined_only_as_far_as_its_pages_reach(
    texts: list[str], counter: TextTokenCounter
) -> None:
    huge = "\n".join(texts) * 20  # ~1 M characters each, as the per-document limit allows
    fit = fit_font_size(RENDER, 2.0, [huge] * 32, "en", counter)
    assert fit.sample_docs == 1, "the first document already reaches past two pages at the smallest size"
    assert fit == fit_font_size(RENDER, 2.0, [huge], "en", counter)
    # Ordinary documents: those past the reach are left out, and the figures are those of them all joined.
    kept = fit_font_size(RENDER, 2.0, texts, "en", counter)
    joined = fit_font_size(RENDER, 2.0, ["\n".join(texts)], "en", counter)
    assert 1 < kept.sample_docs < len(texts) and (kept.font_size, kept.achieved) == (joined.font_size, joined.achieved)
