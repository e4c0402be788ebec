"""Shared fixtures. Every test runs offline, in its own working directory, with no DEEPSYNTH_/HF_ variables
leaking in from the machine (a developer's `.env` or token must never change a test's outcome)."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Caches of the test session's own, set before anything imports `datasets` or `huggingface_hub`: both read their
# cache folders once, at import, so a per-test HF_HOME alone would still let them use the machine's caches
# (a user's ~/.cache/huggingface holding an `aclsum` entry changed what `load_dataset` returned here).
_SESSION_HF_HOME = Path(tempfile.mkdtemp(prefix="deepsynth-tests-hf-"))
atexit.register(shutil.rmtree, _SESSION_HF_HOME, ignore_errors=True)
os.environ["HF_HOME"] = str(_SESSION_HF_HOME)
os.environ["HF_DATASETS_CACHE"] = str(_SESSION_HF_HOME / "datasets")
os.environ["HF_HUB_CACHE"] = str(_SESSION_HF_HOME / "hub")

from deepsynth_cli.config import GenerateConfig, RenderConfig  # noqa: E402

pytest_plugins = ["tests.support.hub_fixture"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith(("DEEPSYNTH_", "HF_", "HUGGING_FACE_")) and name not in ("HF_HOME",):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("DEEPSYNTH_CACHE_DIR", str(tmp_path / "deepsynth-cache"))
    monkeypatch.chdir(tmp_path)
    yield


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """One intra-op thread: as fast for a 0.6 M-parameter model, and on a busy 2-core machine (other test runs,
    benchmarks) two OpenMP threads stall on each other's time slices: 2x slower, measured."""
    try:
        import torch
    except ModuleNotFoundError:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def small_render() -> RenderConfig:
    """Small pages keep the tests fast; the layout code is the same at any size."""
    return RenderConfig(page_size=256, font_size=11, margin=8, max_pages=4)


@pytest.fixture
def make_jsonl(tmp_path: Path) -> Callable[..., Path]:
    """Write rows to a JSONL file named NAME (the file's stem decides its split: train/test/...)."""

    def write(rows: list[dict[str, Any]], name: str = "corpus/train.jsonl") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
        return path

    return write


def _article(index: int, words: int = 60) -> dict[str, Any]:
    body = " ".join(f"word{(index * 7 + k) % 97}" for k in range(words))
    return {
        "id": f"doc-{index:05d}",
        "text": f"Document {index}. {body}.",
        "summary": f"Summary of document {index}.",
    }


@pytest.fixture
def article() -> Callable[..., dict[str, Any]]:
    """A document whose text names its index, so every row can be traced back to its source."""
    return _article


@pytest.fixture
def generate_cfg(tmp_path: Path, small_render: RenderConfig) -> Callable[..., GenerateConfig]:
    def build(datasets: list[str], **overrides: Any) -> GenerateConfig:
        values: dict[str, Any] = {"datasets": datasets, "out": tmp_path / "out", "num_workers": 1}
        values["render"] = small_render
        values.update(overrides)
        return GenerateConfig(**values)

    return build
