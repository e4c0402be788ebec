"""Real shards for the model tests, rendered once per session at 384 px (the tiny preset's image size).

The models need the `train` extra (torch, transformers): each test module skips itself without it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from deepsynth_cli.config import GenerateConfig, RenderConfig
from deepsynth_cli.services import generate

Row = dict[str, Any]
PAGE_SIZE = 384
# Words of filler text that render to 1 and 3 pages at 384 px, 12 px type (a test checks the page counts).
WORDS_FOR_PAGES = {1: 40, 3: 400}


def read_rows(folder: Path) -> list[Row]:
    return [row for path in sorted((folder / "data").glob("*.parquet")) for row in pq.read_table(path).to_pylist()]


def _render(datasets: list[str], out: Path, **overrides: Any) -> Path:
    # Explicit store and workers: a session fixture runs before the per-test environment isolation.
    cfg = GenerateConfig(
        datasets=datasets,
        out=out,
        num_workers=1,
        store="local",
        render=RenderConfig(page_size=PAGE_SIZE, font_size=12, margin=12),
        **overrides,
    )
    return Path(generate.run(cfg).datasets[0].location)


@pytest.fixture(scope="session")
def aclsum_rows(tmp_path_factory: pytest.TempPathFactory) -> list[Row]:
    """Four ACLSum training rows as `generate` writes them: 4 pages each (the long papers are cut at 4)."""
    folder = _render(["aclsum"], tmp_path_factory.mktemp("aclsum"), max_samples=4, splits=["train"])
    return read_rows(folder)


@pytest.fixture(scope="session")
def rows_by_pages(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Row]:
    """Rendered rows with exactly 1 and 3 pages, keyed by their page count."""
    root = tmp_path_factory.mktemp("paged")
    corpus = root / "corpus" / "train.jsonl"
    corpus.parent.mkdir()
    lines = []
    for pages, words in WORDS_FOR_PAGES.items():
        body = " ".join(f"word{(pages * 7 + k) % 97}" for k in range(words))
        row = {
            "id": f"pages-{pages}",
            "text": f"Document of {pages} pages. {body}.",
            "summary": f"A document of {pages} pages.",
        }
        lines.append(json.dumps(row) + "\n")
    corpus.write_text("".join(lines), encoding="utf-8")
    rows = read_rows(_render([str(corpus)], root / "out"))
    return {row["num_pages"]: row for row in rows}
