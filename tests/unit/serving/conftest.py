"""A tiny model loaded once for the serving tests, and apps built around it (upload builders: uploads.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from deepsynth_cli.config import RenderConfig
from deepsynth_cli.inference.summarizer import Summarizer

SMALL = RenderConfig(page_size=256, font_size=11, margin=8, max_pages=3)


@pytest.fixture(scope="session")
def summarizer() -> Summarizer:
    """Random weights (tiny preset), small pages: real rendering and generation, fast."""
    loaded = Summarizer.load("tiny", device="cpu", max_pages=3)
    loaded.render_config = SMALL
    return loaded


@pytest.fixture
def make_client(summarizer: Summarizer) -> Callable[..., Any]:
    """`with make_client(settings=..., **serve_config_fields) as client:` a TestClient on a fresh app (own
    registry, own model thread) around the shared model."""
    from fastapi.testclient import TestClient

    from deepsynth_cli.serving.app import create_app
    from deepsynth_cli.serving.config import ServeConfig
    from deepsynth_cli.settings import Settings

    @contextmanager
    def build(settings: Settings | None = None, **fields: Any) -> Iterator[TestClient]:
        cfg = ServeConfig.model_validate({"model": "tiny", **fields})
        app = create_app(summarizer, cfg, settings or Settings())
        with TestClient(app) as client:
            yield client

    return build
