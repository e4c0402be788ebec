"""A small rendered dataset for the eval tests: real `generate` output (JSONL -> Parquet shards, 128 px pages)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepsynth_cli.config import GenerateConfig, RenderConfig
from deepsynth_cli.services import generate

SENTENCES = (
    "The council approved the new budget on Monday.",
    "Schools will receive more money for teachers.",
    "Opposition members said the plan came too late.",
    "The mayor promised a review next spring.",
)


def news_rows(count: int) -> list[dict[str, str]]:
    """Documents of four sentences (numbered, so no two are alike) whose summary is their second sentence."""
    rows = []
    for index in range(count):
        sentences = [f"{sentence[:-1]} in district {index}." for sentence in SENTENCES]
        rows.append({"id": f"doc-{index:03d}", "text": " ".join(sentences), "summary": sentences[1]})
    return rows


@pytest.fixture(scope="session")
def news_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rendered dataset folder with a 12-row test split (language en), made by `generate`."""
    root = tmp_path_factory.mktemp("news")
    corpus = root / "news"
    corpus.mkdir()
    (corpus / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in news_rows(12)), encoding="utf-8")
    render = RenderConfig(page_size=128, font_size=8, margin=4, max_pages=1)
    cfg = GenerateConfig(
        datasets=[str(corpus)], out=root / "out", num_workers=1, store="local", language="en", render=render,
        rows_per_shard=5,
    )  # fmt: skip
    return Path(generate.run(cfg).datasets[0].location)
