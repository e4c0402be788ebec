"""The legibility benchmark's OCR wrapper reads one of our pages (Tesseract is Debian's, not a dependency)."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from deepsynth_cli.config import RenderConfig
from deepsynth_cli.data.render import PageRenderer

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "legibility.py"


def _benchmark() -> ModuleType:
    """benchmarks/ is no package: load the script as a module (registered first: its dataclasses need that)."""
    spec = importlib.util.spec_from_file_location("legibility_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_error_rate_is_an_edit_distance_without_whitespace() -> None:
    legibility = _benchmark()
    assert legibility.edit_distance("kitten", "sitting") == 3
    assert legibility.comparable("a b\n c\u0301") == "abć"


NO_TESSERACT = "tesseract is not installed (Debian: apt-get install tesseract-ocr); the benchmark needs it, CI does not"


@pytest.mark.skipif(shutil.which("tesseract") is None, reason=NO_TESSERACT)
def test_tesseract_reads_a_rendered_page(tmp_path: Path) -> None:
    legibility = _benchmark()
    page = PageRenderer(RenderConfig(page_size=384, font_size=24, margin=16)).render("The quick brown fox jumps")
    image = tmp_path / "page.png"
    image.write_bytes(page.pages[0])
    read = legibility.comparable(legibility.ocr(image, "eng"))
    assert legibility.edit_distance(legibility.comparable(page.drawn_text), read) <= 2
