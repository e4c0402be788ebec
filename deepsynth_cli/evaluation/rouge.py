"""ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum per row, in any language, and their corpus means.

The n-gram and LCS arithmetic is `rouge_score`'s (the reference implementation); only the tokens are ours
(`language.Tokenizer`), so English scores are exactly `RougeScorer([...], use_stemmer=True)`'s.

ROUGE-Lsum is summary-level LCS over sentences, the "ROUGE-L" of CNN/DailyMail papers (~41 where sentence-level
ROUGE-L is ~30). A text that contains line breaks is split at them and nowhere else (CNN/DailyMail highlights,
Lead-k output); a text without any is split by the language's sentence splitter first, the usual practice
(as `rouge_score`'s `split_summaries`, but per language). An empty prediction scores 0 on every metric and
stays in the mean.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from deepsynth_cli.evaluation.bootstrap import Interval, bootstrap_mean
from deepsynth_cli.evaluation.language import Tokenizer, tokenizer_for

Metric = Literal["rouge1", "rouge2", "rougeL", "rougeLsum"]
METRICS: tuple[Metric, ...] = ("rouge1", "rouge2", "rougeL", "rougeLsum")


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


def score(pairs: Iterable[tuple[str, str]], language: str) -> list[RowScores]:
    """Score each `(prediction, reference)` pair (see `Pair`) in `language` (a BCP-47 tag); one dict per pair."""
    from rouge_score import rouge_scorer

    tokenizer = tokenizer_for(language)
    # Two scorers so that ROUGE-1/2/L see the texts exactly as given and only ROUGE-Lsum sees them split.
    whole = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=tokenizer)
    summary_level = rouge_scorer.RougeScorer(["rougeLsum"], tokenizer=tokenizer)
    rows: list[RowScores] = []
    for prediction, reference in pairs:
        raw = whole.score(reference, prediction)
        raw |= summary_level.score(lsum_text(reference, tokenizer), lsum_text(prediction, tokenizer))
        # rouge_score returns the int 0 for an empty side; floats keep the rows uniform (and JSON-typed).
        rows.append({metric: _score(raw[metric]) for metric in METRICS})
    return rows


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
