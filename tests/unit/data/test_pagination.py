"""Pagination from the engine's own line pitch: every line whole on one page, every character accounted for.

Each page is checked against the paragraph painted whole on one tall surface: the line boxes a page shows must be
pixel-identical to the same lines there, so a line cut in half, shifted, or missing fails. What the pages show is
checked by rendering `drawn_text` again: it must give the very same pages with nothing dropped.
"""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
import skia
from PIL import Image

from deepsynth_cli.config import RenderConfig
from deepsynth_cli.data.render import PageRenderer, paragraphs_of

# Long single paragraphs (no hard breaks), a few sentences repeated with numbers so lines differ.
SENTENCES = {
    "en": "The city council approved a new budget on Tuesday that sets aside {n} million for public transport.",
    "ru": "Во вторник городской совет утвердил новый бюджет, выделив {n} миллионов на общественный транспорт.",
    "ar": "أعلنت الحكومة اليوم عن خطة جديدة لإصلاح نظام التعليم في البلاد بتكلفة {n} مليون، وقال الوزير إن الخطة.",
    "hi": "भारत सरकार ने आज एक नई शिक्षा नीति की घोषणा की, जिसमें {n} स्कूलों के लिए कई बदलाव शामिल हैं।",
    "th": "รัฐบาลประกาศแผนปฏิรูปการศึกษาใหม่วันนี้ โดยจะใช้งบประมาณ {n} ล้านบาทในการพัฒนาโรงเรียนทั่วประเทศ",
    "zh-Hans": "中国政府今天宣布了一项新的教育改革计划，投入{n}亿元，部长表示该计划将分阶段实施。",
}
# (page size, margin, font px, line height): both model page sizes and the small test size.
GEOMETRIES = [(1024, 24, 12, 1.2), (1024, 24, 18, 1.3), (768, 24, 20, 1.5), (384, 16, 12, 1.3)]


def long_paragraph(language: str, lines_wanted: int, renderer: PageRenderer) -> str:
    """One paragraph of at least `lines_wanted` lines."""
    sentence, count = SENTENCES[language], 1
    while True:
        text = " ".join(sentence.format(n=17 * n + 3) for n in range(count))
        lines = renderer._layout(text, language)[1]
        if lines >= lines_wanted:
            return text
        count = max(count + 1, int(count * lines_wanted / lines * 1.05))


def gray(page: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page)).convert("L"))


def assert_same_pages_but_the_cut(truncated: list[bytes], whole: list[bytes], renderer: PageRenderer) -> None:
    """`whole` (the drawn text rendered alone) shows what `truncated` shows. Only where the page budget cut the
    paragraph may they differ: there the truncated page clips the paragraph at its last line box (descenders
    hanging below it are cut, marks rising from the next, undrawn line into it are kept), while the drawn text
    alone ends there. Both stay within a few pixels of that line box edge.
    """
    assert len(whole) == len(truncated)
    assert whole[:-1] == truncated[:-1]
    cut, alone = gray(truncated[-1]), gray(whole[-1])
    rows = np.flatnonzero((cut != alone).any(axis=1))
    if rows.size:
        inked = np.flatnonzero((cut < 250).any(axis=1))
        margin, pitch = renderer.cfg.margin, renderer.line_pitch
        bottom = margin + ((int(inked.max()) - margin) // pitch + 1) * pitch  # the last line box's bottom
        assert rows.min() >= bottom - renderer.line_pitch // 3 and rows.max() < bottom + renderer.line_pitch // 2


def painted_whole(renderer: PageRenderer, text: str, language: str) -> tuple[np.ndarray, int]:
    """The paragraph painted unclipped on one surface as tall as it is, at the page's content width."""
    paragraph, lines = renderer._layout(text, language)
    height, width = lines * renderer.line_pitch, renderer.cfg.page_size
    pixels = np.zeros((height, width), np.uint8)
    info = skia.ImageInfo.Make(width, height, skia.kGray_8_ColorType, skia.kOpaque_AlphaType)
    canvas = skia.Surface.MakeRasterDirect(info, pixels).getCanvas()
    canvas.clear(skia.ColorWHITE)
    paragraph.paint(canvas, renderer.cfg.margin, 0)
    return pixels, lines


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"page{g[0]}-{g[2]}px-x{g[3]}")
@pytest.mark.parametrize("language", list(SENTENCES))
def test_every_line_lies_whole_on_one_page(language: str, geometry: tuple[int, int, int, float]) -> None:
    page_size, margin, font_size, line_height = geometry
    cfg = RenderConfig(page_size=page_size, margin=margin, font_size=font_size, line_height=line_height, max_pages=3)
    renderer = PageRenderer(cfg)
    pitch, per_page = renderer.line_pitch, renderer.lines_per_page
    # The metrics: SkParagraph's pitch is whole pixels (not font_size * line_height), every line of the
    # paragraph is exactly that tall, and a page holds as many whole lines as fit in its content box.
    assert pitch == round(font_size * line_height) or abs(pitch - font_size * line_height) < 1
    text = long_paragraph(language, 3 * per_page + 2, renderer)
    whole, lines = painted_whole(renderer, text, language)
    assert renderer._layout(text, language)[0].Height == lines * pitch
    assert per_page * pitch <= page_size - 2 * margin < (per_page + 1) * pitch
    assert lines > 3 * per_page, "the paragraph must overflow three pages"

    document = renderer.render(text, language)
    assert len(document.pages) == 3
    # The pixels: page k shows lines [k * per_page, ...) of the paragraph, identical to the whole painting.
    shown = 0
    for number, page in enumerate(document.pages):
        pixels = gray(page)
        count = min(per_page, lines - shown)
        box = pixels[margin : margin + count * pitch]
        expected = whole[shown * pitch : (shown + count) * pitch]
        assert np.array_equal(box, expected), f"page {number + 1}: its lines differ from the paragraph's"
        # Nothing of the paragraph's other lines: the bands above the first and below the last line box are
        # blank (the first page may show accents rising above the paragraph's first line).
        below = pixels[margin + count * pitch :]
        assert (below > 250).all(), f"page {number + 1}: ink below its last whole line"
        if number:
            assert (pixels[:margin] > 250).all(), f"page {number + 1}: ink in the top margin"
        shown += count
    # Every character is on a page or counted as dropped, and the pages show exactly `drawn_text`.
    kept = len(document.drawn_text)
    assert kept + document.dropped_chars == document.chars_total == len(text)
    assert document.dropped_chars > 0
    again = renderer.render(document.drawn_text, language)
    assert again.dropped_chars == 0
    assert_same_pages_but_the_cut(document.pages, again.pages, renderer)


@pytest.mark.parametrize("language", list(SENTENCES))
def test_several_paragraphs_keep_their_gaps_and_lose_nothing(language: str) -> None:
    cfg = RenderConfig(page_size=384, margin=16, font_size=12, line_height=1.3, max_pages=2)
    renderer = PageRenderer(cfg)
    text = "\n".join(long_paragraph(language, 3 + n % 4, renderer) for n in range(14))
    document = renderer.render(text, language)
    assert len(document.pages) == 2
    assert len(document.drawn_text) - document.drawn_text.count("\n") + document.dropped_chars == document.chars_total
    assert_same_pages_but_the_cut(document.pages, renderer.render(document.drawn_text, language).pages, renderer)
    for page in document.pages:
        pixels = gray(page)
        assert (pixels[: 16 - 6] > 250).all() and (pixels[384 - 16 + 6 :] > 250).all()


@pytest.mark.parametrize(
    "text,language",
    [
        # Astral code points (mathematical italic, emoji) before the cut: indices are code points, not UTF-16.
        (" ".join(f"𝑥{n} = 𝑦 + 😀 {n} and more words here" for n in range(400)), "en"),
        # Right to left: the paragraph is wrapped in embedding marks that are not part of the text.
        (" ".join(SENTENCES["ar"].format(n=n) for n in range(60)), "ar"),
        # Words wider than a line (URLs, hashes): the engine breaks inside them.
        (" ".join(f"https://example.org/{'a1b2c3' * 30}/{n}" for n in range(40)), "en"),
        # No spaces at all.
        ("".join(SENTENCES["zh-Hans"].format(n=n) for n in range(80)), "zh-Hans"),
        ("".join(SENTENCES["th"].format(n=n).replace(" ", "") for n in range(50)), "th"),
    ],
    ids=["astral", "arabic", "long-words", "chinese", "thai"],
)
def test_the_cut_is_exact_with_astral_characters_and_bidi_marks(text: str, language: str) -> None:
    renderer = PageRenderer(RenderConfig(page_size=384, margin=16, font_size=12, max_pages=1))
    document = renderer.render(text, language)
    assert 0 < document.dropped_chars < document.chars_total
    assert text.startswith(document.drawn_text)
    again = renderer.render(document.drawn_text, language)
    assert again.dropped_chars == 0
    assert_same_pages_but_the_cut(document.pages, again.pages, renderer)
    assert document.missing_glyphs == 0
    # The next word would not have fitted on the page.
    next_word = text[len(document.drawn_text) :].split()[0]
    assert renderer.render(document.drawn_text + " " + next_word, language).dropped_chars > 0


def test_paragraphs_are_counted_without_their_joins() -> None:
    text = "one two\n\n three \nfour"
    document = PageRenderer(RenderConfig(page_size=256, font_size=11, margin=8)).render(text)
    assert document.drawn_text == "\n".join(paragraphs_of(text)) == "one two\nthree\nfour"
    assert document.chars_total == len("one two") + len("three") + len("four")
    assert document.dropped_chars == 0


def test_rendering_prints_nothing_on_stderr() -> None:
    """No fontconfig warnings: only the shipped fonts are opened, never through skia's system font manager."""
    script = (
        "from deepsynth_cli.config import RenderConfig\n"
        "from deepsynth_cli.data.render import PageRenderer\n"
        "document = PageRenderer(RenderConfig(page_size=256, font_size=12)).render('Hello ≥ 中文 مرحبا')\n"
        "assert document.pages and document.missing_glyphs == 0\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
