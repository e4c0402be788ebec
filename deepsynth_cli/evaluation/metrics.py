"""Every number of one (dataset, language) group: the model's ROUGE with intervals, its outputs' statistics,
compression, and the Lead-k baselines on the same rows with a paired test against the model.

Scores are fractions in [0, 1] (the report and the terminal show them x100). Each interval is the corpus mean
over all rows, empty predictions and failed rows included, with its percentile bootstrap interval. The model and
its baselines are scored under one ROUGE scheme (`rouge.SCHEMES`), named in the group's `rouge_scheme`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from deepsynth_cli.evaluation.baselines import lead_predictions
from deepsynth_cli.evaluation.bootstrap import bootstrap_mean, paired_bootstrap
from deepsynth_cli.evaluation.config import Baseline, BootstrapConfig
from deepsynth_cli.evaluation.output_stats import length_stats, novel_ngram_share, repetition_stats
from deepsynth_cli.evaluation.rouge import DEFAULT_SCHEME, METRICS, RowScores, Scheme, scheme_details, score
from deepsynth_cli.evaluation.rows import EvalRow

PARTS = ("precision", "recall", "f1")


@dataclass
class SystemScores:
    """One system (the model or a baseline) on a group's rows: per-row scores and their summary."""

    predictions: list[str]
    rows: list[RowScores]
    metrics: dict[str, Any]


@dataclass
class GroupResult:
    dataset: str
    language: str
    rows: list[EvalRow]
    model: SystemScores
    baselines: dict[str, SystemScores] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


def score_group(
    rows: Sequence[EvalRow],
    baselines: Sequence[Baseline],
    bootstrap: BootstrapConfig,
    *,
    generated: bool,
    scheme: Scheme = DEFAULT_SCHEME,
) -> GroupResult:
    """Score the rows of one dataset in one language (all rows share `language`) under the ROUGE `scheme`."""
    dataset, language = rows[0].dataset, rows[0].language
    references = [row.reference for row in rows]
    sources = [row.source for row in rows]
    have_sources = all(isinstance(source, str) and source.strip() for source in sources)
    model = _system([row.prediction for row in rows], references, language, bootstrap, scheme)
    result = GroupResult(dataset, language, list(rows), model)
    metrics: dict[str, Any] = {
        "dataset": dataset,
        "language": language,
        "rows": len(rows),
        "rouge_scheme": scheme_details(scheme, language),
        "empty_predictions": sum(not row.prediction.strip() for row in rows),
        "errors": sum(row.error is not None for row in rows),
        **model.metrics,
        "novel_ngrams": None,
        "compression": _compression(rows),
        "generation": _generation(rows) if generated else None,
        "baselines": {},
        "baselines_skipped": None,
    }
    if have_sources:
        novelty = novel_ngram_share(model.predictions, [str(source) for source in sources], language)
        metrics["novel_ngrams"] = {
            "share": {str(n): value for n, value in novelty.share.items()},
            "rows": {str(n): value for n, value in novelty.rows.items()},
        }
    if baselines and not have_sources:
        metrics["baselines_skipped"] = "no source text for some rows: Lead-k needs the document"
    elif baselines:
        for name in baselines:
            k = int(name.split("-")[1])
            leads = lead_predictions([str(s) for s in sources], language, k)
            system = _system(leads, references, language, bootstrap, scheme)
            system.metrics["versus_model"] = _versus(model.rows, system.rows, bootstrap)
            result.baselines[name] = system
            metrics["baselines"][name] = system.metrics
    result.metrics = metrics
    return result


def _system(
    predictions: list[str], references: list[str], language: str, bootstrap: BootstrapConfig, scheme: Scheme
) -> SystemScores:
    rows = score(zip(predictions, references, strict=True), language, scheme)
    rouge = {
        metric: {part: _interval([getattr(row[metric], part) for row in rows], bootstrap) for part in PARTS}
        for metric in METRICS
    }
    lengths = asdict(length_stats(predictions, references, language))
    repetition = asdict(repetition_stats(predictions, language))
    return SystemScores(predictions, rows, {"rouge": rouge, "lengths": lengths, "repetition": repetition})


def _interval(values: list[float], bootstrap: BootstrapConfig) -> dict[str, float]:
    found = bootstrap_mean(values, resamples=bootstrap.resamples, confidence=bootstrap.confidence, seed=bootstrap.seed)
    return {"mean": found.mean, "low": found.low, "high": found.high}


def _versus(model: list[RowScores], baseline: list[RowScores], bootstrap: BootstrapConfig) -> dict[str, Any]:
    """Paired bootstrap of model minus baseline F1 per metric; `verdict` reads the interval of the difference."""
    tests: dict[str, Any] = {}
    for metric in METRICS:
        test = paired_bootstrap(
            [row[metric].f1 for row in model],
            [row[metric].f1 for row in baseline],
            resamples=bootstrap.resamples,
            confidence=bootstrap.confidence,
            seed=bootstrap.seed,
        )
        verdict = "better" if test.low > 0 else "worse" if test.high < 0 else "no clear difference"
        tests[metric] = {
            "delta": test.delta,
            "low": test.low,
            "high": test.high,
            "p_value": test.p_value,
            "model_beats_baseline": test.low > 0,
            "verdict": verdict,
        }
    return tests


def _compression(rows: Sequence[EvalRow]) -> dict[str, Any] | None:
    """Text tokens of the source / vision tokens fed to the model, over the rows where both are known."""
    known = [row for row in rows if row.text_tokens is not None and row.vision_tokens]
    if not known:
        return None
    text = sum(int(row.text_tokens or 0) for row in known)
    vision = sum(int(row.vision_tokens or 0) for row in known)
    per_row = [int(row.text_tokens or 0) / int(row.vision_tokens or 1) for row in known]
    return {
        "ratio": text / vision,
        "mean_per_row": sum(per_row) / len(per_row),
        "text_tokens": text,
        "vision_tokens": vision,
        "rows": len(known),
    }


def _generation(rows: Sequence[EvalRow]) -> dict[str, Any]:
    done = [row for row in rows if row.error is None]
    return {
        "errors": len(rows) - len(done),
        "unfinished": sum(row.finished is False for row in done),
        "pages_shown": sum(row.pages_shown or 0 for row in done),
        "pages_dropped": sum(max(0, (row.num_pages or 0) - (row.pages_shown or 0)) for row in done),
        "new_tokens": sum(row.new_tokens or 0 for row in done),
        "mean_new_tokens": sum(row.new_tokens or 0 for row in done) / len(done) if done else 0.0,
    }
