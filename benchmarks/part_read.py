"""Bytes each part reads with `--num-shards N`: part-aware reading (`Source.part`) against the old round-robin.

Round-robin (the baseline, measured in the same run through `round_robin_part`, the scheme that still serves CSV
and JSON arrays) makes every part stream the whole split and keep one row in N. Part-aware reading gives part I
a contiguous range: the row groups of its rows in a Parquet split, its byte range of a JSON Lines split. Both are
real sources over real files; local bytes are what the kernel counts for this process (`rchar` in
/proc/self/io: every read() and pread()), Hub bytes what the loopback test Hub (tests/support/hub_server.py)
served for the Parquet files, counted from each request's Range header. Incompressible text, so bytes follow rows.

    python benchmarks/part_read.py            # 8,000 rows (~37 MB per format), N = 4
    python benchmarks/part_read.py --quick    # 2,000 rows
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine_info import cpu_model, usable_cores  # noqa: E402

ROW_GROUP_ROWS = 256


def _rows(count: int) -> list[dict[str, Any]]:
    draw = random.Random(0)

    def words(n: int) -> str:  # incompressible, so that bytes follow rows
        return " ".join(f"{draw.getrandbits(40):010x}" for _ in range(n))

    return [{"id": f"doc-{n:06d}", "text": words(400), "summary": words(30), "url": words(3)} for n in range(count)]


def _rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise RuntimeError("no rchar in /proc/self/io")


def _reader(source: Any, split: str, index: int, parts: int, scheme: str) -> Iterator[object]:
    """Part `index` of `parts` read to its end, part-aware or round-robin (the old scheme, as CSV still gets it)."""
    from deepsynth_cli.data.sources import round_robin_part

    if scheme == "part-aware":
        return iter(source.part(split, index, parts))
    return iter(round_robin_part(lambda: source.documents(split), index, parts, None))


def _schemes(
    make_source: Callable[[], Any], split: str, parts: int, repeats: int, counter: Callable[[], int]
) -> dict[str, Any]:
    """Per scheme and part: rows, median bytes (`counter` before and after) and median seconds of `repeats` reads,
    each from a fresh source (nothing cached from the run before)."""
    figures: dict[str, Any] = {}
    for scheme in ("part-aware", "round-robin"):
        per_part = []
        for index in range(parts):
            runs = []
            for _ in range(repeats):
                source = make_source()
                before, started = counter(), time.perf_counter()
                rows = sum(1 for _ in _reader(source, split, index, parts, scheme))
                runs.append((rows, counter() - before, time.perf_counter() - started))
            per_part.append(
                {
                    "rows": runs[0][0],
                    "bytes": int(statistics.median(run[1] for run in runs)),
                    "seconds": statistics.median(run[2] for run in runs),
                }
            )
        figures[scheme] = per_part
    return figures


def _hub(folder: Path, tmp: Path, parts: int, repeats: int) -> dict[str, Any]:
    """The same Parquet files as a Hub dataset repo of the loopback Hub, read as `deepsynth generate user/repo`."""
    from tests.support.hub_fixture import pointed_at
    from tests.support.hub_server import HubServer

    with HubServer(tmp / "hub") as server, pointed_at(server, tmp / "hf-home"):
        from huggingface_hub import HfApi

        from deepsynth_cli.data.sources import open_source

        repo = f"{server.user}/bench"
        api = HfApi()
        api.create_repo(repo, repo_type="dataset")
        api.upload_folder(folder_path=folder, path_in_repo="data", repo_id=repo, repo_type="dataset")
        sizes = {f"data/{path.name}": path.stat().st_size for path in folder.glob("*.parquet")}
        counter = partial(server.bytes_served, sizes)

        def make_source() -> Any:
            source = open_source(repo, text_column="text", summary_column="summary")
            source.splits()  # listing the splits costs the same in both schemes: not counted
            return source

        figures = _schemes(make_source, "train", parts, repeats, counter)
        return figures | {"file_bytes": sum(sizes.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 rows instead of 8,000")
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-hub", action="store_true", help="skip the loopback Hub (needs fastapi and uvicorn)")
    args = parser.parse_args()
    count = 2000 if args.quick else 8000

    import pyarrow as pa
    import pyarrow.parquet as pq

    from deepsynth_cli.data.sources import open_source

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        rows = _rows(count)
        parquet_dir, jsonl_dir = tmp / "parquet", tmp / "jsonl"
        parquet_dir.mkdir()
        jsonl_dir.mkdir()
        half = count // 2  # two files per split, as the Hub's exports and our own shards come
        for number, chunk in enumerate((rows[:half], rows[half:])):
            pq.write_table(
                pa.Table.from_pylist(chunk), parquet_dir / f"train-{number:05d}-of-00002.parquet",
                row_group_size=ROW_GROUP_ROWS,
            )  # fmt: skip
            lines = "".join(json.dumps(row) + "\n" for row in chunk)
            (jsonl_dir / f"train-{number:05d}-of-00002.jsonl").write_text(lines, encoding="utf-8")
        del rows
        for name, folder in (("local Parquet", parquet_dir), ("local JSON Lines", jsonl_dir)):
            size = sum(path.stat().st_size for path in folder.iterdir())
            figures = _schemes(partial(open_source, str(folder)), "train", args.parts, args.repeats, _rchar)
            results[name] = figures | {"file_bytes": size}
        if not args.no_hub:
            results["Hub Parquet (loopback)"] = _hub(parquet_dir, tmp, args.parts, args.repeats)

    title = f"bytes read per part, {count} rows, --num-shards {args.parts} (median of {args.repeats})"
    table = Table(title=title)
    for column in ("source", "file MB", "scheme", "MB per part (max)", "share of file", "s per part (max)", "rows"):
        table.add_column(column, justify="left" if column in ("source", "scheme") else "right")
    summary: dict[str, Any] = {}
    for name, figures in results.items():
        size = figures["file_bytes"]
        for scheme in ("part-aware", "round-robin"):
            per_part = figures[scheme]
            most = max(part["bytes"] for part in per_part)
            table.add_row(
                name, f"{size / 1e6:.1f}", scheme, f"{most / 1e6:.2f}", f"{most / size:.2f}",
                f"{max(part['seconds'] for part in per_part):.2f}", "/".join(str(part["rows"]) for part in per_part),
            )  # fmt: skip
        aware = max(part["bytes"] for part in figures["part-aware"])
        robin = max(part["bytes"] for part in figures["round-robin"])
        summary[name] = {
            "file_bytes": size,
            "part_aware_bytes": [part["bytes"] for part in figures["part-aware"]],
            "round_robin_bytes": [part["bytes"] for part in figures["round-robin"]],
            "part_aware_seconds": [round(part["seconds"], 3) for part in figures["part-aware"]],
            "round_robin_seconds": [round(part["seconds"], 3) for part in figures["round-robin"]],
            "bytes_ratio": round(robin / aware, 2),
        }
    console = Console(width=150)
    console.print(table)
    for name, figures in summary.items():
        console.print(f"{name}: each part reads {figures['bytes_ratio']:.1f}x fewer bytes than with round-robin")
    print(
        json.dumps(
            {
                "benchmark": "part_read",
                "date": datetime.now(UTC).strftime("%Y-%m-%d"),
                "cpu": cpu_model(),
                "cores": usable_cores(),
                "rows": count,
                "parts": args.parts,
                "row_group_rows": ROW_GROUP_ROWS,
                "repeats": args.repeats,
                "results": summary,
            }
        )
    )


if __name__ == "__main__":
    main()
