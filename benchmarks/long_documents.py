"""Benchmark: memory and time of `deepsynth generate` on one huge document against one of ordinary size.

Each case is the CLI (`deepsynth generate FILE --num-workers 1 --store local --json`) in a fresh child process,
its peak RSS read from the kernel when it exits (`os.wait4`, `ru_maxrss` of that child alone). The input file holds
the document under test and two short ordinary ones, so every run renders something. Cases:

- `50 KB`: a 50 KB document, the default limit. The baseline every ratio is against.
- `50 MB skipped`: a 50 MB document, the default limit (`max_text_chars`, 1 M characters): skipped as
  `text_too_long`; what is left is reading its line.
- `1 MB rendered`: a document just under the default limit, one paragraph with no line break (the worst case for
  the layout engine), rendered to its page budget.
- `50 MB rendered`: the 50 MB document with `--max-text-chars 100000000`: rendered to 4 pages, its
  `source_tokens` counted in bounded pieces (`--skip-raised` leaves it out; it takes a minute).

Documents are ASCII words with numbers filled in (so no paragraph repeats), one paragraph, written to the file in
pieces so that this process never holds one.

    python benchmarks/long_documents.py            # 3 runs per case
    python benchmarks/long_documents.py --quick    # 1 run per case, no raised-limit case

Prints a table, then ONE JSON line (the last line of stdout) with every figure and pass/fail per target.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine_info import cpu_model, usable_cores

import deepsynth_cli
from deepsynth_cli.config import MAX_TEXT_CHARS

# Targets: the 50 MB document, skipped, costs at most 4x its size over the baseline (reading its line: the bytes, the
# decoded line, the parsed string); one of 1 M characters rendered to its pages costs at most 150 MiB more.
TARGET_SKIPPED_EXTRA_MIB = 200
TARGET_RENDERED_1MB_EXTRA_MIB = 150
SMALL = ["--page-size", "512", "--font-size", "12", "--max-pages", "4"]


def write_document(path: Path, chars: int, seed: int) -> None:
    """One JSONL row of `chars` characters of text (one paragraph) and two ordinary rows, written in pieces."""
    rng = random.Random(seed)
    vocabulary = [f"word{n}" for n in range(500)] + ["the", "of", "and", "a", "in", "to"]
    with path.open("w", encoding="ascii") as handle:
        for index in range(2):
            text = " ".join(rng.choice(vocabulary) for _ in range(300))
            handle.write(json.dumps({"id": f"ordinary-{index}", "text": text, "summary": "two words here"}) + "\n")
        handle.write('{"id": "long", "summary": "a summary of the long document", "text": "')
        written = 0
        while written < chars:
            piece = " ".join(f"{rng.choice(vocabulary)}{rng.randrange(1000)}" for _ in range(2000)) + " "
            piece = piece[: chars - written]
            handle.write(piece)
            written += len(piece)
        handle.write('"}\n')


def run_case(path: Path, out: Path, limit: int | None, code: Path | None) -> dict[str, Any]:
    """The CLI on `path` in a child process: seconds, the child's peak RSS, rows and skips. `code`: run the
    deepsynth of that source tree instead (one without `--max-text-chars`: the limit is not passed)."""
    args = [sys.executable, "-m", "deepsynth_cli", "generate", str(path), "--out", str(out), "--json"]
    args += ["--num-workers", "1", "--store", "local", *SMALL]
    if limit is not None and code is None:
        args += ["--max-text-chars", str(limit)]
    # The child imports deepsynth from `code`, else from the tree this script imported it from; it runs in the
    # output's folder, so that `python -m` does not put the current directory's copy first.
    tree = code or Path(deepsynth_cli.__file__).resolve().parents[1]
    env = {**os.environ, "DEEPSYNTH_DEBUG": "0", "PYTHONPATH": str(tree)}
    out.mkdir(parents=True)
    started = time.perf_counter()
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=out)
    # Read the pipes before waiting: a full pipe would block the child.
    stdout, stderr = child.stdout.read(), child.stderr.read()  # type: ignore[union-attr]
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"generate failed ({child.returncode}): {stderr.decode()[-2000:]}")
    split = json.loads(stdout)["datasets"][0]["splits"]["train"]
    return {
        "seconds": seconds,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # KiB on Linux
        "rows": split["rows"],
        "skipped": split["skipped"],
        "source_tokens": split["source_tokens"],
        "pages": split["pages"],
    }


def _rounded(figures: dict[str, Any]) -> dict[str, Any]:
    return {key: round(value, 3) if isinstance(value, float) else value for key, value in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one run per case, no raised-limit case")
    parser.add_argument("--runs", type=int, default=3, help="runs per case (median)")
    parser.add_argument("--skip-raised", action="store_true", help="leave out the 50 MB rendered case")
    parser.add_argument(
        "--before", type=Path, help="run the cases with the deepsynth of this source tree (e.g. a checkout of main)"
    )
    parser.add_argument("--big-chars", type=int, default=50_000_000, help="size of the big document (default 50 M)")
    args = parser.parse_args()
    runs = 1 if args.quick else args.runs
    big = f"{args.big_chars / 1e6:g} MB"
    cases = [
        ("50 KB", 50_000, None),
        (f"{big} skipped", args.big_chars, None),
        ("1 MB rendered", MAX_TEXT_CHARS, None),
    ]
    if not (args.quick or args.skip_raised):
        cases.append((f"{big} rendered", args.big_chars, 100_000_000))
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="deepsynth-long-") as tmp:
        root = Path(tmp)
        files: dict[int, Path] = {}
        for _, chars, _ in cases:
            if chars not in files:
                folder = root / f"doc{chars}"
                folder.mkdir()
                files[chars] = folder / "train.jsonl"
                write_document(files[chars], chars, seed=chars)
        samples: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in cases}
        for run in range(runs):  # interleaved, so that a busy moment of the machine hits every case alike
            for name, chars, limit in cases:
                out = root / f"out-{run}-{name.replace(' ', '_')}"
                samples[name].append(run_case(files[chars], out, limit, args.before))
        for name, chars, limit in cases:
            runs_of = samples[name]
            results[name] = {
                "document_chars": chars,
                "max_text_chars": limit or MAX_TEXT_CHARS,
                "seconds": statistics.median(r["seconds"] for r in runs_of),
                "peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in runs_of),
                "seconds_runs": [round(r["seconds"], 2) for r in runs_of],
                "peak_rss_runs_mib": [round(r["peak_rss_mib"]) for r in runs_of],
                "rows": runs_of[0]["rows"],
                "skipped": runs_of[0]["skipped"],
                "pages": runs_of[0]["pages"],
                "source_tokens": runs_of[0]["source_tokens"],
            }
    base = results["50 KB"]
    for figures in results.values():
        figures["extra_rss_mib"] = figures["peak_rss_mib"] - base["peak_rss_mib"]
        figures["rss_ratio"] = figures["peak_rss_mib"] / base["peak_rss_mib"]
        figures["time_ratio"] = figures["seconds"] / base["seconds"]

    table = Table(title=f"deepsynth generate, one long document ({runs} run(s) per case, medians)")
    for column in ("case", "limit", "rows", "skipped", "pages", "s", "peak RSS MiB", "vs 50 KB", "time vs 50 KB"):
        table.add_column(column, justify="left" if column in ("case", "skipped") else "right")
    for name, figures in results.items():
        skipped = ", ".join(f"{k} {v}" for k, v in figures["skipped"].items()) or "-"
        table.add_row(
            name, f"{figures['max_text_chars']:,}", str(figures["rows"]), skipped, str(figures["pages"]),
            f"{figures['seconds']:.1f}", f"{figures['peak_rss_mib']:.0f}", f"{figures['rss_ratio']:.2f}x",
            f"{figures['time_ratio']:.2f}x",
        )  # fmt: skip
    Console(width=140).print(table)

    skipped_extra = results[f"{big} skipped"]["extra_rss_mib"]
    rendered_extra = results["1 MB rendered"]["extra_rss_mib"]
    summary = {
        "benchmark": "long_documents",
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "machine": {"cpu": cpu_model(), "cores": usable_cores(), "python": platform.python_version()},
        "runs": runs,
        "code": str(args.before) if args.before else "this tree",
        "cases": {name: _rounded(figures) for name, figures in results.items()},
        "targets": {
            "skipped_big_extra_rss_mib": {"limit": TARGET_SKIPPED_EXTRA_MIB, "value": round(skipped_extra, 1),
                                           "pass": skipped_extra <= TARGET_SKIPPED_EXTRA_MIB},
            "rendered_1mb_extra_rss_mib": {"limit": TARGET_RENDERED_1MB_EXTRA_MIB, "value": round(rendered_extra, 1),
                                           "pass": rendered_extra <= TARGET_RENDERED_1MB_EXTRA_MIB},
        },
    }  # fmt: skip
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
