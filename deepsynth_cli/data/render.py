"""Render a document's text into square page images, the way the vision encoder will see them.

The engine is SkParagraph (skia-python): HarfBuzz shaping, ICU bidi and line breaking, per-character font
fallback. Fonts come from pip packages (Noto; DejaVu Sans and STIX General from matplotlib for math), so a plain
`pip install` renders every XL-Sum script with no system fonts. Every line has the same height (a forced
strut): SkParagraph rounds it to whole pixels, so the pitch is measured from the engine
(`PageRenderer.line_pitch`), never computed as `font_size * line_height`. A paragraph that crosses a page
boundary is cut at the end of the page's last line (found by colour probes: `PageRenderer._line_start`) and each
part is laid out alone on its page: a page is drawn from exactly its own text (`RenderedDocument.page_texts`), so
nothing of a neighbouring page's line is painted and no mark is clipped. No ink reaches the top or bottom margin.

Text beyond the page budget is never dropped silently: `RenderedDocument.dropped_chars` counts it.
"""

from __future__ import annotations

import bisect
import functools
import io
import itertools
import math
import re
import struct
import unicodedata
import zlib
from dataclasses import dataclass, field
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
    # The text each page is drawn from, its paragraphs (or parts of them) joined by newlines: a paragraph that
    # crosses a page break continues, where the page before ends it, at the start of the next page's text.
    page_texts: list[str] = field(default_factory=list)

    @property
    def truncated(self) -> bool:
        return self.dropped_chars > 0


@dataclass(frozen=True)
class _Font:
    family: str
    typeface: skia.Typeface


# The colours of a probe (`PageRenderer._line_start`): each cut of the text starts the next one. They are
# channel-monotone on white: only black darkens red, black or red darken green, black, red or yellow darken blue,
# and transparent text darkens nothing. So one probe tells, for three cuts at once, whether the text before each
# reaches a given line.
_PROBE_COLOURS = (skia.ColorBLACK, skia.ColorRED, skia.ColorYELLOW, skia.ColorTRANSPARENT)
# Characters after the last cut a probe lays out: more than the longest unbreakable run that can start a line.
_PROBE_WINDOW = 256
_SPACES = re.compile(" +")
_BEYOND_CYRILLIC = re.compile("[^\u0000-\u052f]")
# A word in which no script breaks a line: letters, digits and marks of alphabetic scripts, closing punctuation,
# its trailing spaces. Not Thai, Lao, Khmer, Myanmar (dictionary breaks), nor CJK and Hangul (break anywhere).
_UNBREAKABLE = re.compile(
    r"(?:(?![\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u1100-\u11ff\u2e80-\U0002ffff])"
    r"[\w\u0300-\u036f\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0900-\u0dff"
    r".,;:!?)\]}\"'»”’…،؛؟।])+ +"
)
_INK = 160  # a probe pixel darker than this in a channel is ink of the colours that darken it (alpha > 0.37)


@dataclass(frozen=True)
class _Styles:
    """The styles of one kind of paragraph: text and math runs in black, and in each probe colour."""

    paragraph: skia.textlayout_ParagraphStyle
    text: skia.textlayout_TextStyle
    math: skia.textlayout_TextStyle
    probe: tuple[tuple[skia.textlayout_TextStyle, skia.textlayout_TextStyle], ...]  # (text, math) per colour
    primary: str  # the family the paragraph's script comes from


@dataclass(frozen=True)
class _Kind:
    """How one paragraph is laid out, decided once from the whole paragraph and kept for every part of it on
    every page: its direction and its styles (a part that starts with a Latin word stays right to left)."""

    rtl: bool
    styles: _Styles


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


def _nearest(sorted_positions: list[int], position: int) -> int:
    """The value of `sorted_positions` nearest to `position` (`position` itself when there is none)."""
    index = bisect.bisect_left(sorted_positions, position)
    near = sorted_positions[max(0, index - 1) : index + 1]
    return min(near, key=lambda value: abs(value - position)) if near else position


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
        self._probe_skips: dict[str, int] = {}  # primary family -> rows of a probe band left unread
        self._chars_per_line: dict[int, float] = {}  # id of a _Styles -> characters per line seen lately
        self._content_px = cfg.page_size - 2 * cfg.margin
        # The line pitch as the engine lays it out: the strut is forced, so every line of every script is exactly
        # this tall (whole pixels: 23 px at 18 px x 1.3, not 23.4) and a paragraph of n lines is n pitches tall.
        self._line_px = 1  # until measured, just below
        probe, _ = self._layout("x", "en")
        self._line_px = round(probe.Height)
        self._baseline_px = float(probe.AlphabeticBaseline)
        # Ink rises above the first line box and hangs below the last one (at line height 1.2 accents rise 2-3 px
        # over it): the lines start low enough, and end high enough, that every glyph of Noto Sans (Latin, Greek,
        # Cyrillic: its bounding box) stays inside the content box. Taller marks of other scripts are caught by
        # `_place_ink` on the painted page.
        rise, hang = self._overhang(_LATIN)
        self._top_px = cfg.margin + rise
        self._lines_px = self._content_px - rise - hang  # the height the lines of a page may fill
        self._lines_per_page = self._lines_px // self._line_px if self._content_px > 0 else 0
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
        """The most lines a page holds (one fewer on a page whose marks would otherwise reach a margin)."""
        return self._lines_per_page

    @property
    def line_pitch(self) -> int:
        """Pixels from one line's top to the next one's, as SkParagraph lays lines out."""
        return self._line_px

    @property
    def first_line_top(self) -> int:
        """The row where a page's first line box starts (a page may sit up to a few rows higher or lower, see
        `_place_ink`)."""
        return self._top_px

    def _overhang(self, family: str) -> tuple[int, int]:
        """Whole pixels by which `family`'s bounding box rises above a line box and hangs below it."""
        typeface = next(font.typeface for font in self._fonts if font.family == family)
        metrics = skia.Font(typeface, self.cfg.font_size).getMetrics()
        rise = max(0, math.ceil(-metrics.fTop - self._baseline_px))
        hang = max(0, math.ceil(metrics.fBottom - (self._line_px - self._baseline_px)))
        return rise, hang

    def _primary_family(self, paragraph: str) -> str:
        """The family for the paragraph's first letter outside Latin, Greek and Cyrillic (Noto Sans has those)."""
        for found in _BEYOND_CYRILLIC.finditer(paragraph):  # up to Cyrillic Supplement: Noto Sans
            char = found.group()
            if not char.isalpha():
                continue
            code = ord(char)
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
                # as if they were one: the probes of `_line_start` lay out exactly like the paragraph.
                tuple(
                    (self._text_style(language, chain, colour), self._text_style(language, math_chain, colour))
                    for colour in _PROBE_COLOURS
                ),
                primary,
            )
        return self._styles[key]

    def _kind(self, paragraph: str, language: str) -> _Kind:
        rtl = _is_rtl(paragraph)
        return _Kind(rtl, self._style(language, rtl, self._primary_family(paragraph)))

    def _layout(self, text: str, language: str, kind: _Kind | None = None) -> tuple[skia.textlayout_Paragraph, int]:
        """Lay one paragraph (or a part of one, in the `kind` of the whole) out at the content width; returns it
        and its number of lines."""
        kind = kind or self._kind(text, language)
        paragraph = self._build(text, kind)
        paragraph.layout(self._content_px)
        return paragraph, self._lines_of(paragraph)

    def _build(self, text: str, kind: _Kind, cuts: tuple[int, ...] = ()) -> skia.textlayout_Paragraph:
        """The paragraph of `text`, black, or with piece i (between `cuts`) in probe colour i.

        Math symbols come from the math face, upright, in every script and in every colour.
        """
        styles = kind.styles
        edges = {0, len(text), *(cut for cut in cuts if 0 < cut < len(text))}
        math_runs = [run.span() for run in _MATH_RUNS.finditer(text)]
        for run_start, run_end in math_runs:
            edges.update((run_start, run_end))
        builder = skia.textlayout_ParagraphBuilder.make(styles.paragraph, self._collection, self._unicode)
        builder.pushStyle(styles.probe[0][0] if cuts else styles.text)
        if kind.rtl:
            builder.addText(_RLE)
        run = 0
        bounds = sorted(edges)
        for start, end in itertools.pairwise(bounds):
            while run < len(math_runs) and math_runs[run][1] <= start:
                run += 1
            in_math = run < len(math_runs) and math_runs[run][0] <= start
            if cuts:
                style = styles.probe[bisect.bisect_right(cuts, start)][in_math]
            else:
                style = styles.math if in_math else styles.text
            builder.pushStyle(style)
            builder.addText(text[start:end])
            builder.pop()
        if kind.rtl:
            builder.addText(_PDF)
        return builder.Build()

    def _lines_of(self, paragraph: skia.textlayout_Paragraph) -> int:
        return max(1, round(float(paragraph.Height) / self._line_px))

    def _probe_skip(self, primary: str) -> int:
        """Rows at the top of a line's band that the line above may reach with its descenders."""
        if primary not in self._probe_skips:
            hang = max(self._overhang(family)[1] for family in dict.fromkeys([_LATIN, primary]))
            self._probe_skips[primary] = min(hang + 1, self._line_px // 2)
        return self._probe_skips[primary]

    def _line_start(self, text: str, kind: _Kind, line: int, chars_per_line: float | None = None) -> int:
        """Where line `line` (from 0) of `text` laid out alone starts: the index (in code points) of its first
        character with ink; the spaces before it end the line above. `text` must have more than `line` lines.

        skia-python 144 exposes no line metrics (no `getLineMetrics`, no text ranges), so the engine is asked by
        colour: the text is laid out with the pieces between three cuts in the colours of `_PROBE_COLOURS`, and the
        band of line `line` shows, channel by channel, which cuts leave it without ink. Colour does not change
        shaping or line breaking, so this holds in every script, including those without spaces (CJK, Thai) and
        right-to-left ones. Each probe narrows the search to a quarter.

        Speed: a probe lays out only up to `_PROBE_WINDOW` characters past its last cut (where line `line` starts
        does not depend on text a whole window further on); the search starts around `line * chars_per_line` and
        gallops from there when that runs short; in spaced text it cuts where words start, and stops at a word
        no script breaks inside (`_UNBREAKABLE`). About 3 probes per page break.
        """
        if line <= 0:
            return 0
        if self._probe is None:
            rows = self._line_px
            pixels = np.zeros((rows, self._content_px, 4), np.uint8)
            info = skia.ImageInfo.Make(self._content_px, rows, skia.kRGBA_8888_ColorType, skia.kOpaque_AlphaType)
            self._probe = (pixels, skia.Surface.MakeRasterDirect(info, pixels))
        pixels, surface = self._probe
        skip = self._probe_skip(kind.styles.primary)
        band = pixels[: self._line_px - skip, :, :3]
        top = line * self._line_px + skip

        def reaching(cuts: list[int]) -> list[bool]:
            """For each cut k: does text[:k] have ink on line `line`? (False, then True: the answers are monotone.)"""
            paragraph = self._build(text[: cuts[-1] + _PROBE_WINDOW], kind, tuple(cuts))
            paragraph.layout(self._content_px)
            canvas = surface.getCanvas()
            canvas.clear(skia.ColorWHITE)
            paragraph.paint(canvas, 0, -top)
            # Per channel (red, green, blue; one channel at a time is 10x faster than one reduction over all).
            return [bool(band[:, :, channel].min() < _INK) for channel in range(len(cuts))]

        # Invariant: text[:low] leaves the line without ink, text[:high] does not. The answer is the largest such
        # low: text[low] is the line's first inked character.
        low, high = 0, len(text)
        guess: list[int] = []
        words: list[int] = []  # where words start near the estimate: a line of spaced text starts at one
        if chars_per_line:
            # The estimate runs short (a paragraph's last line is part full): aim a third of a line further.
            estimate, span = (line + 0.3) * chars_per_line, max(16.0, 0.5 * chars_per_line)
            words = [found.end() for found in _SPACES.finditer(text, 0, int(estimate + 3 * chars_per_line))]
            guess = [_nearest(words, int(estimate + offset)) for offset in (-span, 0, span)]
        step = int(chars_per_line) if chars_per_line else _PROBE_WINDOW
        while high - low > 1:
            inside = words[bisect.bisect_right(words, low) : bisect.bisect_left(words, high)]
            if not guess and not inside and low in words and _UNBREAKABLE.fullmatch(text, low, high):
                # `low` starts a word that ends at `high` with no break opportunity inside: the line starts there.
                # (Were there one after all, the page would end a word early: the text stays whole either way.)
                break
            if guess:
                cuts = guess
            elif high == len(text) and high - low > 4 * step:
                # Not bracketed yet (the estimate ran short): gallop, never a probe of the whole long text.
                cuts = [_nearest(words, low + step * part) for part in (1, 2, 4)]
                step *= 4
            elif len(inside) > 3:
                cuts = [inside[len(inside) * part // 4] for part in (1, 2, 3)]
            elif inside:
                cuts = inside
            else:
                # Between two word starts (or no spaces at all): most often the line starts at `low` itself.
                cuts = [low + 1, *(low + 1 + (high - low - 1) * part // 3 for part in (1, 2))]
            guess = []
            cuts = sorted({cut for cut in cuts if low < cut < high}) or [low + 1]
            answers = reaching(cuts)
            first = next((index for index, reached in enumerate(answers) if reached), len(cuts))
            if first < len(cuts):
                high = cuts[first]
            if first > 0:
                low = cuts[first - 1]
        return low

    def _chars_on_first_lines(self, text: str, language: str, lines: int) -> int:
        """How many characters of `text` its first `lines` lines show (trailing spaces not counted)."""
        kind = self._kind(text, language)
        if lines <= 0:
            return 0
        if self._layout(text, language, kind)[1] <= lines:
            return len(text.rstrip())
        return len(text[: self._line_start(text, kind, lines)].rstrip())

    def _fill(self, rest: str, kind: _Kind, room: int) -> tuple[skia.textlayout_Paragraph, int, int]:
        """The paragraph of the longest head of `rest` that `room` lines hold, laid out alone: returns it, its
        lines and the head's length (all of `rest` when it fits). The head ends at a line end of `rest`."""
        key = id(kind.styles)
        per_line = self._chars_per_line.get(key)
        if per_line and len(rest) > 2 * per_line * (room + 2) + _PROBE_WINDOW:
            # Far more text than the room holds: cut it straight away, without laying the paragraph out first.
            head, head_lines, cut = self._head(rest, kind, room, per_line)
            if head_lines == room:
                return head, head_lines, cut
        # Laying out a long paragraph whole for every page it continues on would cost pages x its length: only
        # a window of about the room's lines is laid out, widened when it turns out too short.
        window = len(rest) if per_line is None else min(len(rest), int(per_line * (room + 2) * 1.5) + _PROBE_WINDOW)
        while True:
            paragraph, lines = self._layout(rest[:window], "", kind)
            if lines <= room and window < len(rest):
                window = min(len(rest), 4 * window)
                continue
            break
        if lines >= 4:  # a short paragraph's part-full last line would make the figure much too low
            self._chars_per_line[key] = window / lines
        if lines <= room:
            return paragraph, lines, len(rest)
        return self._head(rest, kind, room, window / lines)

    def _head(self, rest: str, kind: _Kind, room: int, per_line: float) -> tuple[skia.textlayout_Paragraph, int, int]:
        """The first `room` lines of `rest` (which has more), laid out alone; their lines; the head's length."""
        target = room
        while True:
            cut = self._line_start(rest, kind, target, per_line)
            # Without the spaces that end its last line: in a right-to-left paragraph they would move that line.
            head, head_lines = self._layout(rest[:cut].rstrip(" "), "", kind)
            # The head alone breaks where it did inside the paragraph; should a script's line breaking depend on
            # text beyond the cut (dictionary word breaking), the head is cut again, one line shorter.
            if head_lines <= room or target == 1:
                return head, head_lines, cut
            target -= 1

    def _compose(
        self, blocks: list[str], kinds: list[_Kind | None], language: str, start: tuple[int, int], capacity: int
    ) -> tuple[list[tuple[skia.textlayout_Paragraph, float]], list[tuple[int, str]], tuple[int, int]]:
        """One page from position `start` (paragraph, character) on, at most `capacity` lines: the laid-out parts
        with their offsets from the first line's top, the parts' text (paragraph index, text) and where the next
        page starts. Each part is laid out alone from exactly the text the page shows."""
        pitch = self._line_px
        gap_px = self.cfg.paragraph_spacing * pitch
        placed: list[tuple[skia.textlayout_Paragraph, float]] = []
        parts: list[tuple[int, str]] = []
        index, offset = start
        y = 0.0
        while index < len(blocks):
            if y > 0:
                y += gap_px
            # A full page may use its slack below the last whole line for paragraph gaps; one that gave up lines
            # to tall marks may not.
            height = self._lines_px if capacity == self._lines_per_page else capacity * pitch
            room = int((height - y) / pitch + 1e-9)
            if room <= 0:
                break
            rest = blocks[index][offset:]
            kind = kinds[index] or self._kind(blocks[index], language)  # decided once, only for what is drawn
            kinds[index] = kind
            paragraph, lines, used = self._fill(rest, kind, room)
            placed.append((paragraph, y))
            parts.append((index, rest[:used]))
            y += lines * pitch
            if used < len(rest):
                offset += used
                break
            index, offset = index + 1, 0
        return placed, parts, (index, offset)

    def _paint(self, placed: list[tuple[skia.textlayout_Paragraph, float]], top: float) -> None:
        canvas = self._surface.getCanvas()
        canvas.clear(skia.ColorWHITE)
        for paragraph, y in placed:
            paragraph.paint(canvas, self.cfg.margin, top + y)

    def _place_ink(self, placed: list[tuple[skia.textlayout_Paragraph, float]]) -> bool:
        """Paint a page so that no ink reaches its top or bottom margin: moved up or down by the few rows marks
        need beyond the line boxes (Arabic, Devanagari, Thai at small line heights). False: its ink is taller than
        the content box, the page must hold fewer lines."""
        margin, size = self.cfg.margin, self.cfg.page_size
        pixels = self._pixels
        self._paint(placed, self._top_px)
        if not margin or (pixels[:margin].min() == 255 and pixels[size - margin :].min() == 255):
            return True
        first, last = self._ink_rows(placed)
        if last - first + 1 > self._content_px:
            return False
        shift = margin - first if first < margin else size - margin - 1 - last
        self._paint(placed, self._top_px + shift)
        return True

    def _ink_rows(self, placed: list[tuple[skia.textlayout_Paragraph, float]]) -> tuple[int, int]:
        """The first and last rows with ink of a page painted at `_top_px`, also beyond the page's edges (on a
        surface with room above and below it)."""
        extra = 4 * self._line_px
        size = self.cfg.page_size
        pixels = np.zeros((size + 2 * extra, size), np.uint8)
        info = skia.ImageInfo.Make(size, size + 2 * extra, skia.kGray_8_ColorType, skia.kOpaque_AlphaType)
        canvas = skia.Surface.MakeRasterDirect(info, pixels).getCanvas()
        canvas.clear(skia.ColorWHITE)
        for paragraph, y in placed:
            paragraph.paint(canvas, self.cfg.margin, extra + self._top_px + y)
        rows = np.flatnonzero(pixels.min(axis=1) < 255)
        return int(rows[0]) - extra, int(rows[-1]) - extra

    def render(self, text: str, language: str = "und") -> RenderedDocument:
        """Render `text` into at most `cfg.max_pages` pages; count what does not fit instead of hiding it.

        Every page is drawn from exactly the text it shows: a paragraph that crosses a page break is cut at the
        end of the page's last line and each part is laid out alone, so nothing of another page's lines is
        painted and no mark is clipped. Lines are placed at the engine's own pitch, and no ink reaches the top or
        bottom margin.
        """
        cfg = self.cfg
        blocks = paragraphs_of(text)
        kinds: list[_Kind | None] = [None] * len(blocks)
        pages: list[bytes] = []
        page_texts: list[str] = []
        drawn = [""] * len(blocks)
        position = (0, 0)
        while position[0] < len(blocks) and len(pages) < cfg.max_pages:
            capacity = self._lines_per_page
            while True:
                placed, parts, after = self._compose(blocks, kinds, language, position, capacity)
                if self._place_ink(placed) or capacity == 1:
                    break
                capacity -= 1
            for index, part in parts:
                drawn[index] += part
            page_texts.append("\n".join(part for _, part in parts))
            pages.append(self._encode())
            position = after
        if not pages:  # no text: one blank page
            self._paint([], 0)
            pages.append(self._encode())
            page_texts.append("")
        shown = [piece for piece in drawn if piece]
        if position[0] < len(blocks) and shown:  # cut by the page budget: the cut part's trailing spaces are dropped
            shown[-1] = shown[-1].rstrip()
            page_texts[-1] = page_texts[-1].rstrip()
        drawn_text = "\n".join(shown)
        chars_total = sum(len(block) for block in blocks)
        return RenderedDocument(
            pages=pages,
            chars_total=chars_total,
            dropped_chars=chars_total - sum(len(piece) for piece in shown),
            drawn_text=drawn_text,
            missing_glyphs=self.missing_glyphs(drawn_text),
            page_texts=page_texts,
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
    data = zlib.compress(rows.data, level)  # the buffer itself: no copy of the page
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def vision_tokens_per_page(page_size: int) -> int:
    """Tokens DeepSeek-OCR-2 spends on one page shown as a single global view (`rendered`'s one formula)."""
    from deepsynth_cli.data.rendered import vision_tokens_per_page as per_page

    return per_page(page_size)
