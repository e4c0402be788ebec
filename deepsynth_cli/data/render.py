"""Render a document's text into square page images, the way the vision encoder will see them.

The engine is SkParagraph (skia-python): HarfBuzz shaping, ICU bidi and line breaking, per-character font
fallback. Fonts come from pip packages (Noto), so a plain `pip install` renders every XL-Sum script with no
system fonts. Every line has the same height (a forced strut), which makes pagination exact: a paragraph that
crosses a page boundary is painted on both pages, clipped to whole lines.

Text beyond the page budget is never dropped silently: `RenderedDocument.dropped_chars` counts it.
"""

from __future__ import annotations

import functools
import io
import struct
import unicodedata
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import skia
from PIL import Image

from deepsynth_cli.config import RenderConfig
from deepsynth_cli.errors import RenderError

_LATIN = "Noto Sans"  # also covers Greek and Cyrillic
_CJK_FACES = {"ja": "Noto Sans CJK JP", "ko": "Noto Sans CJK KR", "zh-Hans": "Noto Sans CJK SC"}
_CJK_DEFAULT = "Noto Sans CJK SC"
_CJK_TRADITIONAL = ("zh-Hant", "zh-TW", "zh-HK")
_RTL_CLASSES = frozenset({"R", "AL"})
_LTR_CLASSES = frozenset({"L"})
# Embedding marks make ICU resolve a right-to-left paragraph as such: SkParagraph in skia-python has no
# paragraph-direction setter, and with a left-to-right base, punctuation at the ends of an Arabic line lands on
# the wrong side.
_RLE, _PDF = "\u202b", "\u202c"


@dataclass(frozen=True)
class RenderedDocument:
    """The pages of one document, encoded losslessly, and what did not fit the page budget."""

    pages: list[bytes]
    chars_total: int
    dropped_chars: int
    # The text the pages show: paragraphs joined by newlines, cut where the page budget ran out. Compression and
    # token counts are measured on this, never on the whole document.
    drawn_text: str = ""
    # Drawn characters no shipped font has a glyph for: each shows as an empty box.
    missing_glyphs: int = 0

    @property
    def truncated(self) -> bool:
        return self.dropped_chars > 0


@dataclass(frozen=True)
class _Font:
    family: str
    typeface: skia.Typeface


def _font_files() -> list[tuple[Path, int]]:
    """Every font file the renderer uses, with the face index inside a collection.

    manimgx-fonts: Noto Sans (Latin, Greek, Cyrillic) and a Noto face for each other script, all variable fonts
    whose default instance is Regular. noto-cjk-sans-otc: the static Regular Noto Sans CJK collection (the
    variable CJK font opens at Thin, and skia-python ignores variation coordinates).
    """
    files: list[tuple[Path, int]] = []
    for package in ("manimgx_fonts", "noto_cjk_sans_otc"):
        try:
            root = resources.files(package)
        except ModuleNotFoundError as exc:
            raise RenderError(
                f"font package {package.replace('_', '-')!r} is not installed",
                hint="reinstall deepsynth (`pip install -e .`): it depends on manimgx-fonts and noto-cjk-sans-otc",
            ) from exc
        for entry in sorted(root.iterdir(), key=lambda e: e.name):
            if entry.name.endswith((".ttf", ".otf")):
                files.append((Path(str(entry)), 0))
            elif entry.name.endswith(".ttc"):
                # Proportional faces JP, KR, SC, TC, HK come first; the Mono faces after them are not needed.
                files.extend((Path(str(entry)), index) for index in range(5))
    return files


@functools.cache
def _load_fonts(extra_dirs: tuple[Path, ...]) -> tuple[_Font, ...]:
    """Open each font once per process (skia maps the files; the CJK collection alone is 32 MB)."""
    paths = _font_files()
    for directory in extra_dirs:
        found = sorted(directory.glob("*.[ot]tf"))
        if not found:
            raise RenderError(f"no .ttf or .otf font in {directory}", hint="check `render.font_dirs`")
        paths.extend((path, 0) for path in found)
    fonts: list[_Font] = []
    for path, index in paths:
        typeface = skia.Typeface.MakeFromFile(str(path), index)
        if typeface is None:
            raise RenderError(f"cannot open font {path}", hint="reinstall the font package that ships it")
        if typeface.isItalic():  # upright faces only: an italic "Noto Sans" would compete in matching
            continue
        fonts.append(_Font(typeface.getFamilyName(), typeface))
    return tuple(fonts)


def _family_chain(language: str, families: list[str], primary: str = _LATIN) -> list[str]:
    """Families in fallback order: the paragraph's own script first, then Latin, the document's CJK face, and
    every other script.

    SkParagraph falls back only across the listed families, so every shipped script must be listed. The order
    matters for speed: each character tries the families in turn, and a Devanagari paragraph that starts its
    search at Latin and CJK lays out 5x slower than one that starts at Noto Sans Devanagari.
    """
    cjk = _CJK_FACES.get(language) or _CJK_FACES.get(language.split("-")[0])
    if language in _CJK_TRADITIONAL:
        cjk = "Noto Sans CJK TC"
    cjk = cjk or _CJK_DEFAULT
    if "CJK" in primary:
        primary = cjk  # the language decides between the JP, KR, SC and TC forms of shared Han characters
    chain = list(dict.fromkeys([primary, _LATIN, cjk]))
    chain += [family for family in families if family not in chain and "CJK" not in family]
    chain += [family for family in families if family not in chain]
    return chain


def _is_rtl(paragraph: str) -> bool:
    """Unicode bidi rule P2: the first strong character sets the paragraph direction."""
    for char in paragraph:
        category = unicodedata.bidirectional(char)
        if category in _RTL_CLASSES:
            return True
        if category in _LTR_CLASSES:
            return False
    return False


def paragraphs_of(text: str) -> list[str]:
    """Split a document into the paragraphs the page shows: one per non-blank line, whitespace collapsed."""
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


class PageRenderer:
    """Lays text out into pages of `cfg.page_size` pixels and encodes them losslessly.

    One renderer per process: it holds the font collection. Not thread-safe.
    """

    def __init__(self, cfg: RenderConfig) -> None:
        self.cfg = cfg
        fonts = _load_fonts(tuple(cfg.font_dirs))
        provider = skia.textlayout_TypefaceFontProvider()
        for font in fonts:
            provider.registerTypeface(font.typeface)
        self._collection = skia.textlayout_FontCollection()
        self._collection.setDefaultFontManager(provider)
        self._unicode = skia.Unicode()  # ICU: bidi, grapheme and line-break analysis
        self._families = list(dict.fromkeys(font.family for font in fonts))
        self._fonts = fonts
        self._script_family: dict[int, str] = {}  # code point -> first family that has a glyph for it
        self._has_glyph: dict[str, bool] = {}  # character -> some font draws it
        self._line_px = cfg.font_size * cfg.line_height
        self._content_px = cfg.page_size - 2 * cfg.margin
        self._lines_per_page = int(self._content_px // self._line_px)
        if self._lines_per_page < 1:
            raise RenderError(
                f"a {cfg.page_size}px page with {cfg.margin}px margins cannot hold one line of {cfg.font_size}px text",
                hint="lower render.font_size or render.margin, or raise render.page_size",
            )
        self._styles: dict[str, tuple[skia.textlayout_ParagraphStyle, skia.textlayout_TextStyle]] = {}
        # Draw straight into a greyscale buffer that numpy shares: no RGBA pass, no copy before encoding.
        self._pixels = np.zeros((cfg.page_size, cfg.page_size), np.uint8)
        info = skia.ImageInfo.Make(cfg.page_size, cfg.page_size, skia.kGray_8_ColorType, skia.kOpaque_AlphaType)
        self._surface = skia.Surface.MakeRasterDirect(info, self._pixels)

    @property
    def lines_per_page(self) -> int:
        return self._lines_per_page

    def _primary_family(self, paragraph: str) -> str:
        """The family for the paragraph's first letter outside Latin, Greek and Cyrillic (Noto Sans has those)."""
        for char in paragraph:
            code = ord(char)
            if code < 0x0530 or not char.isalpha():  # up to Cyrillic Supplement: Noto Sans
                continue
            family = self._script_family.get(code)
            if family is None:
                family = next((f.family for f in self._fonts if f.typeface.unicharToGlyph(code)), _LATIN)
                self._script_family[code] = family
            return family
        return _LATIN

    def _style(
        self, language: str, rtl: bool, primary: str
    ) -> tuple[skia.textlayout_ParagraphStyle, skia.textlayout_TextStyle]:
        key = f"{language}|{rtl}|{primary}"
        if key not in self._styles:
            text_style = skia.textlayout_TextStyle()
            text_style.setFontSize(self.cfg.font_size)
            text_style.setFontFamilies(_family_chain(language, self._families, primary))
            text_style.setColor(skia.ColorBLACK)
            text_style.setLocale(language if language != "und" else "en")
            strut = skia.textlayout_StrutStyle()
            strut.setStrutEnabled(True)
            strut.setForceStrutHeight(True)
            strut.setFontFamilies([_LATIN])
            strut.setFontSize(self.cfg.font_size)
            strut.setHeight(self.cfg.line_height)
            strut.setHeightOverride(True)
            paragraph_style = skia.textlayout_ParagraphStyle()
            paragraph_style.setTextStyle(text_style)
            paragraph_style.setStrutStyle(strut)
            paragraph_style.setTextAlign(skia.textlayout_TextAlign.kRight if rtl else skia.textlayout_TextAlign.kLeft)
            self._styles[key] = (paragraph_style, text_style)
        return self._styles[key]

    def _layout(self, text: str, language: str) -> tuple[skia.textlayout_Paragraph, int]:
        """Lay one paragraph out at the content width; returns it and its number of lines."""
        rtl = _is_rtl(text)
        paragraph_style, text_style = self._style(language, rtl, self._primary_family(text))
        builder = skia.textlayout_ParagraphBuilder.make(paragraph_style, self._collection, self._unicode)
        builder.pushStyle(text_style)
        builder.addText(f"{_RLE}{text}{_PDF}" if rtl else text)
        paragraph = builder.Build()
        paragraph.layout(self._content_px)
        return paragraph, max(1, round(paragraph.Height / self._line_px))

    def _chars_on_first_lines(self, text: str, language: str, lines: int) -> int:
        """How many characters of `text` fill its first `lines` lines.

        Line breaking is greedy, so a prefix breaks exactly like the whole paragraph up to its last line:
        the longest word prefix that still fits in `lines` lines is what those lines show.
        """
        words = text.split(" ")
        low, high = 0, len(words)  # invariant: words[:low] fits
        while low < high:
            middle = (low + high + 1) // 2
            if self._layout(" ".join(words[:middle]), language)[1] <= lines:
                low = middle
            else:
                high = middle - 1
        return len(" ".join(words[:low]))

    def render(self, text: str, language: str = "und") -> RenderedDocument:
        """Render `text` into at most `cfg.max_pages` pages; count what does not fit instead of hiding it."""
        cfg = self.cfg
        blocks = paragraphs_of(text)
        chars_total = sum(len(block) for block in blocks)
        gap_lines = cfg.paragraph_spacing
        canvas = self._surface.getCanvas()
        pages: list[bytes] = []
        line = 0.0  # position on the current page, in lines (paragraph gaps may be fractional)
        page_open = False
        dropped = 0

        def new_page() -> None:
            nonlocal page_open, line
            if page_open:
                pages.append(self._encode())
            canvas.clear(skia.ColorWHITE)
            page_open, line = True, 0.0

        new_page()
        drawn = blocks
        for index, block in enumerate(blocks):
            if index and line > 0:
                line += gap_lines
            paragraph, n_lines = self._layout(block, language)
            done = 0  # lines of this paragraph already painted
            while done < n_lines:
                room = int(self._lines_per_page - line + 1e-6)
                if room <= 0:
                    if len(pages) + 1 >= cfg.max_pages:
                        break
                    new_page()
                    continue
                take = min(room, n_lines - done)
                top = cfg.margin + line * self._line_px
                canvas.save()
                canvas.clipRect(skia.Rect.MakeXYWH(0, top, cfg.page_size, take * self._line_px))
                paragraph.paint(canvas, cfg.margin, top - done * self._line_px)
                canvas.restore()
                done += take
                line += take
            if done < n_lines:  # out of pages in the middle of this paragraph
                kept = self._chars_on_first_lines(block, language, done) if done else 0
                dropped = len(block) - kept + sum(len(rest) for rest in blocks[index + 1 :])
                drawn = [*blocks[:index], block[:kept]] if kept else blocks[:index]
                break
        pages.append(self._encode())
        drawn_text = "\n".join(drawn)
        return RenderedDocument(
            pages=pages,
            chars_total=chars_total,
            dropped_chars=dropped,
            drawn_text=drawn_text,
            missing_glyphs=self.missing_glyphs(drawn_text),
        )

    def missing_glyphs(self, text: str) -> int:
        """How many characters of `text` no loaded font can draw (whitespace, controls and marks excepted)."""
        missing = 0
        for char in set(text):
            known = self._has_glyph.get(char)
            if known is None:
                if char.isspace() or unicodedata.category(char)[0] in "CZ":
                    known = True
                else:
                    code = ord(char)
                    known = any(font.typeface.unicharToGlyph(code) for font in self._fonts)
                self._has_glyph[char] = known
            if not known:
                missing += text.count(char)
        return missing

    def _encode(self) -> bytes:
        """Greyscale, lossless. PNG level 1 is 2-4x faster than WebP lossless at ~5x the size (rendering.md)."""
        if self.cfg.image_format == "webp":
            buffer = io.BytesIO()
            Image.fromarray(self._pixels, "L").save(buffer, "WEBP", lossless=True, quality=90, method=1)
            return buffer.getvalue()
        return encode_png_gray(self._pixels, self.cfg.png_compress_level)


def encode_png_gray(pixels: np.ndarray, level: int) -> bytes:
    """A greyscale 8-bit PNG with no row filters, compressed by zlib at `level`.

    Why not Pillow: it picks a filter for every row, which is most of its cost on a page (about 5 ms against
    2 ms here, measured at 1024 px) and buys nothing on black text over white: the files come out the same size.
    The format is the PNG specification's simplest case: IHDR, one IDAT, IEND; any decoder reads it.
    """
    height, width = pixels.shape
    rows = np.zeros((height, width + 1), np.uint8)  # a leading 0 per row: filter type None
    rows[:, 1:] = pixels

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale, no interlace
    data = zlib.compress(rows.tobytes(), level)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def vision_tokens_per_page(page_size: int) -> int:
    """Tokens DeepSeek-OCR-2 spends on one page shown as a single global view (`rendered`'s one formula)."""
    from deepsynth_cli.data.rendered import vision_tokens_per_page as per_page

    return per_page(page_size)
