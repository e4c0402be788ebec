"""Tokens, stems and sentences for scoring, per language.

`rouge_score`'s own tokenizer keeps only [a-z0-9]: "réforme" becomes "r forme", which inflates French,
Spanish and German scores, and Arabic, Hindi or Chinese text has almost no tokens left. So:

- English keeps `rouge_score`'s tokenizer and Porter stemmer exactly (tokens over 3 characters stemmed), so
  English scores equal the reference implementation's and compare with published CNN/DailyMail or XSum numbers.
- Every other language is NFKC-normalised (full-width forms, ligatures and decomposed accents become one form)
  and lower-cased (with Turkish and Azerbaijani dotted/dotless i). Tokens are then:
  - runs of Unicode word characters (the `regex` module's \\w: letters, combining marks, digits, joiners), so
    accented letters, Devanagari matras, Arabic harakat and ZWNJ stay inside their word;
  - single characters, each with its combining marks, for the scripts written without spaces between words
    (Han, Hiragana, Katakana, Bopomofo, Thai, Lao, Khmer, Myanmar). This follows the script, not the
    language tag, so a Chinese name inside a French text is cut the same way as in a Chinese one.
- Stems come from the Snowball stemmer of the language where one exists, and nowhere else.
- Sentences: line breaks always end a sentence; inside a line, `sentencex` (Wikimedia's segmenter with
  rules for ~300 languages and fallbacks) splits on the language's terminators (. ? ! ؟ ۔ । ။ 。 ！ ？ ...).
"""

from __future__ import annotations

import functools
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

import regex

from deepsynth_cli.errors import ConfigError

Unit = Literal["word", "character"]

# Snowball algorithm per primary language subtag (snowballstemmer 3.x). English is absent on purpose: it uses
# rouge_score's Porter stemmer, as the reference implementation does.
SNOWBALL_STEMMERS: dict[str, str] = {
    "ar": "arabic",
    "ca": "catalan",
    "cs": "czech",
    "da": "danish",
    "de": "german",
    "el": "greek",
    "eo": "esperanto",
    "es": "spanish",
    "et": "estonian",
    "eu": "basque",
    "fa": "persian",
    "fi": "finnish",
    "fr": "french",
    "ga": "irish",
    "hi": "hindi",
    "hu": "hungarian",
    "hy": "armenian",
    "id": "indonesian",
    "it": "italian",
    "lt": "lithuanian",
    "nb": "norwegian",
    "ne": "nepali",
    "nl": "dutch",
    "nn": "norwegian",
    "no": "norwegian",
    "pl": "polish",
    "pt": "portuguese",
    "ro": "romanian",
    "ru": "russian",
    "sr": "serbian",  # one stemmer for both scripts: it maps Cyrillic to Latin first
    "st": "sesotho",
    "sv": "swedish",
    "ta": "tamil",
    "tr": "turkish",
    "yi": "yiddish",
}

# Languages checked to tokenize right without a stemmer (the rest of XL-Sum's 45, plus Lao and Khmer). A tag
# outside both tables is refused rather than scored silently without the stemmer a typo would lose.
WITHOUT_STEMMER: frozenset[str] = frozenset(
    {
        "am",
        "az",
        "bn",
        "cy",
        "gd",
        "gu",
        "ha",
        "ig",
        "ja",
        "km",
        "ko",
        "ky",
        "lo",
        "mr",
        "my",
        "om",
        "pa",
        "pcm",
        "ps",
        "rn",
        "si",
        "so",
        "sw",
        "te",
        "th",
        "ti",
        "uk",
        "ur",
        "uz",
        "vi",
        "yo",
        "zh",
    }
)

# Languages whose running text is tokenized into characters (their scripts put no spaces between words).
CHARACTER_LANGUAGES: frozenset[str] = frozenset({"ja", "km", "lo", "my", "th", "zh"})

# Thai (and Lao, Khmer) mark the end of a sentence or clause with a space and have no terminator, so a space
# is a sentence boundary there (PyThaiNLP's "whitespace" engine does the same).
_SPACE_ENDS_SENTENCE = frozenset({"th", "lo", "km"})

# Titles that sentencex does not know as abbreviations and would end a sentence on ("M. Macron").
_ABBREVIATIONS: dict[str, frozenset[str]] = {
    "fr": frozenset({"m", "mm", "mme", "mmes", "mlle", "mlles", "dr", "pr", "me", "mgr", "st", "ste"}),
}

_UNSPACED = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Bopomofo}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}"
# One letter or digit of an unspaced script with its marks, or a run of word characters of any other script.
_TOKEN = regex.compile(rf"[[{_UNSPACED}]&&[\p{{L}}\p{{N}}]]\p{{M}}*|[\w--[{_UNSPACED}]]+", regex.V1)


@dataclass(frozen=True)
class LanguageSpec:
    """How one language is scored."""

    code: str
    """Primary language subtag: "zh" for "zh-Hans", "sr" for "sr-Cyrl"."""
    stemmer: str | None
    """Snowball algorithm, "porter" for English (rouge_score's), None where no stemmer exists."""
    unit: Unit
    """What a token of running text is: a word, or a character for scripts without spaces."""


def language_spec(language: str) -> LanguageSpec:
    """Resolve a BCP-47 tag ("fr", "zh-Hans", "sr_Latn", "pcm") to how it is scored; unknown tags raise."""
    code = language.strip().replace("_", "-").split("-")[0].lower()
    if code == "en":
        return LanguageSpec(code="en", stemmer="porter", unit="word")
    if code not in SNOWBALL_STEMMERS and code not in WITHOUT_STEMMER:
        known = ", ".join(sorted({"en", *SNOWBALL_STEMMERS, *WITHOUT_STEMMER}))
        raise ConfigError(
            f"no scoring rules for language {language!r}",
            hint=f"use a BCP-47 tag such as fr, zh-Hans or sr-Cyrl; known: {known}",
        )
    unit: Unit = "character" if code in CHARACTER_LANGUAGES else "word"
    return LanguageSpec(code=code, stemmer=SNOWBALL_STEMMERS.get(code), unit=unit)


class _CachedStemmer:
    """Memoises a stemmer: summaries repeat the same words, and Snowball/Porter in pure Python are slow."""

    def __init__(self, stem: Callable[[str], str]) -> None:
        self.stem: Callable[[str], str] = functools.lru_cache(maxsize=1 << 16)(stem)


class Tokenizer:
    """The tokens ROUGE matches on for one language; pass it to `rouge_score.rouge_scorer.RougeScorer(tokenizer=)`.

    `tokenize(text)` gives stemmed tokens (what ROUGE compares), `words(text)` the same tokens unstemmed (for
    lengths, repetition and novel n-grams), `sentences(text)` the language's sentences.
    """

    def __init__(self, language: str) -> None:
        self.spec = language_spec(language)
        self._porter: _CachedStemmer | None = None
        self._stem: Callable[[str], str] | None = None
        if self.spec.stemmer == "porter":
            from nltk.stem import porter  # what rouge_score's DefaultTokenizer(use_stemmer=True) uses

            self._porter = _CachedStemmer(porter.PorterStemmer().stem)
        elif self.spec.stemmer is not None:
            import snowballstemmer

            self._stem = _CachedStemmer(snowballstemmer.stemmer(self.spec.stemmer).stemWord).stem

    def words(self, text: str) -> list[str]:
        """Lower-cased, unstemmed tokens of `text`."""
        if self.spec.code == "en":
            return _rouge_tokens(text, None)
        return cast(list[str], _TOKEN.findall(_normalise(text, self.spec.code)))

    def tokenize(self, text: str) -> list[str]:
        """Tokens of `text` as ROUGE compares them: lower-cased and, where the language has a stemmer, stemmed."""
        if self.spec.code == "en":
            return _rouge_tokens(text, self._porter)
        words = self.words(text)
        if self._stem is None:
            return words
        stem = self._stem
        # A stemmer never leaves a word empty in practice; keeping the word if it did keeps token counts honest.
        return [stem(word) or word for word in words]

    def sentences(self, text: str) -> list[str]:
        """The sentences of `text` (see `split_sentences`)."""
        return split_sentences(text, self.spec.code)


@functools.cache
def tokenizer_for(language: str) -> Tokenizer:
    """The shared `Tokenizer` of a language (its stem cache is reused across calls)."""
    return Tokenizer(language)


def split_sentences(text: str, language: str) -> list[str]:
    """Sentences of `text`, stripped, in order, none empty.

    Every line break ends a sentence (paragraphs, or summaries already written one sentence a line); inside a
    line `sentencex` splits on the language's terminators. Thai, Lao and Khmer also split at spaces, the only
    sentence mark those scripts have.
    """
    import sentencex

    code = language_spec(language).code
    sentences: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        pieces = [str(piece).strip() for piece in sentencex.segment(code, line)]
        pieces = [piece for piece in pieces if piece]
        if code in _SPACE_ENDS_SENTENCE:
            pieces = [part for piece in pieces for part in piece.split()]
        sentences.extend(_rejoin_abbreviations(pieces, _ABBREVIATIONS.get(code, frozenset())))
    return sentences


def _rejoin_abbreviations(pieces: list[str], abbreviations: frozenset[str]) -> list[str]:
    """Glue a piece that ends on a known title ("M.") to the next one."""
    if not abbreviations:
        return pieces
    out: list[str] = []
    for piece in pieces:
        if out and _ends_with_abbreviation(out[-1], abbreviations):
            out[-1] = f"{out[-1]} {piece}"
        else:
            out.append(piece)
    return out


def _ends_with_abbreviation(piece: str, abbreviations: frozenset[str]) -> bool:
    last = piece.rsplit(maxsplit=1)[-1]
    return last.endswith(".") and last[:-1].lower() in abbreviations


def _normalise(text: str, code: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    if code in ("tr", "az"):
        # Turkic case pairs are I/ı and İ/i; str.lower() would give "i" and "i" + U+0307.
        text = text.replace("I", "ı").replace("İ", "i")
    return text.lower()


def _rouge_tokens(text: str, stemmer: Any) -> list[str]:
    from rouge_score import tokenize

    return cast(list[str], tokenize.tokenize(text, stemmer))
