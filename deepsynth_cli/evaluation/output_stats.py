"""What the outputs look like beyond ROUGE: their length, how many are stuck in loops, how much is copied.

All counts use the scoring tokenizer of the language (`language.Tokenizer.words`: unstemmed, lower-cased), so a
"token" is a word, or a character in Chinese, Japanese, Thai, Lao, Khmer and Burmese.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from deepsynth_cli.evaluation.language import Unit, tokenizer_for

# An output loops when one n-gram of this many tokens occurs `LOOP_MIN_COUNT` times or more. Characters carry
# about half a word each in Chinese and Japanese, so the n-gram is twice as long there.
LOOP_NGRAM: dict[Unit, int] = {"word": 4, "character": 8}
LOOP_MIN_COUNT = 3
NOVEL_NGRAM_ORDERS = (1, 2, 3)


@dataclass(frozen=True)
class LengthStats:
    """Prediction lengths in tokens, against the references'."""

    unit: Unit
    rows: int
    empty: int
    """Predictions with no token at all (they score 0 and stay in every mean)."""
    mean: float
    median: float
    p95: float
    longest: int
    reference_mean: float
    ratio: float | None
    """mean / reference_mean; None when the references have no tokens."""


@dataclass(frozen=True)
class RepetitionStats:
    """Outputs caught in an n-gram loop: some n-gram of `n` tokens occurs `min_count` times or more."""

    rows: int
    looping: int
    rate: float
    """looping / rows (0.0 for no rows)."""
    n: int
    min_count: int


@dataclass(frozen=True)
class NoveltyStats:
    """Share of a prediction's n-grams (counted with repeats) that do not occur in its source text."""

    share: dict[int, float]
    """n -> mean over rows of the per-row share; rows without any n-gram of that order have no share."""
    rows: dict[int, int]
    """n -> rows that had at least one n-gram of that order."""


def length_stats(predictions: Sequence[str], references: Sequence[str], language: str) -> LengthStats:
    """Token counts of `predictions` and `references` (same rows, same order)."""
    _same_rows(predictions, references, "references")
    tokenizer = tokenizer_for(language)
    lengths = np.array([len(tokenizer.words(text)) for text in predictions], dtype=np.int64)
    reference_lengths = np.array([len(tokenizer.words(text)) for text in references], dtype=np.int64)
    if lengths.size == 0:
        return LengthStats(tokenizer.spec.unit, 0, 0, 0.0, 0.0, 0.0, 0, 0.0, None)
    mean, reference_mean = float(lengths.mean()), float(reference_lengths.mean())
    return LengthStats(
        unit=tokenizer.spec.unit,
        rows=int(lengths.size),
        empty=int(np.count_nonzero(lengths == 0)),
        mean=mean,
        median=float(np.median(lengths)),
        p95=float(np.percentile(lengths, 95)),
        longest=int(lengths.max()),
        reference_mean=reference_mean,
        ratio=mean / reference_mean if reference_mean > 0 else None,
    )


def repeated_ngram(tokens: Sequence[str], n: int, min_count: int = LOOP_MIN_COUNT) -> tuple[str, ...] | None:
    """The most frequent n-gram of `tokens` if it occurs at least `min_count` times, else None."""
    counts = Counter(_ngrams(tokens, n))
    if not counts:
        return None
    ngram, count = counts.most_common(1)[0]
    return ngram if count >= min_count else None


def repetition_stats(
    predictions: Sequence[str], language: str, *, n: int | None = None, min_count: int = LOOP_MIN_COUNT
) -> RepetitionStats:
    """How many predictions loop (`n` defaults to `LOOP_NGRAM` of the language's token unit)."""
    tokenizer = tokenizer_for(language)
    order = n if n is not None else LOOP_NGRAM[tokenizer.spec.unit]
    looping = sum(repeated_ngram(tokenizer.words(text), order, min_count) is not None for text in predictions)
    rows = len(predictions)
    return RepetitionStats(
        rows=rows, looping=looping, rate=looping / rows if rows else 0.0, n=order, min_count=min_count
    )


def novel_ngram_share(
    predictions: Sequence[str], sources: Sequence[str], language: str, orders: Sequence[int] = NOVEL_NGRAM_ORDERS
) -> NoveltyStats:
    """For each n in `orders`, the mean share of prediction n-grams absent from the row's source text."""
    _same_rows(predictions, sources, "sources")
    tokenizer = tokenizer_for(language)
    shares: dict[int, list[float]] = {n: [] for n in orders}
    for prediction, source in zip(predictions, sources, strict=True):
        predicted, seen = tokenizer.words(prediction), tokenizer.words(source)
        for n in orders:
            ngrams = _ngrams(predicted, n)
            if not ngrams:
                continue
            in_source = set(_ngrams(seen, n))
            shares[n].append(sum(ngram not in in_source for ngram in ngrams) / len(ngrams))
    return NoveltyStats(
        share={n: float(np.mean(values)) if values else 0.0 for n, values in shares.items()},
        rows={n: len(values) for n, values in shares.items()},
    )


def _ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    if n < 1:
        raise ValueError(f"n-gram order must be at least 1, got {n}")
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def _same_rows(predictions: Sequence[str], other: Sequence[str], name: str) -> None:
    if len(predictions) != len(other):
        raise ValueError(f"{len(predictions)} predictions but {len(other)} {name}")
