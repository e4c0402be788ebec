"""The renderer on real fonts: scripts shaped and inside the page, pagination exact, nothing lost silently."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from deepsynth_cli.config import RenderConfig
from deepsynth_cli.data.render import PageRenderer, encode_png_gray, paragraphs_of, vision_tokens_per_page
from deepsynth_cli.errors import RenderError

ARABIC = "أعلنت الحكومة اليوم عن خطة جديدة لإصلاح نظام التعليم في البلاد، وقال الوزير إن الخطة ستنفذ على مراحل."
HINDI = "भारत सरकार ने आज एक नई शिक्षा नीति की घोषणा की, जिसमें स्कूलों के लिए कई बदलाव शामिल हैं।"
CHINESE = "中国政府今天宣布了一项新的教育改革计划，部长表示该计划将分阶段实施。"
RUSSIAN = "Правительство сегодня объявило о новой реформе образования в стране."
FRENCH = "Réforme des retraites : l'Assemblée a voté à l'unanimité, déclare le ministre."


@pytest.fixture(scope="module")
def renderer() -> PageRenderer:
    return PageRenderer(RenderConfig(page_size=512, font_size=16, margin=16, max_pages=3))


def ink(page: bytes) -> np.ndarray:
    """Boolean mask of dark pixels; also checks the page is a lossless greyscale PNG of the right size."""
    image = Image.open(io.BytesIO(page))
    assert image.format == "PNG"
    assert image.mode == "L"
    return np.asarray(image) < 128


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(mask)
    return int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max())


@pytest.mark.parametrize(
    "text,language", [(FRENCH, "fr"), (RUSSIAN, "ru"), (ARABIC, "ar"), (HINDI, "hi"), (CHINESE, "zh-Hans")]
)
def test_every_script_renders_inside_the_page(renderer: PageRenderer, text: str, language: str) -> None:
    document = renderer.render(text * 3, language)
    assert document.dropped_chars == 0
    mask = ink(document.pages[0])
    assert mask.shape == (512, 512)
    assert mask.sum() > 2000, "page is (nearly) blank"
    left, top, right, bottom = bbox(mask)
    assert left >= 16 - 2 and top >= 16 - 2 and right <= 512 - 16 + 2 and bottom <= 512 - 16 + 2


def _unknown_glyph_page(renderer: PageRenderer, length: int) -> np.ndarray:
    # U+0378 is unassigned: no font has it, so this is what a missing glyph ("tofu") looks like.
    return ink(renderer.render("\u0378" * length).pages[0])


@pytest.mark.parametrize("word,language", [("مرحبا", "ar"), ("नमस्ते", "hi"), ("你好", "zh-Hans"), ("Привет", "ru")])
def test_glyphs_come_from_a_real_font_not_tofu(renderer: PageRenderer, word: str, language: str) -> None:
    shown = ink(renderer.render(word, language).pages[0])
    tofu = _unknown_glyph_page(renderer, len(word))
    assert shown.sum() > 0
    assert (shown != tofu).sum() > 0.3 * max(shown.sum(), tofu.sum())


def test_arabic_is_joined_and_right_to_left(renderer: PageRenderer) -> None:
    joined = ink(renderer.render("مرحبا بالعالم", "ar").pages[0])
    # ZERO WIDTH NON-JOINER between letters forbids the joined forms: shaping must change the drawing.
    isolated = ink(renderer.render("\u200c".join("مرحبا") + " " + "\u200c".join("بالعالم"), "ar").pages[0])
    assert bbox(joined)[2] - bbox(joined)[0] < bbox(isolated)[2] - bbox(isolated)[0]
    # A short right-to-left paragraph hugs the right margin, not the left one.
    left, _, right, _ = bbox(joined)
    assert right >= 512 - 16 - 3
    assert left > 512 // 2


def test_latin_paragraph_starts_at_the_left_margin(renderer: PageRenderer) -> None:
    left, _, right, _ = bbox(ink(renderer.render("Hello world", "en").pages[0]))
    assert left <= 16 + 3
    assert right < 512 // 2


def test_cjk_without_spaces_wraps_over_several_lines(renderer: PageRenderer) -> None:
    mask = ink(renderer.render(CHINESE * 4, "zh-Hans").pages[0])
    rows_with_ink = np.flatnonzero(mask.any(axis=1))
    line_starts = 1 + np.count_nonzero(np.diff(rows_with_ink) > 1)
    assert line_starts >= 4
    assert bbox(mask)[2] <= 512 - 16 + 2


def test_long_document_uses_more_pages_and_loses_nothing(renderer: PageRenderer) -> None:
    text = "\n".join(f"Paragraph {n}: " + "lorem ipsum dolor sit amet " * 12 for n in range(5))
    document = renderer.render(text, "en")
    assert len(document.pages) in (2, 3)
    assert document.dropped_chars == 0
    assert not document.truncated
    assert all(ink(page).sum() > 1000 for page in document.pages)


def test_text_beyond_the_budget_is_counted_exactly() -> None:
    one_page = PageRenderer(RenderConfig(page_size=512, font_size=16, margin=16, max_pages=1))
    text = " ".join(f"w{n}" for n in range(3000))
    document = one_page.render(text, "en")
    assert document.truncated
    assert len(document.pages) == 1
    kept = document.chars_total - document.dropped_chars
    assert 0 < kept < document.chars_total
    # What was counted as kept fits exactly: alone it needs one page and loses nothing ...
    assert one_page.render(text[:kept], "en").dropped_chars == 0
    # ... and one more word would not have fitted.
    next_word_end = text.index(" ", kept + 1)
    assert one_page.render(text[:next_word_end], "en").dropped_chars > 0


@pytest.mark.parametrize(
    ("text", "language"),
    [
        (" ".join(f"w{n % 997}" for n in range(300_000)), "en"),  # 1.8 M characters, one paragraph
        ("".join(chr(0x4E00 + (n * 7) % 2000) for n in range(200_000)), "zh"),  # no spaces at all
        ("e\u0301\u0302 " * 100_000, "en"),  # combining marks: 1 in 4 characters advances
    ],
)
def test_a_paragraph_far_beyond_the_budget_is_cut_where_the_whole_one_would_be(text: str, language: str) -> None:
    # Only a prefix of such a paragraph is laid out; the pages, the drawn text and the count of what did not fit
    # are those of the whole paragraph: the kept text alone fits, and the count covers every other character.
    budget = PageRenderer(RenderConfig(page_size=256, font_size=11, margin=8, max_pages=2))
    document = budget.render(text, language)
    assert len(document.pages) == 2 and document.truncated
    kept = len(document.drawn_text)
    assert document.dropped_chars == document.chars_total - kept
    assert text.startswith(document.drawn_text)
    alone = budget.render(text[: kept + 2_000], language)
    assert alone.pages == document.pages and alone.drawn_text == document.drawn_text


def test_pages_are_identical_for_identical_input(renderer: PageRenderer) -> None:
    assert renderer.render(FRENCH * 5, "fr").pages == renderer.render(FRENCH * 5, "fr").pages


def test_webp_is_lossless() -> None:
    png = PageRenderer(RenderConfig(page_size=256, font_size=11, margin=8)).render(FRENCH)
    webp = PageRenderer(RenderConfig(page_size=256, font_size=11, margin=8, image_format="webp")).render(FRENCH)
    decoded_png = np.asarray(Image.open(io.BytesIO(png.pages[0])).convert("L"))
    decoded_webp = np.asarray(Image.open(io.BytesIO(webp.pages[0])).convert("L"))
    assert Image.open(io.BytesIO(webp.pages[0])).format == "WEBP"
    assert np.array_equal(decoded_png, decoded_webp)


def test_impossible_geometry_is_refused() -> None:
    with pytest.raises(RenderError, match="cannot hold one line"):
        PageRenderer(RenderConfig(page_size=128, font_size=60, margin=60))


def test_font_dir_without_fonts_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match=r"no \.ttf or \.otf"):
        PageRenderer(RenderConfig(font_dirs=[tmp_path]))


def test_paragraphs_collapse_whitespace_and_drop_blank_lines() -> None:
    assert paragraphs_of("  a  b \n\n\t c\r\nd  ") == ["a b", "c", "d"]


@pytest.mark.parametrize("size,tokens", [(1024, 257), (1280, 257), (768, 145), (640, 145), (512, 145)])
def test_vision_tokens_follow_the_learned_queries(size: int, tokens: int) -> None:
    assert vision_tokens_per_page(size) == tokens


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (256, 256)])
def test_png_encoder_is_lossless_and_standard(shape: tuple[int, int]) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    decoded = Image.open(io.BytesIO(encode_png_gray(pixels, 1)))
    assert decoded.format == "PNG" and decoded.mode == "L" and decoded.size == (shape[1], shape[0])
    assert np.array_equal(np.asarray(decoded), pixels)


def test_script_font_comes_first_in_the_chain(renderer: PageRenderer) -> None:
    assert renderer._primary_family(HINDI) == "Noto Sans Devanagari"
    assert renderer._primary_family(ARABIC) == "Noto Sans Arabic"
    assert renderer._primary_family(RUSSIAN) == "Noto Sans"
    assert renderer._primary_family("Le " + CHINESE).startswith("Noto Sans CJK")
    assert renderer._primary_family("12, 34.") == "Noto Sans"


MATH = "≥≤∑∫⇒∎"


def _painted_with(renderer: PageRenderer, text: str, families: list[str]) -> np.ndarray:
    """`text` laid out with the renderer's paragraph style but only `families` to draw from."""
    import skia

    styles = renderer._style("en", False, "Noto Sans")
    builder = skia.textlayout_ParagraphBuilder.make(styles.paragraph, renderer._collection, renderer._unicode)
    builder.pushStyle(renderer._text_style("en", families, skia.ColorBLACK))
    builder.addText(text)
    paragraph = builder.Build()
    paragraph.layout(renderer._content_px)
    size = renderer.cfg.page_size
    pixels = np.zeros((size, size), np.uint8)
    info = skia.ImageInfo.Make(size, size, skia.kGray_8_ColorType, skia.kOpaque_AlphaType)
    canvas = skia.Surface.MakeRasterDirect(info, pixels).getCanvas()
    canvas.clear(skia.ColorWHITE)
    paragraph.paint(canvas, renderer.cfg.margin, renderer.first_line_top)
    return pixels < 128


@pytest.mark.parametrize("language", ["en", "zh-Hans", "ar"])
def test_math_symbols_come_from_the_math_font_in_every_script(renderer: PageRenderer, language: str) -> None:
    shown = ink(renderer.render(MATH, language).pages[0])
    assert np.array_equal(shown, _painted_with(renderer, MATH, ["DejaVu Sans"]))
    assert not np.array_equal(shown, _painted_with(renderer, MATH, ["Noto Sans CJK SC"]))
    assert renderer.missing_glyphs(MATH) == 0


def test_math_symbols_in_a_chinese_paragraph_are_not_the_cjk_forms(renderer: PageRenderer) -> None:
    shown = ink(renderer.render("中文" + MATH, "zh-Hans").pages[0])
    # DejaVu Sans has no Han characters: the reference draws 中文 from the CJK face and the symbols from DejaVu.
    assert np.array_equal(shown, _painted_with(renderer, "中文" + MATH, ["DejaVu Sans", "Noto Sans CJK SC"]))
    assert not np.array_equal(shown, _painted_with(renderer, "中文" + MATH, ["Noto Sans CJK SC"]))


def test_math_runs_keep_the_text_style_around_them(renderer: PageRenderer) -> None:
    document = renderer.render(f"{ARABIC} ∑ {ARABIC}", "ar")
    assert document.missing_glyphs == 0
    # Still right-to-left and joined: the math run did not break the paragraph into pieces.
    assert bbox(ink(document.pages[0]))[2] >= 512 - 16 - 3


@pytest.mark.parametrize(
    "text,missing",
    [
        ("∎ 😀 ⇒ 𝑥", 0),  # end of proof, emoji (Noto Emoji), arrow, mathematical italic (STIX)
        ("a\u200db\u200ec\ufe0f\u00ad", 0),  # joiner, bidi mark, variation selector, soft hyphen: invisible
        ("\ue000\ue001 x", 2),  # private use: no shipped font draws it
        ("\u0378", 1),  # unassigned
    ],
)
def test_missing_glyphs_counts_what_shows_as_a_box(renderer: PageRenderer, text: str, missing: int) -> None:
    assert renderer.missing_glyphs(text) == missing
    assert renderer.render(text).missing_glyphs == missing
