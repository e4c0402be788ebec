"""Benchmark: how fast `deepsynth eval` scores and generates.

1. Scoring, per language (the six scripts of `render.py`'s corpus: English, French, Russian, Arabic, Hindi,
   Chinese): pairs/s of `rouge.score` alone (ROUGE-1/2/L/Lsum with the language's tokens and stems) under the
   `deepsynth` scheme and, on the same pairs in the same run, under `xlsum` (the XL-Sum scorer's segmenters and
   stemmers; its ratio to `deepsynth` is the figure to quote), and pairs/s
   of everything `eval` computes on a group (`metrics.score_group`: ROUGE of the model and of Lead-1 and Lead-3,
   bootstrap intervals of P/R/F1 with 1,000 resamples, paired tests, lengths, loops, novel n-grams). Predictions
   and references are 3-sentence news summaries, sources ~600-word documents; every repeat uses new texts.
2. Generation with the `tiny` preset on the CPU (`Summarizer.summarize`, the path `eval` uses): pages/s,
   documents/s and new tokens/s for greedy batch 1, greedy batch 4 and 4 beams at batch 4, on 1-2 page English
   documents rendered at 384 px (the preset's image size), `max_new_tokens` 32 (random weights never stop early).
   This measures the pipeline's overhead (rendered pages -> processor -> vision encoder -> decoder), not a real
   model's speed.

Each figure is the median of `--repeats` runs (default 5 for scoring, 3 for generation).

    python benchmarks/eval_throughput.py            # ~3 minutes on 2 cores
    python benchmarks/eval_throughput.py --quick    # smoke run, < 60 s

Prints tables, then ONE JSON line (the last line of stdout) with every figure.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render import SCRIPTS, Script, build_document, machine  # the corpus of the render benchmark

from deepsynth_cli.config import RenderConfig
from deepsynth_cli.evaluation.config import BootstrapConfig
from deepsynth_cli.evaluation.language import tokenizer_for
from deepsynth_cli.evaluation.metrics import score_group
from deepsynth_cli.evaluation.rouge import score
from deepsynth_cli.evaluation.rows import EvalRow

RENDER = RenderConfig(page_size=384, font_size=12, margin=12, max_pages=2)
GENERATION_SETTINGS = (("greedy", 1, 1), ("greedy", 4, 1), ("beam 4", 4, 4))  # (name, batch size, beams)


def summary(script: Script, seed: int) -> str:
    """The first three sentences of a short document: a summary-sized text in the script's language."""
    text = build_document(script, seed, 80)
    return "\n".join(tokenizer_for(script.language).sentences(text)[:3])


def scoring_rows(script: Script, count: int, seed: int) -> list[EvalRow]:
    rng = random.Random(f"{script.language}:{seed}")
    rows = []
    for index in range(count):
        rows.append(
            EvalRow(
                dataset="bench",
                id=str(index),
                language=script.language,
                reference=summary(script, rng.randint(0, 10**9)),
                source=build_document(script, rng.randint(0, 10**9), script.page_size_units),
                prediction=summary(script, rng.randint(0, 10**9)),
            )
        )
    return rows


def bench_scoring(pairs: int, repeats: int) -> list[dict[str, Any]]:
    results = []
    for script in SCRIPTS:
        score([("warm up", "the stemmer")], script.language)
        score([("warm up", "the segmenter")], script.language, "xlsum")  # loads jieba's dictionary once
        rouge_rates, xlsum_rates, group_rates = [], [], []
        for repeat in range(repeats):
            rows = scoring_rows(script, pairs, seed=repeat)
            texts = [(row.prediction, row.reference) for row in rows]
            started = time.perf_counter()
            score(texts, script.language)
            rouge_rates.append(pairs / (time.perf_counter() - started))
            started = time.perf_counter()
            score(texts, script.language, "xlsum")
            xlsum_rates.append(pairs / (time.perf_counter() - started))
            started = time.perf_counter()
            score_group(rows, ["lead-1", "lead-3"], BootstrapConfig(), generated=False)
            group_rates.append(pairs / (time.perf_counter() - started))
        results.append(
            {
                "language": script.language,
                "script": script.name,
                "pairs": pairs,
                "rouge_pairs_per_s": statistics.median(rouge_rates),
                "xlsum_rouge_pairs_per_s": statistics.median(xlsum_rates),
                "xlsum_over_deepsynth": statistics.median(x / d for x, d in zip(xlsum_rates, rouge_rates, strict=True)),
                "eval_scoring_pairs_per_s": statistics.median(group_rates),
            }
        )
    return results


def bench_generation(documents: int, repeats: int, max_new_tokens: int, threads: int) -> dict[str, Any]:
    import torch

    # One intra-op thread by default: on a busy 2-core machine two OpenMP threads stall on each other's time
    # slices (measured 4-10x slower for this 0.6 M-parameter model), as the test suite's fixture notes.
    torch.set_num_threads(threads)
    from deepsynth_cli.inference.options import GenerationOptions
    from deepsynth_cli.inference.summarizer import Summarizer

    summarizer = Summarizer.load("tiny", device="cpu")
    summarizer.render_config = RENDER
    english = SCRIPTS[0]
    pages = []
    for index in range(documents):  # alternately one and two pages
        words = 150 if index % 2 == 0 else 400
        pages.append(summarizer.render(build_document(english, index, words), "en").pages)
    settings = []
    for name, batch_size, beams in GENERATION_SETTINGS:
        options = GenerationOptions(max_new_tokens=max_new_tokens, num_beams=beams)
        summarizer.summarize(pages[:batch_size], options)  # warm-up
        runs = []
        for _ in range(repeats):
            started = time.perf_counter()
            shown = tokens = 0
            for start in range(0, documents, batch_size):
                for result in summarizer.summarize(pages[start : start + batch_size], options):
                    assert result.error is None, result.error
                    shown += result.pages
                    tokens += result.new_tokens
            seconds = time.perf_counter() - started
            runs.append({"seconds": seconds, "pages": shown, "tokens": tokens})
        seconds = statistics.median(run["seconds"] for run in runs)
        settings.append(
            {
                "setting": name,
                "batch_size": batch_size,
                "num_beams": beams,
                "documents": documents,
                "pages": runs[0]["pages"],
                "new_tokens": runs[0]["tokens"],
                "seconds": seconds,
                "pages_per_s": runs[0]["pages"] / seconds,
                "documents_per_s": documents / seconds,
                "tokens_per_s": runs[0]["tokens"] / seconds,
            }
        )
    return {
        "model": "tiny",
        "parameters": sum(parameter.numel() for parameter in summarizer.model.parameters()),
        "device": "cpu",
        "torch_threads": torch.get_num_threads(),
        "page_size": RENDER.page_size,
        "vision_tokens_per_page": summarizer.info.vision_tokens_per_image,
        "max_new_tokens": max_new_tokens,
        "settings": settings,
    }


def show(console: Console, scoring: list[dict[str, Any]], generation: dict[str, Any]) -> None:
    table = Table(title="Scoring throughput (median)")
    columns = ("language", "pairs", "ROUGE pairs/s", "xlsum ROUGE pairs/s", "xlsum / deepsynth", "eval scoring pairs/s")
    for column in columns:
        table.add_column(column, justify="left" if column == "language" else "right")
    for row in scoring:
        table.add_row(
            f"{row['language']} ({row['script']})",
            str(row["pairs"]),
            f"{row['rouge_pairs_per_s']:.0f}",
            f"{row['xlsum_rouge_pairs_per_s']:.0f}",
            f"{row['xlsum_over_deepsynth']:.2f}",
            f"{row['eval_scoring_pairs_per_s']:.0f}",
        )
    console.print(table)
    if not generation:
        return
    table = Table(
        title=f"Generation, tiny preset on CPU ({generation['torch_threads']} torch threads, "
        f"{generation['max_new_tokens']} new tokens, median)"
    )
    for column in ("setting", "batch", "documents", "pages", "s", "pages/s", "documents/s", "tokens/s"):
        table.add_column(column, justify="left" if column == "setting" else "right")
    for row in generation["settings"]:
        table.add_row(
            row["setting"],
            str(row["batch_size"]),
            str(row["documents"]),
            str(row["pages"]),
            f"{row['seconds']:.2f}",
            f"{row['pages_per_s']:.2f}",
            f"{row['documents_per_s']:.2f}",
            f"{row['tokens_per_s']:.1f}",
        )
    console.print(table)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer pairs, documents and repeats")
    parser.add_argument("--skip-generation", action="store_true", help="scoring only (no torch needed)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads for generation (default 1)")
    args = parser.parse_args(argv)
    pairs, score_repeats = (50, 3) if args.quick else (300, 5)
    documents, generate_repeats, max_new_tokens = (4, 1, 16) if args.quick else (8, 3, 32)
    console = Console(stderr=False, highlight=False)
    load_before = os.getloadavg()[0]  # other work on the machine makes every figure lower
    scoring = bench_scoring(pairs, score_repeats)
    generation: dict[str, Any] = (
        {} if args.skip_generation else bench_generation(documents, generate_repeats, max_new_tokens, args.threads)
    )
    show(console, scoring, generation)
    versions = {name: _version(name) for name in ("deepsynth", "torch", "transformers", "rouge-score")}
    figures = {
        "benchmark": "eval_throughput",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": versions,
        "quick": args.quick,
        "load_average_1min": load_before,
        "scoring": scoring,
        "generation": generation or None,
    }
    print(json.dumps(figures, ensure_ascii=False, separators=(",", ":")))


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
