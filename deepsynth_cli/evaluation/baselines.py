"""Lead-k baselines: the first k sentences of the source text, scored exactly like the model's outputs.

News puts the gist first, so Lead-3 is the bar a summarizer must clear on CNN/DailyMail and MLSUM (and Lead-1
on XSum/XL-Sum, whose references are one sentence). Sentences come from the language's splitter
(`language.split_sentences`); the output has one sentence a line, so ROUGE-Lsum sees the same sentences.
"""

from __future__ import annotations

from collections.abc import Sequence

from deepsynth_cli.evaluation.language import split_sentences
from deepsynth_cli.evaluation.rouge import RowScores, score

LEADS = (1, 3)


# What ends a sentence in the scripts we score; a short line without one is a heading ("Abstract", "1 Introduction").
_TERMINALS = frozenset('.!?;:…。！？；：؟۔।॥»"”’)')
_HEADING_CHARS = 60


def _is_heading(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and len(stripped) <= _HEADING_CHARS and stripped[-1] not in _TERMINALS


def lead(text: str, language: str, k: int = 3) -> str:
    """The first `k` sentences of `text`, one a line (fewer if the text has fewer; "" for an empty text).

    Section headings (short lines without a sentence end, as papers and bills have) are not sentences of the
    body and are skipped, unless the text has nothing else.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    lines = text.splitlines()
    body = [line for line in lines if not _is_heading(line)]
    if any(line.strip() for line in body):
        text = "\n".join(body)
    return "\n".join(split_sentences(text, language)[:k])


def lead_predictions(sources: Sequence[str], language: str, k: int = 3) -> list[str]:
    """Lead-k of each source text, in order."""
    return [lead(source, language, k) for source in sources]


def score_lead(sources: Sequence[str], references: Sequence[str], language: str, k: int = 3) -> list[RowScores]:
    """Per-row ROUGE of Lead-k against `references`, through the same `rouge.score` as the model."""
    if len(sources) != len(references):
        raise ValueError(f"{len(sources)} sources but {len(references)} references")
    return score(zip(lead_predictions(sources, language, k), references, strict=True), language)
