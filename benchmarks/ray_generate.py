"""Benchmark: `deepsynth generate --executor ray` with 1 and 2 workers against `--num-workers 1/2` locally.

Every configuration renders the same documents through the CLI in a fresh process, as a user runs it: local
with 1 and 2 render processes, and Ray (a local Ray on 127.0.0.1, started and stopped by the run) with 1 part
and with 2 parts of one render process each. Each is timed twice per repetition: on all the documents, and on
`--max-samples 2` (the fixed cost: interpreter, imports, for Ray its start-up and stop). docs/s is end to end;
"docs/s after start-up" divides the extra documents by the extra time. Ratios are against local with 1 worker,
measured in the same run.

    python benchmarks/ray_generate.py            # 2,000 documents, 3 repetitions (~6 minutes on 2 cores)
    python benchmarks/ray_generate.py --quick    # 60 documents, 1 repetition
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine_info import cpu_model, usable_cores  # noqa: E402

CONFIGS: dict[str, list[str]] = {
    "local, --num-workers 1": ["--num-workers", "1"],
    "local, --num-workers 2": ["--num-workers", "2"],
    "ray, 1 task x 1 worker": ["--executor", "ray", "--num-shards", "1", "--num-workers-per-task", "1"],
    "ray, 2 tasks x 1 worker": ["--executor", "ray", "--num-shards", "2", "--num-workers-per-task", "1"],
}
BASELINE = "local, --num-workers 1"
FEW = 2  # documents of the start-up run


def make_documents(path: Path, count: int) -> None:
    """English news-like documents of about one page at the default geometry, each distinct."""
    words = ("the", "of", "and", "to", "in", "a", "is", "that", "for", "on", "with", "as", "was", "by", "at", "from",
             "it", "an", "be", "this", "are")  # fmt: skip
    rows = []
    for index in range(count):
        body = " ".join(f"{words[(index * 7 + k) % len(words)]}{(index + k) % 53}" for k in range(320))
        rows.append({"id": f"doc-{index:05d}", "text": f"Report {index}. {body}.", "summary": f"Report {index}."})
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def run(dataset: Path, out: Path, extra: list[str]) -> float:
    """Wall seconds of one `deepsynth generate` process."""
    command = [sys.executable, "-m", "deepsynth_cli", "generate", str(dataset), "--out", str(out), "--json", *extra]
    env = {**os.environ, "DEEPSYNTH_STORE": "local", "HF_HUB_OFFLINE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(extra)} failed ({result.returncode}): {result.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="60 documents, 1 repetition")
    parser.add_argument("--docs", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    docs = args.docs or (60 if args.quick else 2000)
    repeats = args.repeats or (1 if args.quick else 3)

    measured: dict[str, dict[str, list[float]]] = {name: {"full": [], "few": []} for name in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dataset = root / "corpus" / "train.jsonl"
        dataset.parent.mkdir()
        make_documents(dataset, docs)
        for repeat in range(repeats):
            for index, (name, extra) in enumerate(CONFIGS.items()):  # interleaved: load drifts hit every one
                base = root / f"out-{repeat}-{index}"
                measured[name]["full"].append(run(dataset, base / "full", extra))
                measured[name]["few"].append(run(dataset, base / "few", [*extra, "--max-samples", str(FEW)]))

    results: dict[str, dict[str, float]] = {}
    for name, runs in measured.items():
        full, few = statistics.median(runs["full"]), statistics.median(runs["few"])
        results[name] = {
            "wall_s": round(full, 2),
            "startup_s": round(few, 2),
            "docs_per_s": round(docs / full, 2),
            "docs_per_s_after_startup": round((docs - FEW) / max(full - few, 1e-9), 2),
        }
    base = results[BASELINE]
    for row in results.values():
        row["vs_local_1_worker"] = round(row["docs_per_s"] / base["docs_per_s"], 2)
        row["after_startup_vs_local_1_worker"] = round(
            row["docs_per_s_after_startup"] / base["docs_per_s_after_startup"], 2
        )
    ray_fixed = results["ray, 1 task x 1 worker"]["startup_s"] - base["startup_s"]

    console = Console()
    table = Table(title=f"deepsynth generate, {docs} documents, 1024 px pages, median of {repeats}")
    columns = ("configuration", "wall s", "start-up s", "docs/s", "vs local 1w", "docs/s after start-up", "vs local 1w")
    for column in columns:
        table.add_column(column, justify="left" if column == "configuration" else "right")
    for name, row in results.items():
        table.add_row(
            name, f"{row['wall_s']:.1f}", f"{row['startup_s']:.1f}", f"{row['docs_per_s']:.1f}",
            f"{row['vs_local_1_worker']:.2f}x", f"{row['docs_per_s_after_startup']:.1f}",
            f"{row['after_startup_vs_local_1_worker']:.2f}x",
        )  # fmt: skip
    console.print(table)
    console.print(f"Ray's fixed cost over a local run (start-up runs, 1 task): {ray_fixed:.1f} s")
    import ray

    print(
        json.dumps(
            {
                "benchmark": "ray_generate",
                "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
                "machine": {"cpu": cpu_model(), "cores": usable_cores()},
                "ray": ray.__version__,
                "docs": docs,
                "repeats": repeats,
                "results": results,
                "ray_fixed_cost_s": round(ray_fixed, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
