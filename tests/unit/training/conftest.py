"""Real shards for the training tests, made by `generate` once per session at 384 px (the tiny preset's size).

Training needs the `train` extra (torch, transformers, accelerate): each test module skips itself without it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from deepsynth_cli.config import GenerateConfig, RenderConfig
from deepsynth_cli.services import generate

PAGE_SIZE = 384
WORDS = ("apple", "zebra")


def render(datasets: list[str], out: Path, **overrides: Any) -> Path:
    render_cfg = overrides.pop("render", RenderConfig(page_size=PAGE_SIZE, font_size=12, margin=12, max_pages=2))
    cfg = GenerateConfig(datasets=datasets, out=out, num_workers=1, store="local", render=render_cfg, **overrides)
    return Path(generate.run(cfg).datasets[0].location)


@pytest.fixture(scope="session")
def aclsum_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six ACLSum papers per split (train, validation, test), 2 pages each: a dataset folder."""
    return render(["aclsum"], tmp_path_factory.mktemp("aclsum"), max_samples=6)


def write_words(folder: Path, rows_per_split: dict[str, int]) -> Path:
    """A corpus whose pages show one word in large type, and whose summary is that word: only the image tells."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, count in rows_per_split.items():
        lines = []
        for index in range(count):
            word = WORDS[index % 2]
            row = {"id": f"{split}-{index}", "text": " ".join([word] * 12), "summary": word}
            lines.append(json.dumps(row) + "\n")
        (folder / f"{split}.jsonl").write_text("".join(lines), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def words_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("words")
    corpus = write_words(root / "words", {"train": 8, "validation": 2})
    big = RenderConfig(page_size=PAGE_SIZE, font_size=40, margin=12, max_pages=1)
    return render([str(corpus)], root / "out", render=big, min_summary_words=1, language="en")
