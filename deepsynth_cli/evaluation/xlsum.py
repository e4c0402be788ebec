"""The tokens of the XL-Sum authors' multilingual ROUGE (`csebuetnlp/xl-sum`, folder `multilingual_rouge_scoring`,
a fork of Google's `rouge_score`), re-implemented step by step so its scores can be reproduced without it.

What their `RougeScorer(..., use_stemmer=True, lang=<XL-Sum language>)` does to a text, in order:

1. lower-case the whole text (`str.lower`);
2. sanitise (BERT's BasicTokenizer, edited): drop NUL, U+FFFD and every character of a Unicode "C" category
   (controls, format characters such as ZWNJ/ZWJ, private use) except tab and line breaks; every whitespace
   character becomes a space; split at whitespace; then cut each word at punctuation and *drop* the punctuation
   (all ASCII that is not a letter or digit, and every Unicode "P" category). Symbols outside ASCII (€, °) stay;
3. segment Chinese (jieba), Japanese (MeCab via fugashi, `-O wakati`), Thai (PyThaiNLP `newmm`) and Burmese
   (their own syllable rules) on the sanitised words joined by spaces. jieba and PyThaiNLP return the spaces
   between words as tokens (" "), and the reference keeps them, so this does too;
4. for any other language (or when the segmenter finds nothing): OpenNMT's `aggressive` tokenizer (letters
   apart from digits, every other character alone), then a space around each CJK ideograph;
5. stem tokens longer than 3 characters: NLTK's Snowball stemmer for the languages it has (stop words left as
   they are), their own Hindi suffix stripper, `TurkishStemmer` for Turkish; no stemmer elsewhere;
6. drop empty tokens.

ROUGE-Lsum in their scorer splits at line breaks only and tokenises each line with steps 1, 2, 5 and 6: no
segmenter and no step 4. That is reproduced as it is (see `XLSumTokenizer.sentence_level`).
"""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import unicodedata
from collections.abc import Callable
from typing import Any

from deepsynth_cli.errors import ConfigError
from deepsynth_cli.evaluation.language import language_spec

EXTRA = "eval-xlsum"
INSTALL_HINT = f"install the segmenters of the xlsum scheme: pip install 'deepsynth[{EXTRA}]'"

# Primary language subtag -> NLTK Snowball language, as the reference resolves its `lang` names.
NLTK_SNOWBALL: dict[str, str] = {
    "ar": "arabic",
    "da": "danish",
    "de": "german",
    "en": "english",
    "es": "spanish",
    "fi": "finnish",
    "fr": "french",
    "hu": "hungarian",
    "it": "italian",
    "nb": "norwegian",
    "nl": "dutch",
    "nn": "norwegian",
    "no": "norwegian",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sv": "swedish",
}
SEGMENTED: dict[str, str] = {"zh": "jieba", "ja": "fugashi", "th": "pythainlp", "my": "burmese rules"}
MIN_STEMMED_LENGTH = 3  # the reference stems a token only when it is longer than this

# Hindi suffixes by length, stripped longest first when the word keeps at least 2 characters (Ramanathan & Rao,
# "A Lightweight Stemmer for Hindi"), as in the reference's HindiStemmer.
_HINDI_SUFFIXES: dict[int, tuple[str, ...]] = {
    5: ("ाएंगी", "ाएंगे", "ाऊंगी", "ाऊंगा", "ाइयाँ", "ाइयों", "ाइयां"),
    4: (
        "ाएगी", "ाएगा", "ाओगी", "ाओगे", "एंगी", "ेंगी", "एंगे", "ेंगे", "ूंगी", "ूंगा",
        "ातीं", "नाओं", "नाएं", "ताओं", "ताएं", "ियाँ", "ियों", "ियां",
    ),
    3: (
        "ाकर", "ाइए", "ाईं", "ाया", "ेगी", "ेगा", "ोगी", "ोगे", "ाने", "ाना",
        "ाते", "ाती", "ाता", "तीं", "ाओं", "ाएं", "ुओं", "ुएं", "ुआं",
    ),
    2: ("कर", "ाओ", "िए", "ाई", "ाए", "ने", "नी", "ना", "ते", "ीं", "ती", "ता", "ाँ", "ां", "ों", "ें"),
    1: ("ो", "े", "ू", "ु", "ी", "ि", "ा"),
}  # fmt: skip

# The CJK blocks whose ideographs the reference cuts one by one (BERT's `_is_chinese_char`).
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def _is_punctuation(char: str) -> bool:
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def _is_dropped(char: str) -> bool:
    """NUL, U+FFFD and the "C" categories, except tab and line breaks (which become spaces)."""
    if char in "\t\n\r":
        return False
    return char in "\x00\ufffd" or unicodedata.category(char).startswith("C")


def _is_whitespace(char: str) -> bool:
    return char in " \t\n\r" or unicodedata.category(char) == "Zs"


class _SanitiseTable(dict[int, str | None]):
    """`str.translate` table of step 2, filled one code point at a time as texts meet them: dropped characters map
    to None, whitespace and punctuation to a space, every other character to itself."""

    def __missing__(self, codepoint: int) -> str | None:
        char = chr(codepoint)
        value = None if _is_dropped(char) else " " if _is_whitespace(char) or _is_punctuation(char) else char
        self[codepoint] = value
        return value


_SANITISE = _SanitiseTable()


def sanitise(text: str) -> list[str]:
    """Step 2: the words of `text` without control characters and punctuation (the reference's BasicTokenizer:
    cleaning, whitespace split, then each word cut at its punctuation, which is dropped)."""
    return text.translate(_SANITISE).split()


def _space_cjk(text: str) -> str:
    return "".join(f" {char} " if any(low <= ord(char) <= high for low, high in _CJK_RANGES) else char for char in text)


def burmese_units(text: str) -> list[str]:
    """The reference's Burmese segmenter (after "Myanmar word segmentation", ACM TALLIP 2019): syllable-like units
    built by attaching dependent signs to their base, asat units to the unit before, and gluing stacked ones."""
    asat, dot_below, stack = "\u103a", "\u1037", "\u1039"
    dependent = {chr(0x102B + x) for x in range(8)} | {chr(0x1036 + x) for x in range(3)}
    dependent |= {chr(0x103B + x) for x in range(4)} | {asat}
    text = text.replace("\u200c", " ").replace(dot_below + asat, asat + dot_below)
    chars = list("".join(text.lower().strip().split()))
    chars.reverse()
    for i in range(len(chars) - 1):
        if chars[i][0] in dependent:
            chars[i + 1] += chars[i]
            chars[i] = ""
    chars.reverse()
    units = " ".join(chars).split()
    for i in range(1, len(units)):
        if asat in units[i] and len(units[i]) < 4:
            units[i - 1] += units[i]
            units[i] = ""
    units = " ".join(units).split()
    return " ".join(units).replace(f" {stack} ", stack).split()


def _require(module: str, purpose: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        message = f"the xlsum ROUGE scheme needs {module} {purpose}, and it is not installed"
        raise ConfigError(message, hint=INSTALL_HINT) from error


def _segmenter(code: str) -> Callable[[str], list[str]] | None:
    if code == "zh":
        jieba = _require("jieba", "to segment Chinese")
        jieba.setLogLevel(logging.WARNING)  # it logs the building of its prefix dictionary at DEBUG on stderr
        segmenter = jieba.Tokenizer()  # the default dictionary, as the reference's global `jieba`
        segmenter.initialize()
        return lambda text: list(segmenter.cut(text))
    if code == "ja":
        fugashi = _require("fugashi", "to segment Japanese")
        tagger = fugashi.Tagger("-O wakati -b 50000")  # the reference's arguments; the dictionary fugashi finds
        return lambda text: str(tagger.parse(text)).split()
    if code == "th":
        word_tokenize = _require("pythainlp.tokenize", "to segment Thai").word_tokenize
        return lambda text: list(word_tokenize(text, engine="newmm"))
    if code == "my":
        return burmese_units
    return None


def _stemmer(code: str) -> tuple[Callable[[str], str] | None, str | None, list[str]]:
    """The stemmer of a language, its description, and what differs from the reference (if anything)."""
    if code in NLTK_SNOWBALL:
        from nltk.stem import SnowballStemmer

        language = NLTK_SNOWBALL[code]
        try:
            snowball = SnowballStemmer(language, ignore_stopwords=True)
            return snowball.stem, f"nltk snowball {language}, stop words unstemmed", []
        except LookupError:  # NLTK's stop word lists are a separate data download
            note = (
                "NLTK's stopwords corpus is not installed, so stop words are stemmed too (the reference leaves "
                "them as they are; `python -m nltk.downloader stopwords` makes the scores exact)"
            )
            return SnowballStemmer(language).stem, f"nltk snowball {language}", [note]
    if code == "hi":
        return hindi_stem, "xl-sum hindi suffix stripper", []
    if code == "tr":
        module = _require("TurkishStemmer", "to stem Turkish")
        return module.TurkishStemmer().stem, "TurkishStemmer", []
    if code == "bn":
        note = "Bengali is not stemmed: the reference's stemmer (bengali-stemmer) is not published on PyPI"
        return None, None, [note]
    return None, None, []


def hindi_stem(token: str) -> str:
    """The reference's Hindi stemmer: strip the longest listed suffix that leaves at least 2 characters."""
    for length in (5, 4, 3, 2, 1):
        if len(token) > length + 1:
            for suffix in _HINDI_SUFFIXES[length]:
                if token.endswith(suffix):
                    return token[:-length]
    return token


class XLSumTokenizer:
    """Tokens as the XL-Sum scorer matches them, for `rouge_score.rouge_scorer.RougeScorer(tokenizer=)`."""

    def __init__(self, language: str, *, segment: bool = True) -> None:
        """`segment=False`: steps 1, 2, 5 and 6 only (see `sentence_level`)."""
        self.code = language_spec(language).code
        # Every missing package fails here, with the hint, rather than in the middle of scoring.
        self._pretokenizer: Any = _require("pyonmttok", "for its word tokenizer").Tokenizer("aggressive")
        self._segment = _segmenter(self.code) if segment else None
        self._whole_pipeline = segment
        stem, self.stemmer, self.notes = _stemmer(self.code)
        self._stem = functools.lru_cache(maxsize=1 << 16)(stem) if stem is not None else None

    def sentence_level(self) -> XLSumTokenizer:
        """The tokenizer of the reference's ROUGE-Lsum: sanitised and stemmed, no segmenter, no OpenNMT step."""
        return XLSumTokenizer(self.code, segment=False)

    def words(self, text: str) -> list[str]:
        """Steps 1 to 4: lower-cased, sanitised, segmented tokens, unstemmed."""
        text = " ".join(sanitise(text.lower().strip()))
        if not self._whole_pipeline:
            return text.split()
        tokens = self._segment(text) if self._segment is not None else []
        if not tokens and text:
            text = " ".join(self._pretokenizer.tokenize(text)[0])
            tokens = _space_cjk(text).split()
        return tokens

    def tokenize(self, text: str) -> list[str]:
        """The tokens ROUGE compares: `words`, each longer than 3 characters stemmed, empty ones dropped."""
        tokens = self.words(text)
        if self._stem is not None:
            stem = self._stem
            tokens = [stem(token) if len(token) > MIN_STEMMED_LENGTH else token for token in tokens]
        return [token for token in tokens if token]

    def details(self) -> dict[str, Any]:
        """What this tokenizer does for its language, with the versions of the packages that decide it."""
        segmenter = SEGMENTED.get(self.code)
        packages = {"zh": "jieba", "ja": "fugashi", "th": "pythainlp"}
        names = ["pyonmttok", "nltk", *([packages[self.code]] if self.code in packages else [])]
        if self.code == "ja":
            names += ["unidic-lite", "unidic"]  # fugashi takes the full UniDic when installed, as the reference did
        if self.code == "tr":
            names.append("TurkishStemmer")
        versions = {name: _version(name) for name in names}
        notes = list(self.notes)
        if segmenter is not None:
            notes.append(
                "ROUGE-Lsum is the scorer's: lines are not segmented, so it matches whole clauses here; the XL-Sum "
                "paper reports R-1, R-2 and R-L"
            )
        return {
            "segmenter": segmenter or "opennmt aggressive, CJK ideographs one by one",
            "stemmer": self.stemmer,
            "versions": versions,
            "notes": notes,
        }


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None
