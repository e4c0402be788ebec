"""The pixel ablation: does the model read its pages, or write from a text prior?

The same rows are scored three times, each with the reference summary:

    own     the row's own pages
    other   another row's pages: row i gets row sigma(i)'s, sigma a seeded derangement (no row keeps its own)
    blank   white pages, as many and as large as the row's own

and for each condition two figures per row: the teacher-forced loss (mean token NLL of the reference and its EOS)
and ROUGE-L F1 of a generated summary. A model that reads has a lower loss and a higher ROUGE on its own pages;
one that learned only what summaries look like scores the same on all three. The verdict is the paired
bootstrap interval of the difference own - other and own - blank (the same rows resampled for both sides).

    ablate(summarizer, rows, language=..., ...) -> dict   (JSON-ready; `eval --ablation` writes it to metrics.json)

`rows` are mappings with `pages` and `summary` (shard rows): training's evaluation can call it on its sample.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from deepsynth_cli.evaluation.bootstrap import bootstrap_mean, paired_bootstrap

if TYPE_CHECKING:
    from PIL import Image

    from deepsynth_cli.evaluation.config import BootstrapConfig
    from deepsynth_cli.inference.options import GenerationOptions
    from deepsynth_cli.inference.summarizer import Summarizer

CONDITIONS = ("own", "other", "blank")
ABLATION_SEED = 0
"""Seed of the derangement: the same row gets the same other pages every run."""
READS_MIN_GAIN = 1e-3
"""Nats per token that own pages must beat the others by (the whole interval) to count as reading. A model that
ignores its pages scores the three conditions within float noise of each other (differences of ~1e-6 with every
row on the same side, which a bare "interval below 0" would call reading); a tiny model that reads single words
gains 0.005 to 1 (tests/integration/training/test_proof_of_reading.py)."""


def derangement(n: int, seed: int = ABLATION_SEED) -> list[int]:
    """A seeded permutation of range(n) with no fixed point (Sattolo's algorithm: one random n-cycle)."""
    if n < 2:
        raise ValueError(f"another row's pages need at least 2 rows, got {n}")
    order = list(range(n))
    rng = random.Random(seed)
    for i in range(n - 1, 0, -1):
        j = rng.randrange(i)  # j < i: never the element itself, so the result is a single cycle
        order[i], order[j] = order[j], order[i]
    return order


def blank_pages(pages: Sequence[Any]) -> list[Image.Image]:
    """White pages, as many and of the same sizes as `pages`."""
    from PIL import Image

    from deepsynth_cli.models.batching import page_image

    return [Image.new("RGB", page_image(page).size, "white") for page in pages]


def condition_pages(rows: Sequence[Mapping[str, Any]], seed: int = ABLATION_SEED) -> dict[str, list[list[Any]]]:
    """The pages each row is shown under each condition, in row order."""
    own = [list(row.get("pages") or []) for row in rows]
    sigma = derangement(len(rows), seed)
    return {"own": own, "other": [own[sigma[i]] for i in range(len(rows))], "blank": [blank_pages(p) for p in own]}


def reference_losses(
    summarizer: Summarizer, documents: Sequence[Sequence[Any]], references: Sequence[str], batch_size: int = 8
) -> list[float]:
    """Teacher-forced mean token NLL of each reference (with its EOS) given the pages, one float per row."""
    import torch

    from deepsynth_cli.models.batching import Batcher, pixel_dtype

    batcher = Batcher(summarizer.processor, summarizer.info, max_pages=summarizer.max_pages)
    model = summarizer.model
    pixels = pixel_dtype(model)
    losses: list[float] = []
    for start in range(0, len(documents), batch_size):
        rows = [
            {"pages": list(pages), "summary": reference, "source_id": str(start + index)}
            for index, (pages, reference) in enumerate(
                zip(documents[start : start + batch_size], references[start : start + batch_size], strict=True)
            )
        ]
        inputs = dict(batcher.train_batch(rows).to(summarizer.device, dtype=pixels).inputs)
        labels = inputs.pop("labels")
        with torch.inference_mode():
            logits = model(**inputs).logits.float()
        # Position t predicts token t + 1; -100 marks prompt, image and padding positions.
        targets = labels[:, 1:]
        nll = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2), targets, ignore_index=-100, reduction="none"
        )
        counted = (targets != -100).sum(dim=1).clamp(min=1)
        losses.extend((nll.sum(dim=1) / counted).tolist())
    return losses


def ablate(
    summarizer: Summarizer,
    rows: Sequence[Mapping[str, Any]],
    *,
    language: str,
    generation: GenerationOptions | None = None,
    bootstrap: BootstrapConfig | None = None,
    batch_size: int = 4,
    seed: int = ABLATION_SEED,
    generate_rows: int | None = None,
) -> dict[str, Any]:
    """Loss and ROUGE-L of `rows` on own, other and blank pages, with the paired intervals own - other and
    own - blank. Loss is lower-is-better, so a reading model has a negative loss difference and a positive ROUGE
    one; `reads` is true when both loss intervals lie below -READS_MIN_GAIN.

    `generate_rows`: ROUGE-L on the first N rows only (training's evaluation generates for a few; 0: no ROUGE-L,
    losses only); None: all rows."""
    from deepsynth_cli.evaluation import rouge
    from deepsynth_cli.evaluation.config import BootstrapConfig

    boot = bootstrap or BootstrapConfig()
    settings = {"resamples": boot.resamples, "confidence": boot.confidence, "seed": boot.seed}
    references = [str(row.get("summary") or "") for row in rows]
    generated = len(rows) if generate_rows is None else min(generate_rows, len(rows))
    metrics = ("loss", "rougeL") if generated else ("loss",)
    shown = condition_pages(rows, seed)
    per_row: dict[str, dict[str, list[float]]] = {}
    for condition, documents in shown.items():
        per_row[condition] = {"loss": reference_losses(summarizer, documents, references, batch_size)}
        if not generated:
            continue
        predictions: list[str] = []
        for start in range(0, generated, batch_size):
            batch = documents[start : min(start + batch_size, generated)]
            predictions.extend(summary.text for summary in summarizer.summarize(batch, generation))
        scores = rouge.score(zip(predictions, references[:generated], strict=True), language)
        per_row[condition]["rougeL"] = rouge.f1_scores(scores, "rougeL")
    result: dict[str, Any] = {
        "rows": len(rows),
        "generated_rows": generated,
        "seed": seed,
        "conditions": {
            condition: {metric: _interval(values, settings) for metric, values in metrics.items()}
            for condition, metrics in per_row.items()
        },
        "differences": {},
    }
    for other in ("other", "blank"):
        result["differences"][f"own-{other}"] = {
            metric: _paired(per_row["own"][metric], per_row[other][metric], settings) for metric in metrics
        }
    result["reads"] = all(
        result["differences"][key]["loss"]["high"] < -READS_MIN_GAIN for key in ("own-other", "own-blank")
    )
    return result


def _interval(values: list[float], settings: dict[str, Any]) -> dict[str, float]:
    interval = bootstrap_mean(values, **settings)
    return {"mean": interval.mean, "low": interval.low, "high": interval.high}


def _paired(own: list[float], other: list[float], settings: dict[str, Any]) -> dict[str, float]:
    test = paired_bootstrap(own, other, **settings)
    return {"delta": test.delta, "low": test.low, "high": test.high}
