"""Compression as a target: choose the font size at which full pages carry about X text tokens per vision token.

Compression falls as the font grows (fewer characters per page, same vision tokens), so the font size is found
by bisection over whole pixel sizes, each step rendering the same sample of the dataset: the first documents of
its first split, joined, in their language, cut to full pages. The smallest size allowed is the language's
`min_legible_font_px`; a target that needs a smaller font is refused, naming the largest reachable figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from deepsynth_cli.config import RenderConfig
from deepsynth_cli.data.render import PageRenderer
from deepsynth_cli.data.rendered import compression, vision_tokens_per_page
from deepsynth_cli.data.tokens import TextTokenCounter
from deepsynth_cli.errors import ConfigError

# Smallest font size (px) a target may choose, per script, from `benchmarks/legibility.py` (Tesseract 5.3 on our
# 1024 px pages, benchmarks/RESULTS.md): the size from which the character error rate stays under ~5 %. At 8 px
# every script is 24-73 % wrong; at 10 px Latin, Cyrillic, Arabic and Devanagari are at 1.4-4 %, CJK at 6.9 %
# (0 % at 12), Thai at 14.9 % (6.7 % at 12, 3.4 % at 14).
MIN_LEGIBLE_FONT_PX = 10
_SCRIPT_FLOORS_PX = {"zh": 12, "ja": 12, "ko": 12, "th": 14}


def min_legible_font_px(language: str) -> int:
    """The smallest font size (px) that stays legible for `language` (a BCP 47 tag such as `zh-Hans`)."""
    return _SCRIPT_FLOORS_PX.get(language.split("-")[0].lower(), MIN_LEGIBLE_FONT_PX)


MAX_FONT_PX = 96  # RenderConfig's upper bound
SAMPLE_DOCS = 32  # documents of the first split measured
SAMPLE_PAGES = 2  # full pages rendered per font size tried


@dataclass(frozen=True)
class CompressionFit:
    """The font size chosen for a target and what full pages of the sample carry at that size."""

    target: float
    font_size: int
    achieved: float  # drawn text tokens per vision token on full pages of the sample
    sample_docs: int


def full_page_compression(
    render: RenderConfig, font_size: float, text: str, language: str, counter: TextTokenCounter
) -> float | None:
    """Drawn text tokens per vision token when `text` is rendered at `font_size` on full pages (None when the
    text does not fill even one page)."""
    cfg = render.model_copy(update={"font_size": float(font_size), "max_pages": SAMPLE_PAGES})
    document = PageRenderer(cfg).render(text, language)
    if not document.dropped_chars:  # the last page is not full: the figure would be too low
        pages = len(document.pages) - 1
        if pages < 1:
            return None
        document = PageRenderer(cfg.model_copy(update={"max_pages": pages})).render(text, language)
    return compression(counter.count(document.drawn_text), vision_tokens_per_page(cfg.page_size) * len(document.pages))


def _sample(render: RenderConfig, texts: Sequence[str], floor: int) -> list[str]:
    """The first SAMPLE_DOCS texts, or fewer: no more than reach twice past what SAMPLE_PAGES pages can show at
    the smallest size (4 characters per em), as the rest is never drawn. Documents may be up to
    `max_text_chars` long each: 32 of them joined would be 32 M characters."""
    content = render.page_size - 2 * render.margin
    lines = content // max(1, math.floor(floor * render.line_height)) + 1
    reach = 2 * SAMPLE_PAGES * lines * math.ceil(4 * content / floor)
    sample: list[str] = []
    for text in texts[:SAMPLE_DOCS]:
        if sum(len(kept) for kept in sample) >= reach:
            break
        sample.append(text)
    return sample


def fit_font_size(
    render: RenderConfig,
    target: float,
    texts: Sequence[str],
    language: str,
    counter: TextTokenCounter,
) -> CompressionFit:
    """The whole font size (>= the language's legible minimum) whose full pages come closest to `target`. Raises
    ConfigError when the sample is too short to fill a page or the target needs a font below that minimum."""
    floor = min_legible_font_px(language)
    sample = _sample(render, texts, floor)
    text = "\n".join(sample)

    def measure(size: int) -> float:
        value = full_page_compression(render, size, text, language, counter)
        if value is None:
            raise ConfigError(
                f"the first {len(sample)} documents do not fill a page at {size} px: cannot measure compression",
                hint="drop --target-compression and set render.font_size, or use a dataset with longer texts",
            )
        return value

    # The largest size at which one line still fits the page (the renderer refuses larger ones).
    low, high = floor, min(MAX_FONT_PX, int((render.page_size - 2 * render.margin) / render.line_height))
    densest = measure(low)
    if densest < target:
        raise ConfigError(
            f"compression {target:g}x needs a font below {floor} px, the smallest legible size for {language}: "
            f"the largest reachable is {densest:.2f}x at {floor} px",
            hint=f"ask for at most {densest:.2f}x, or raise render.page_size",
        )
    measured = {low: densest}
    while high - low > 1:  # invariant: compression(low) >= target (and > compression(high) when measured)
        middle = (low + high) // 2
        measured[middle] = measure(middle)
        if measured[middle] >= target:
            low = middle
        else:
            high = middle
    if high not in measured and high <= MAX_FONT_PX:
        measured[high] = measure(high)
    best = min((size for size in (low, high) if size in measured), key=lambda size: abs(measured[size] - target))
    return CompressionFit(target, best, measured[best], len(sample))
