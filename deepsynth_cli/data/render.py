"""Render a document's text into square page images, the way the vision encoder will see them.

The engine is SkParagraph (skia-python): HarfBuzz shaping, ICU bidi and line breaking, per-character font
fallback. Fonts come from pip packages (Noto; DejaVu Sans and STIX General from matplotlib for math), so a plain
`pip install` renders every XL-Sum script with no system fonts. Every line has the same height (a forced
strut): SkParagraph rounds it to whole pixels, so the pitch is measured from the engine
(`PageRenderer.line_pitch`), never computed as `font_size * line_height`. A paragraph that crosses a page
boundary is painted on both pages, clipped to whole line boxes of that pitch: every line lies whole on exactly
one page.

Text beyond the page budget is never dropped silently: `RenderedDocument.dropped_chars` counts it.
"""

from __future__ import annotations

import functools
import io
import math
import re
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
# The math faces, from matplotlib (a dependency already): DejaVu Sans (Bitstream Vera / DejaVu licence) for
# operators and arrows, STIX General (SIL OFL) for the mathematical alphanumerics DejaVu lacks (𝑥, 𝔸). Both may be
# redistributed. Noto Sans lacks the mathematical operators and arrows, so without them they came from Noto Sans
# CJK in its full-width forms, and U+220E END OF PROOF from nowhere (a box).
_MATH_FACES = ("DejaVu Sans", "STIXGeneral")
_MATH_FILES = ("DejaVuSans.ttf", "STIXGeneral.ttf")
# Runs of these code points get a text style that tries the math face first, whatever the paragraph's script:
# arrows, mathematical operators, miscellaneous technical, math symbols A/B, supplemental arrows and operators,
# mathematical alphanumerics.
_MATH_RUNS = re.compile("[\u2190-\u23ff\u27c0-\u27ff\u2900-\u2aff\U0001d400-\U0001d7ff]+")
# Characters that draw nothing by design: not counted as missing glyphs. Private-use and unassigned code points
# are counted: no shipped font draws them.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zs", "Zl", "Zp"})
_VARIATION_SELECTORS = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")


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


# The two colours of `PageRenderer._chars_on_first_lines`: red before the cut, blue after it.
_PROBE_BEFORE, _PROBE_AFTER = skia.ColorRED, skia.ColorBLUE
# Characters after the cut a probe lays out: more than the longest unbreakable run that can start a line.
_PROBE_WINDOW = 256


@dataclass(frozen=True)
class _Styles:
    """The styles of one kind of paragraph: its own, its math runs', and the two probe colours."""

    paragraph: skia.textlayout_ParagraphStyle
    text: skia.textlayout_TextStyle
    math: skia.textlayout_TextStyle
    probe: tuple[skia.textlayout_TextStyle, skia.textlayout_TextStyle]


def _font_files() -> list[tuple[Path, int]]:
    """Every font file the renderer uses, with the face index inside a collection.

    manimgx-fonts: Noto Sans (Latin, Greek, Cyrillic) and a Noto face for each other script, all variable fonts
    whose default instance is Regular. noto-cjk-sans-otc: the static Regular Noto Sans CJK collection (the
    variable CJK font opens at Thin, and skia-python ignores variation coordinates). matplotlib: DejaVu Sans, the
    math face.
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
    # Last: a script's letters come from its Noto face even where DejaVu Sans has them too.
    try:
        math_dir = resources.files("matplotlib") / "mpl-data" / "fonts" / "ttf"
        files.extend((Path(str(math_dir / name)), 0) for name in _MATH_FILES)
    except ModuleNotFoundError as exc:
        raise RenderError(
            "matplotlib (which ships the math font DejaVu Sans) is not installed",
            hint="reinstall deepsynth (`pip install -e .`): it depends on matplotlib",
        ) from exc
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
    # An empty custom font manager opens the files: `skia.Typeface.MakeFromFile` goes through the default one, which
    # starts fontconfig and prints its warnings about the system's configuration, although no system font is used.
    manager = skia.FontMgr.New_Custom_Empty()
    fonts: list[_Font] = []
    for path, index in paths:
        typeface = manager.makeFromFile(str(path), index)
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
    # The math faces last: DejaVu Sans also has Arabic, Hebrew, Armenian, ... letters, which must come from Noto.
    # Math runs get the math faces first through their own text style (`PageRenderer._layout`).
    chain += [family for family in families if family not in chain and "CJK" not in family]
    chain += [family for family in families if family not in chain]
    return [*(family for family in chain if family not in _MATH_FACES), *(f for f in _MATH_FACES if f in families)]


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


def lacks_glyph(char: str, fonts: tuple[_Font, ...]) -> bool:
    """True when `char` should be drawn but none of `fonts` has a glyph for it (it would show as an empty box).

    Spaces, controls, format characters (joiners, bidi marks) and variation selectors draw nothing by design;
    private-use and unassigned code points count as missing, as no shipped font has them. The one rule for
    `RenderedDocument.missing_glyphs` and `validate`'s font check.
    """
    if unicodedata.category(char) in _INVISIBLE_CATEGORIES or _VARIATION_SELECTORS.match(char):
        return False
    code = ord(char)
    return not any(font.typeface.unicharToGlyph(code) for font in fonts)


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
        self._styles: dict[str, _Styles] = {}
        self._content_px = cfg.page_size - 2 * cfg.margin
        # The line pitch as the engine lays it out: the strut is forced, so every line of every script is exactly
        # this tall (whole pixels: 23 px at 18 px x 1.3, not 23.4) and a paragraph of n lines is n pitches tall.
        self._line_px = 1  # until measured, just below
        self._line_px = round(self._layout("x", "en")[0].Height)
        self._lines_per_page = self._content_px // self._line_px if self._content_px > 0 else 0
        # More characters than a line of the narrowest text holds (4 per em): where a long paragraph's prefix starts.
        self._chars_per_line = max(16, math.ceil(4 * self._content_px / cfg.font_size))
        if self._lines_per_page < 1:
            raise RenderError(
                f"a {cfg.page_size}px page with {cfg.margin}px margins cannot hold one line of {cfg.font_size}px text",
                hint="lower render.font_size or render.margin, or raise render.page_size",
            )
        # Draw straight into a greyscale buffer that numpy shares: no RGBA pass, no copy before encoding.
        self._pixels = np.zeros((cfg.page_size, cfg.page_size), np.uint8)
        info = skia.ImageInfo.Make(cfg.page_size, cfg.page_size, skia.kGray_8_ColorType, skia.kOpaque_AlphaType)
        self._surface = skia.Surface.MakeRasterDirect(info, self._pixels)
        self._probe: tuple[np.ndarray, skia.Surface] | None = None  # colour surface of one line, made on first use

    @property
    def lines_per_page(self) -> int:
        return self._lines_per_page

    @property
    def line_pitch(self) -> int:
        """Pixels from one line's top to the next one's, as SkParagraph lays lines out."""
        return self._line_px

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

    def _text_style(self, language: str, families: list[str], color: int) -> skia.textlayout_TextStyle:
        text_style = skia.textlayout_TextStyle()
        text_style.setFontSize(self.cfg.font_size)
        text_style.setFontFamilies(families)
        text_style.setColor(color)
        text_style.setLocale(language if language != "und" else "en")
        return text_style

    def _style(self, language: str, rtl: bool, primary: str) -> _Styles:
        key = f"{language}|{rtl}|{primary}"
        if key not in self._styles:
            chain = _family_chain(language, self._families, primary)
            math_chain = [*(f for f in chain if f in _MATH_FACES), *(f for f in chain if f not in _MATH_FACES)]
            strut = skia.textlayout_StrutStyle()
            strut.setStrutEnabled(True)
            strut.setForceStrutHeight(True)
            strut.setFontFamilies([_LATIN])
            strut.setFontSize(self.cfg.font_size)
            strut.setHeight(self.cfg.line_height)
            strut.setHeightOverride(True)
            text_style = self._text_style(language, chain, skia.ColorBLACK)
            paragraph_style = skia.textlayout_ParagraphStyle()
            paragraph_style.setTextStyle(text_style)
            paragraph_style.setStrutStyle(strut)
            paragraph_style.setTextAlign(skia.textlayout_TextAlign.kRight if rtl else skia.textlayout_TextAlign.kLeft)
            self._styles[key] = _Styles(
                paragraph_style,
                text_style,
                self._text_style(language, math_chain, skia.ColorBLACK),
                # Only the colour differs, and SkParagraph shapes and breaks across runs that differ only in colour
                # as if they were one: the probes of `_chars_on_first_lines` lay out exactly like the paragraph.
                (self._text_style(language, chain, _PROBE_BEFORE), self._text_style(language, chain, _PROBE_AFTER)),
            )
        return self._styles[key]

    def _layout(self, text: str, language: str) -> tuple[skia.textlayout_Paragraph, int]:
        """Lay one paragraph out at the content width; returns it and its number of lines."""
        rtl = _is_rtl(text)
        styles = self._style(language, rtl, self._primary_family(text))
        builder = skia.textlayout_ParagraphBuilder.make(styles.paragraph, self._collection, self._unicode)
        builder.pushStyle(styles.text)
        if rtl:
            builder.addText(_RLE)
        start = 0
        for run in _MATH_RUNS.finditer(text):  # math symbols from the math face, upright, in every script
            builder.addText(text[start : run.start()])
            builder.pushStyle(styles.math)
            builder.addText(run.group())
            builder.pop()
            start = run.end()
        builder.addText(text[start:])
        if rtl:
            builder.addText(_PDF)
        paragraph = builder.Build()
        paragraph.layout(self._content_px)
        return paragraph, self._lines_of(paragraph)

    def _layout_within(self, text: str, language: str, lines: int) -> tuple[skia.textlayout_Paragraph, int, int]:
        """Lay out `text`, or only as much of it as runs past `lines` lines: the paragraph, its number of lines and
        the characters laid out. The page budget shows at most `lines` more lines, and line breaking goes left to
        right, so the first `lines` lines of a longer prefix are those of the whole paragraph. A prefix that
        does not run two lines past is doubled; a 5 MB paragraph laid out whole took 1.3 GB and 9 s."""
        size = (max(lines, 0) + 2) * self._chars_per_line + _PROBE_WINDOW
        while size < len(text):
            paragraph, n_lines = self._layout(text[:size], language)
            if n_lines >= lines + 2:
                return paragraph, n_lines, size
            size *= 2
        paragraph, n_lines = self._layout(text, language)
        return paragraph, n_lines, len(text)

    def _lines_of(self, paragraph: skia.textlayout_Paragraph) -> int:
        return max(1, round(float(paragraph.Height) / self._line_px))

    def _chars_on_first_lines(self, text: str, language: str, lines: int, total_lines: int | None = None) -> int:
        """How many characters of `text` its first `lines` lines show (the line ends the page budget cut at).

        skia-python 144 exposes no line metrics (no `getLineMetrics`, no text ranges), so the engine is asked by
        colour: the paragraph is laid out with its first k characters in one colour and the rest in another, and
        the largest k whose colour leaves line `lines + 1` without ink is where that line starts. Colour does not
        change shaping or line breaking, so this holds in every script, including those without spaces (CJK,
        Thai) and right-to-left ones; indices are Python code points, never UTF-8 or UTF-16 offsets.

        Speed: a probe lays out only `text[:k + _PROBE_WINDOW]` (where line `lines + 1` starts does not depend on
        text a whole window further on), and the search starts from the proportional estimate when
        `total_lines` (the paragraph's line count) is given.
        """
        if lines <= 0:
            return 0
        rtl = _is_rtl(text)
        styles = self._style(language, rtl, self._primary_family(text))
        before, after = styles.probe
        if self._probe is None:
            rows = self._line_px
            pixels = np.zeros((rows, self._content_px, 4), np.uint8)
            info = skia.ImageInfo.Make(self._content_px, rows, skia.kRGBA_8888_ColorType, skia.kOpaque_AlphaType)
            self._probe = (pixels, skia.Surface.MakeRasterDirect(info, pixels))
        pixels, surface = self._probe
        # The band of line `lines + 1`, less its top quarter, where the descenders of the line above may reach.
        skip = math.ceil(self._line_px / 4)
        top = lines * self._line_px + skip

        def first_part_reaches_next_line(k: int) -> bool:
            builder = skia.textlayout_ParagraphBuilder.make(styles.paragraph, self._collection, self._unicode)
            builder.pushStyle(before)
            builder.addText((_RLE if rtl else "") + text[:k])
            builder.pop()
            builder.pushStyle(after)
            builder.addText(text[k : k + _PROBE_WINDOW] + (_PDF if rtl else ""))
            paragraph = builder.Build()
            paragraph.layout(self._content_px)
            canvas = surface.getCanvas()
            canvas.clear(skia.ColorWHITE)
            paragraph.paint(canvas, 0, -top)
            # The first part is red: only its ink darkens the blue channel.
            return bool((pixels[: self._line_px - skip, :, 2] < 160).any())

        # Invariant: k = low leaves the next line without the first colour; k = high does not.
        low, high = 0, len(text)
        if total_lines:
            estimate, span = len(text) * lines // total_lines, max(64, 2 * len(text) // total_lines)
            low, high = max(0, estimate - span), min(len(text), estimate + span)
            if low > 0 and first_part_reaches_next_line(low):
                low = 0
            if high < len(text) and not first_part_reaches_next_line(high):
                high = len(text)
        while high - low > 1:
            middle = (low + high) // 2
            if first_part_reaches_next_line(middle):
                high = middle
            else:
                low = middle
        return len(text[:low].rstrip())

    def render(self, text: str, language: str = "und") -> RenderedDocument:
        """Render `text` into at most `cfg.max_pages` pages; count what does not fit instead of hiding it.

        Every line lies whole on one page: lines are placed at the engine's own pitch, and a line that does not
        fit above the bottom margin starts the next page.
        """
        cfg = self.cfg
        blocks = paragraphs_of(text)
        chars_total = sum(len(block) for block in blocks)
        pitch = self._line_px
        gap_px = cfg.paragraph_spacing * pitch
        canvas = self._surface.getCanvas()
        pages: list[bytes] = []
        y = 0.0  # pixels used on the current page, from the top of the content box
        page_open = False
        dropped = 0

        def new_page() -> None:
            nonlocal page_open, y
            if page_open:
                pages.append(self._encode())
            canvas.clear(skia.ColorWHITE)
            page_open, y = True, 0.0

        new_page()
        drawn = blocks
        for index, block in enumerate(blocks):
            if index and y > 0:
                y += gap_px
            lines_left = int((self._content_px - y) / pitch + 1e-9)
            lines_left += (cfg.max_pages - len(pages) - 1) * self._lines_per_page
            paragraph, n_lines, laid = self._layout_within(block, language, lines_left)
            done = 0  # lines of this paragraph already painted
            while done < n_lines:
                room = int((self._content_px - y) / pitch + 1e-9)
                if room <= 0:
                    if len(pages) + 1 >= cfg.max_pages:
                        break
                    new_page()
                    continue
                take = min(room, n_lines - done)
                top = cfg.margin + y
                # Clip only where the paragraph goes on across a page break (to whole line boxes); at its own
                # first and last line, accents and marks that rise or hang beyond the line box stay whole.
                clip_top = top if done else 0.0
                clip_bottom = top + take * pitch if done + take < n_lines else float(cfg.page_size)
                canvas.save()
                canvas.clipRect(skia.Rect.MakeLTRB(0, clip_top, cfg.page_size, clip_bottom))
                paragraph.paint(canvas, cfg.margin, top - done * pitch)
                canvas.restore()
                done += take
                y += take * pitch
            if done < n_lines:  # out of pages in the middle of this paragraph
                kept = self._chars_on_first_lines(block[:laid], language, done, n_lines)
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
        """How many characters of `text` no loaded font can draw.

        Spaces, controls, format characters (joiners, bidi marks) and variation selectors draw nothing by design
        and are not counted; private-use and unassigned code points are, as no shipped font has them.
        """
        missing = 0
        for char in set(text):
            known = self._has_glyph.get(char)
            if known is None:
                known = not lacks_glyph(char, self._fonts)
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
