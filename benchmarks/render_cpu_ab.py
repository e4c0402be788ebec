"""Benchmark: the renderer of a git revision (before) against this tree's (after), in CPU time.

On a shared machine wall-clock rates swing by 20 % between repetitions (other processes take the core); the CPU
time this process spends rendering moves far less, so small differences show. The same documents go through
both renderers, alternating which goes first, in one process: one-page documents (`render.py`'s, cut to fill
exactly one page) and ~2.5-page documents (page breaks inside paragraphs).

    python benchmarks/render_cpu_ab.py --before REV          # ~2 minutes
    python benchmarks/render_cpu_ab.py --before REV --quick  # < 30 s

Prints a table, then ONE JSON line (the last line of stdout): after/before speed per script and case (above 1:
the tree is faster).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from deepsynth_cli.config import RenderConfig
from deepsynth_cli.data.render import PageRenderer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine_info import cpu_model, usable_cores
from render import SCRIPTS, build_document, one_page_document, renderer_at

CASES = {"one page": None, "~2.5 pages": 2.5}  # document size: one full page, or this many times its words


def cpu_seconds(renderer: PageRenderer, documents: Sequence[str], language: str) -> float:
    started = time.process_time()
    for text in documents:
        renderer.render(text, language)
    return time.process_time() - started


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, metavar="REV", help="git revision of the renderer to compare")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args(argv)
    reps, docs = (2, 2) if args.quick else (6, 4)
    before_class = renderer_at(args.before)
    fitter = PageRenderer(RenderConfig())
    speed: dict[str, dict[str, float]] = {}
    for case, scale in CASES.items():
        after, before = PageRenderer(RenderConfig()), before_class(RenderConfig())
        speed[case] = {}
        for script in SCRIPTS:
            units = 500 if script.spaced else 800
            seconds: dict[str, list[float]] = {"before": [], "after": []}
            warm = [build_document(script, 90_000, int(units * (scale or 1)))]
            cpu_seconds(before, warm, script.language), cpu_seconds(after, warm, script.language)
            for rep in range(reps):
                seeds = [40_000 + 10 * rep + i for i in range(docs)]
                if scale is None:
                    documents = [one_page_document(fitter, script, seed, units) for seed in seeds]
                else:
                    documents = [build_document(script, seed, int(units * scale)) for seed in seeds]
                order = [("before", before), ("after", after)]
                for name, renderer in order if rep % 2 else order[::-1]:
                    seconds[name].append(cpu_seconds(renderer, documents, script.language))
            speed[case][script.language] = statistics.median(seconds["before"]) / statistics.median(seconds["after"])
    table = Table(title=f"Renderer CPU time, {args.before} (before) vs this tree (after): after speed / before")
    table.add_column("script")
    for case in CASES:
        table.add_column(case, justify="right")
    for script in SCRIPTS:
        table.add_row(script.name, *(f"{speed[case][script.language]:.3f}x" for case in CASES))
    Console(highlight=False, width=120).print(table)
    summary = {
        "benchmark": "render_cpu_ab",
        "before": args.before,
        "machine": {"cpu": cpu_model(), "cores": usable_cores()},
        "reps": reps,
        "docs_per_rep": docs,
        "after_speed_over_before": {case: {k: round(v, 4) for k, v in row.items()} for case, row in speed.items()},
    }
    print(json.dumps(summary, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
