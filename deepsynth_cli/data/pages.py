"""Open one page image from any form a shard row holds it in (cheap to import: Pillow only)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image


def open_page(page: Any) -> Image.Image:
    """A page as a PIL image, from an HF Image dict ({bytes, path}, as pyarrow reads it), a PIL image (as
    `datasets` decodes it), raw bytes or a file path. Raises ValueError for anything else; Pillow's own errors
    (OSError for bytes that are not an image) pass through."""
    if isinstance(page, Image.Image):
        return page
    if isinstance(page, bytes | bytearray):
        return Image.open(io.BytesIO(page))
    if isinstance(page, Mapping) and page.get("bytes") is not None:
        return Image.open(io.BytesIO(page["bytes"]))
    if isinstance(page, Mapping) and page.get("path"):
        return Image.open(page["path"])
    if isinstance(page, str | Path):
        return Image.open(page)
    raise ValueError(f"cannot read a page image from {type(page).__name__}")
