"""Pagination: every page drawn from exactly the text it shows, every character accounted for, blank margins.

The pixels are the proof. A page must be pixel-identical to its own text (`RenderedDocument.page_texts`)
rendered alone: a page that painted a sliver of a neighbouring page's line, clipped a mark of its own last line, or
shifted a line would differ. The pages' texts must put the document back together with nothing lost or repeated
at a break, and the top and bottom margin bands of every page must be pure background.
"""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from deepsynth_cli.config import RenderConfig
from deepsynth_cli.data.render import PageRenderer, paragraphs_of

# Long single paragraphs (no hard breaks), a few sentences repeated with numbers so lines differ.
SENTENCES = {
    "en": "The city council approved a new budget on Tuesday that sets aside {n} million for public transport.",
    "ru": "Во вторник городской совет утвердил новый бюджет, выделив {n} миллионов на общественный транспорт.",
    "el": "Το δημοτικό συμβούλιο ενέκρινε την Τρίτη νέο προϋπολογισμό {n} εκατομμυρίων για τις συγκοινωνίες.",
    "ar": "أعلنت الحكومة اليوم عن خطة جديدة لإصلاح نظام التعليم في البلاد بتكلفة {n} مليون، وقال الوزير إن الخطة.",
    "hi": "भारत सरकार ने आज एक नई शिक्षा नीति की घोषणा की, जिसमें {n} स्कूलों के लिए कई बदलाव शामिल हैं।",
    "th": "รัฐบาลประกาศแผนปฏิรูปการศึกษาใหม่วันนี้โดยจะใช้งบประมาณ{n}ล้านบาทในการพัฒนาโรงเรียนทั่วประเทศ",
    "zh-Hans": "中国政府今天宣布了一项新的教育改革计划，投入{n}亿元，部长表示该计划将分阶段实施。",
    "vi": "Ủy ban thành phố đã thông qua ngân sách mới vào thứ Ba, dành {n} tỷ đồng cho giao thông công cộng.",
    "mixed": "Le ministre a dit {n} fois «التعليم أولا» puis 教育改革 et शिक्षा नीति, Αθήνα και Москва aussi.",
}
JOINER = {"th": "", "zh-Hans": ""}  # no spaces between sentences
# (page size, margin, font px, line height): both model page sizes, font sizes 10-24, line heights 1.0-1.5.
GEOMETRIES = [
    (1024, 24, 10, 1.0),
    (1024, 24, 18, 1.2),
    (1024, 24, 24, 1.3),
    (1024, 24, 16, 1.5),
    (768, 24, 24, 1.0),
    (768, 16, 12, 1.2),
    (768, 24, 20, 1.5),
    (384, 16, 12, 1.3),
]


def long_paragraph(language: str, lines_wanted: int, renderer: PageRenderer) -> str:
    """One paragraph of at least `lines_wanted` lines."""
    sentence, count, joiner = SENTENCES[language], 1, JOINER.get(language, " ")
    while True:
        text = joiner.join(sentence.format(n=17 * n + 3) for n in range(count))
        lines = renderer._layout(text, language)[1]
        if lines >= lines_wanted:
            return text
        count = max(count + 1, int(count * lines_wanted / lines * 1.05))


def gray(page: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page)).convert("L"))


def assert_margins_blank(pages: list[bytes], cfg: RenderConfig) -> None:
    for number, page in enumerate(pages, 1):
        pixels = gray(page)
        assert (pixels[: cfg.margin] == 255).all(), f"page {number}: ink in the top margin"
        assert (pixels[cfg.page_size - cfg.margin :] == 255).all(), f"page {number}: ink in the bottom margin"


def assert_pages_are_their_texts(renderer: PageRenderer, pages: list[bytes], texts: list[str], language: str) -> None:
    """Each page is pixel-identical to its own text rendered alone, and that text alone fills one page."""
    assert len(texts) == len(pages)
    for number, (page, text) in enumerate(zip(pages, texts, strict=True), 1):
        alone = renderer.render(text, language)
        assert alone.dropped_chars == 0 and len(alone.pages) == 1, f"page {number}: its text does not fit one page"
        assert alone.pages[0] == page, f"page {number} shows more or less than its own text"


def assert_pages_are_their_parts(
    renderer: PageRenderer, pages: list[bytes], texts: list[str], paragraph: str, language: str
) -> None:
    """The pages of one paragraph: each is pixel-identical to its part of the paragraph laid out alone.

    A part keeps the paragraph's own direction and fonts (decided from the whole paragraph: a part of a mixed-script
    paragraph that starts with another script is drawn the same), so it is laid out in the paragraph's kind here.
    """
    kind = renderer._kind(paragraph, language)
    assert len(texts) == len(pages)
    for number, (page, text) in enumerate(zip(pages, texts, strict=True), 1):
        part, lines = renderer._layout(text.rstrip(), language, kind)
        assert lines <= renderer.lines_per_page
        assert renderer._place_ink([(part, 0.0)])
        assert np.array_equal(renderer._pixels, gray(page)), f"page {number} shows more or less than its own text"


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"page{g[0]}-m{g[1]}-{g[2]}px-x{g[3]}")
@pytest.mark.parametrize("language", list(SENTENCES))
def test_every_page_is_drawn_from_exactly_its_text(language: str, geometry: tuple[int, int, int, float]) -> None:
    page_size, margin, font_size, line_height = geometry
    cfg = RenderConfig(page_size=page_size, margin=margin, font_size=font_size, line_height=line_height, max_pages=3)
    renderer = PageRenderer(cfg)
    pitch, per_page = renderer.line_pitch, renderer.lines_per_page
    # The metrics: SkParagraph's pitch is whole pixels (not font_size * line_height), and a page holds as many
    # whole lines as fit in its content box less the few rows Latin marks rise above and hang below line boxes.
    assert abs(pitch - font_size * line_height) < 1
    assert per_page * pitch <= page_size - 2 * margin < (per_page + 2) * pitch
    text = long_paragraph(language, 3 * per_page + 2, renderer)
    document = renderer.render(text, language)
    assert len(document.pages) == 3
    assert_margins_blank(document.pages, cfg)
    assert_pages_are_their_parts(renderer, document.pages, document.page_texts, text, language)
    # Nothing lost or repeated at a break: the pages' texts, in order, are the start of the paragraph, and every
    # character is on a page or counted as dropped.
    assert "".join(document.page_texts) == document.drawn_text
    assert text.startswith(document.drawn_text)
    assert len(document.drawn_text) + document.dropped_chars == document.chars_total == len(text)
    assert document.dropped_chars > 0
    kind = renderer._kind(text, language)
    for number, page_text in enumerate(document.page_texts, 1):
        lines = renderer._layout(page_text.rstrip(), language, kind)[1]
        # Full pages: a page gives up a line only where marks would otherwise reach a margin.
        assert per_page - 1 <= lines <= per_page, f"page {number}: {lines} lines of {per_page}"
    for page_text, following in zip(document.page_texts, document.page_texts[1:], strict=False):
        # A page ends at a line end: with the next word (spaced scripts) the page's text needs one more line.
        if " " in following and language not in JOINER:
            longer = page_text.rstrip() + " " + following.split(" ")[0]
            assert renderer._layout(longer, language, kind)[1] > renderer._layout(page_text.rstrip(), language, kind)[1]


@pytest.mark.parametrize("line_height", [1.0, 1.2])
@pytest.mark.parametrize("margin", [24, 3])
def test_tall_and_deep_marks_stay_inside_the_margins(line_height: float, margin: int) -> None:
    """Stacked Vietnamese capitals, Devanagari reph with candrabindu, Arabic shadda over fatha, Thai tone marks
    over upper vowels, Myanmar medials, descenders: they reach beyond the line box at small line heights, on the
    first line of a page and on its last line at a break alike, and are neither clipped nor painted into a margin."""
    cfg = RenderConfig(page_size=384, margin=margin, font_size=24, line_height=line_height, max_pages=4)
    renderer = PageRenderer(cfg)
    # The last two words stack six marks above and below: taller than any font's box, the page moves its lines
    # down or up, or holds one line fewer.
    words = (
        "ẤỖỀ gjpqy र्ँ कृपु بَّ لإِ ปั้นที่ ฎุ ǺǼ Ẫ ကြို့ a\u0301\u0301\u0301\u0301\u0301\u0301 g\u0323\u0323\u0323\u0323\u0323\u0323"
    )
    text = " ".join(f"{words} {n}" for n in range(80))
    document = renderer.render(text, "und")
    assert len(document.pages) == 4 and document.dropped_chars > 0
    assert_margins_blank(document.pages, cfg)
    assert_pages_are_their_parts(renderer, document.pages, document.page_texts, text, "und")
    assert "".join(document.page_texts) == document.drawn_text and text.startswith(document.drawn_text)


@pytest.mark.parametrize("language", list(SENTENCES))
def test_several_paragraphs_keep_their_gaps_and_lose_nothing(language: str) -> None:
    cfg = RenderConfig(page_size=384, margin=16, font_size=12, line_height=1.2, max_pages=3)
    renderer = PageRenderer(cfg)
    blocks = [long_paragraph(language, 3 + n % 4, renderer) for n in range(20)]
    document = renderer.render("\n".join(blocks), language)
    assert len(document.pages) == 3
    assert_margins_blank(document.pages, cfg)
    if language != "mixed":  # where a page starts inside a mixed paragraph, its text alone picks other fonts
        assert_pages_are_their_texts(renderer, document.pages, document.page_texts, language)
    drawn = document.drawn_text.split("\n")
    assert drawn[:-1] == blocks[: len(drawn) - 1] and blocks[len(drawn) - 1].startswith(drawn[-1])
    assert len(document.drawn_text) - document.drawn_text.count("\n") + document.dropped_chars == document.chars_total
    # The pages' texts put the drawn paragraphs back together: a paragraph cut by a page break continues at the
    # start of the next page's text.
    rebuilt = document.page_texts[0]
    for page_text in document.page_texts[1:]:
        continues = not any(block.startswith(page_text.split("\n")[0]) for block in blocks)
        rebuilt += ("" if continues else "\n") + page_text
    assert rebuilt == document.drawn_text


@pytest.mark.parametrize(
    "text,language",
    [
        # Astral code points (mathematical italic, emoji) before the cut: indices are code points, not UTF-16.
        (" ".join(f"𝑥{n} = 𝑦 + 😀 {n} and more words here" for n in range(400)), "en"),
        # Right to left: the paragraph is wrapped in embedding marks that are not part of the text.
        (" ".join(SENTENCES["ar"].format(n=n) for n in range(60)), "ar"),
        # Words wider than a line (URLs, hashes): the engine breaks inside them.
        (" ".join(f"https://example.org/{'a1b2c3' * 30}/{n}" for n in range(40)), "en"),
        # Hyphens and slashes: a line may end inside what the search takes for a word.
        (" ".join(f"well-known/long-standing co-operation {n}" for n in range(300)), "en"),
        # No spaces at all.
        ("".join(SENTENCES["zh-Hans"].format(n=n) for n in range(80)), "zh-Hans"),
        ("".join(SENTENCES["th"].format(n=n) for n in range(50)), "th"),
    ],
    ids=["astral", "arabic", "long-words", "hyphens", "chinese", "thai"],
)
def test_the_cut_is_exact_with_astral_characters_and_bidi_marks(text: str, language: str) -> None:
    renderer = PageRenderer(RenderConfig(page_size=384, margin=16, font_size=12, max_pages=1))
    document = renderer.render(text, language)
    assert 0 < document.dropped_chars < document.chars_total
    assert text.startswith(document.drawn_text)
    # The drawn text alone gives the very same page: nothing beyond the cut was painted.
    again = renderer.render(document.drawn_text, language)
    assert again.dropped_chars == 0
    assert again.pages == document.pages
    assert document.missing_glyphs == 0
    # The next word would not have fitted on the page.
    next_word = text[len(document.drawn_text) :].split()[0]
    assert renderer.render(document.drawn_text + " " + next_word, language).dropped_chars > 0


def test_a_page_break_costs_no_line_at_the_default_geometry() -> None:
    """The rows kept for Latin marks fit in the slack the default page leaves: 42 lines of 23 px, as before."""
    renderer = PageRenderer(RenderConfig())
    assert renderer.line_pitch == 23
    assert renderer.lines_per_page == (1024 - 2 * 24) // 23 == 42


def test_paragraphs_are_counted_without_their_joins() -> None:
    text = "one two\n\n three \nfour"
    document = PageRenderer(RenderConfig(page_size=256, font_size=11, margin=8)).render(text)
    assert document.drawn_text == "\n".join(paragraphs_of(text)) == "one two\nthree\nfour"
    assert document.page_texts == [document.drawn_text]
    assert document.chars_total == len("one two") + len("three") + len("four")
    assert document.dropped_chars == 0


def test_empty_text_is_one_blank_page() -> None:
    cfg = RenderConfig(page_size=256, font_size=11, margin=8)
    document = PageRenderer(cfg).render(" \n ")
    assert len(document.pages) == 1 and document.page_texts == [""] and document.drawn_text == ""
    assert (gray(document.pages[0]) == 255).all()


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
