"""ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum per row, in any language, under a named scheme, and their corpus means.

The n-gram and LCS arithmetic is always `rouge_score`'s (the reference implementation); a scheme decides the
tokens, the stems and the sentences of ROUGE-Lsum, so that a score can be put beside a published table:

- `deepsynth`: our tokens (`language.Tokenizer`): English exactly `RougeScorer([...], use_stemmer=True)`'s;
  other languages Unicode words, characters for scripts without spaces, Snowball stems.
- `rouge_score`: Google's `rouge_score` as CNN/DailyMail and XSum papers run it: `use_stemmer=True` (Porter),
  tokens [a-z0-9] only, whatever the language.
- `xlsum`: the XL-Sum authors' multilingual fork (`xlsum.XLSumTokenizer`): word segmenters for Chinese,
  Japanese, Thai and Burmese, their stemmers, punctuation dropped.

ROUGE-Lsum is summary-level LCS over sentences, the "ROUGE-L" of CNN/DailyMail papers (~41 where sentence-level
ROUGE-L is ~30). Under `deepsynth` and `rouge_score` a text that contains line breaks is split at them and
nowhere else (CNN/DailyMail highlights, Lead-k output); a text without any is split by the language's sentence
splitter first, the usual practice (Hugging Face's summarization scripts split with NLTK first; we use
sentencex, as NLTK's punkt is a data download). Under `xlsum` it is the fork's: line breaks only. An empty
prediction scores 0 on every metric and stays in the mean.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from deepsynth_cli.errors import ConfigError
from deepsynth_cli.evaluation.bootstrap import Interval, bootstrap_mean
from deepsynth_cli.evaluation.language import Tokenizer, tokenizer_for

if TYPE_CHECKING:
    from deepsynth_cli.evaluation.xlsum import XLSumTokenizer

Metric = Literal["rouge1", "rouge2", "rougeL", "rougeLsum"]
METRICS: tuple[Metric, ...] = ("rouge1", "rouge2", "rougeL", "rougeLsum")

Scheme = Literal["deepsynth", "rouge_score", "xlsum"]
SCHEMES: tuple[Scheme, ...] = ("deepsynth", "rouge_score", "xlsum")
DEFAULT_SCHEME: Scheme = "deepsynth"
"""The scheme of a dataset the registry does not know (a registry entry names its paper's scheme)."""

SCHEME_RULES: dict[Scheme, dict[str, str]] = {
    "deepsynth": {
        "tokens": "English: rouge_score's [a-z0-9] tokens; others: NFKC, lower case, Unicode words, one token per "
        "character in scripts without spaces (Han, kana, Thai, Lao, Khmer, Myanmar)",
        "stems": "English: Porter (tokens over 3 characters, as rouge_score); others: the language's Snowball stemmer",
        "sentences": "ROUGE-Lsum: line breaks, else the language's sentencex sentences",
    },
    "rouge_score": {
        "tokens": "rouge_score's default tokenizer: lower case, [a-z0-9] runs only, in every language",
        "stems": "Porter, tokens over 3 characters (use_stemmer=True)",
        "sentences": "ROUGE-Lsum: line breaks, else sentencex sentences",
    },
    "xlsum": {
        "tokens": "the XL-Sum scorer's: lower case, punctuation dropped; jieba (zh), MeCab/UniDic (ja), PyThaiNLP "
        "newmm (th), syllable rules (my); elsewhere OpenNMT aggressive, CJK ideographs one by one",
        "stems": "tokens over 3 characters: NLTK Snowball (stop words unstemmed), their Hindi stemmer, TurkishStemmer",
        "sentences": "ROUGE-Lsum: line breaks only, each line sanitised and stemmed but not segmented",
    },
}


@dataclass(frozen=True)
class Score:
    """One ROUGE score of one row, each in [0, 1]."""

    precision: float
    recall: float
    f1: float


class Pair(NamedTuple):
    """A model output and the reference summary it is scored against."""

    prediction: str
    reference: str


RowScores = dict[Metric, Score]


def score(pairs: Iterable[tuple[str, str]], language: str, scheme: Scheme = DEFAULT_SCHEME) -> list[RowScores]:
    """Score each `(prediction, reference)` pair (see `Pair`) in `language` (a BCP-47 tag) under `scheme`; one dict
    per pair. A scheme whose segmenter is not installed raises a ConfigError naming the extra to install."""
    whole, summary_level, sentences = _scorers(language, scheme)
    rows: list[RowScores] = []
    for prediction, reference in pairs:
        raw = whole.score(reference, prediction)
        raw |= summary_level.score(sentences(reference), sentences(prediction))
        # rouge_score returns the int 0 for an empty side; floats keep the rows uniform (and JSON-typed).
        rows.append({metric: _score(raw[metric]) for metric in METRICS})
    return rows


def _scorers(language: str, scheme: Scheme) -> tuple[Any, Any, Callable[[str], str]]:
    """The scorer of ROUGE-1/2/L, the scorer of ROUGE-Lsum and what Lsum's texts go through first. Two scorers so
    that ROUGE-1/2/L see the texts exactly as given and only ROUGE-Lsum sees them split."""
    from rouge_score import rouge_scorer

    splitter = tokenizer_for(language)  # also refuses an unknown language, whatever the scheme
    if scheme == "deepsynth":
        whole = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=splitter)
        summary_level = rouge_scorer.RougeScorer(["rougeLsum"], tokenizer=splitter)
    elif scheme == "rouge_score":
        whole = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
        summary_level = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True)
    elif scheme == "xlsum":
        tokenizer = xlsum_tokenizer(language)
        whole = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=tokenizer)
        summary_level = rouge_scorer.RougeScorer(["rougeLsum"], tokenizer=tokenizer.sentence_level())
        return whole, summary_level, _unchanged
    else:
        raise ConfigError(f"unknown ROUGE scheme {scheme!r}", hint=f"use one of: {', '.join(SCHEMES)}")
    return whole, summary_level, lambda text: lsum_text(text, splitter)


def _unchanged(text: str) -> str:
    return text


@functools.cache
def xlsum_tokenizer(language: str) -> XLSumTokenizer:
    """The shared XL-Sum tokenizer of a language (segmenters load their dictionaries once)."""
    from deepsynth_cli.evaluation.xlsum import XLSumTokenizer

    return XLSumTokenizer(language)


def prepare_scheme(scheme: Scheme, language: str) -> None:
    """Load what `scheme` needs for `language` now (segmenters, dictionaries): a ConfigError here, before a model
    generates anything, names the missing extra or the unknown language."""
    _scorers(language, scheme)


def scheme_details(scheme: Scheme, language: str) -> dict[str, Any]:
    """What `scheme` does to `language`: its rules, and for `xlsum` the segmenter, stemmer, versions and any
    difference from the reference scorer that this installation leaves."""
    details: dict[str, Any] = {"name": scheme, **SCHEME_RULES[scheme]}
    if scheme == "xlsum":
        details |= xlsum_tokenizer(language).details()
    return details


def _score(raw: Any) -> Score:
    return Score(precision=float(raw.precision), recall=float(raw.recall), f1=float(raw.fmeasure))


def lsum_text(text: str, tokenizer: Tokenizer) -> str:
    """`text` with one sentence a line, as ROUGE-Lsum reads it: unchanged if it already has line breaks."""
    if "\n" in text:
        return text
    return "\n".join(tokenizer.sentences(text))


def f1_scores(rows: Sequence[RowScores], metric: Metric) -> list[float]:
    """The F1 of `metric` for each row, in order."""
    return [row[metric].f1 for row in rows]


def corpus_scores(
    rows: Sequence[RowScores], *, resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> dict[Metric, Interval]:
    """Mean F1 of each metric over all rows (empty predictions included) with its bootstrap interval."""
    return {
        metric: bootstrap_mean(f1_scores(rows, metric), resamples=resamples, confidence=confidence, seed=seed)
        for metric in METRICS
    }
