"""Upload figures: MB/s and commits per 1k shards, pushing shards to a Hub-compatible server on loopback.

Runs the real `huggingface_hub` client through deepsynth's `ShardUploader` and `HubCommitter` against the test Hub
(`tests/support/hub_server.py`) on 127.0.0.1. Shards are real Parquet files written by `ShardWriter`, with
incompressible page bytes the size of a PNG page. The baseline, measured in the same run, is what the public
project did at best: one commit per shard. The figures are about the client and the commit strategy; loopback
has no network latency, so real-Hub MB/s will be lower and the commit-count saving matters more there.

    python benchmarks/upload.py            # 1,000 shards, ~1-2 minutes
    python benchmarks/upload.py --quick    # 100 shards
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine_info import cpu_model, usable_cores  # noqa: E402

PAGE_BYTES = 120_000  # a 1024 px PNG page of text is 100-190 KB (shared/notes/rendering.md)


def make_shards(folder: Path, count: int) -> list[tuple[Path, object]]:
    from deepsynth_cli.data import shards
    from deepsynth_cli.data.shards import ShardMeta, ShardWriter

    made = []
    for chunk in range(count):
        writer = ShardWriter(folder, shards.shard_name("train", 0, 1, chunk))
        writer.add(
            {
                "pages": shards.page_images([os.urandom(PAGE_BYTES)]), "text": "t" * 3000, "summary": "s" * 300,
                "language": "en", "source_dataset": "bench", "source_split": "train", "source_id": str(chunk),
                "num_pages": 1, "text_tokens": 700, "vision_tokens": 257, "truncated": False, "dropped_chars": 0,
            }
        )  # fmt: skip
        meta = ShardMeta(
            split="train", part=0, parts=1, chunk=chunk, first_position=chunk, positions=1, end="full", limit=None,
            fingerprint="bench", rows=1, pages=1,
        )  # fmt: skip
        made.append((writer.commit(meta), meta))
    return made


def push_one_per_shard(server: object, shard_files: list[tuple[Path, object]], repo_id: str) -> dict[str, float]:
    """The baseline: one `upload_file` (one commit) per shard, as the public project did at best."""
    from deepsynth_cli.data import hub

    api = hub.hub_api(server.token)  # type: ignore[attr-defined]
    api.create_repo(repo_id, repo_type="dataset", exist_ok=True)
    started = time.perf_counter()
    for path, _ in shard_files:
        api.upload_file(path_or_fileobj=str(path), path_in_repo=hub.shard_path_in_repo(path.name),
                        repo_id=repo_id, repo_type="dataset")  # fmt: skip
    seconds = time.perf_counter() - started
    megabytes = sum(path.stat().st_size for path, _ in shard_files) / 1e6
    commits = server.commit_count(repo_id)  # type: ignore[attr-defined]
    return {"seconds": seconds, "commits": commits, "mb": megabytes, "mb_per_s": megabytes / seconds}


def push(server: object, shard_files: list[tuple[Path, object]], repo_id: str, commit_every: int) -> dict[str, float]:
    from deepsynth_cli.data import hub, hub_commits

    api = hub.hub_api(server.token)  # type: ignore[attr-defined]
    target = hub.HubTarget(repo_id=repo_id, private=False)
    retry = hub.Retry(attempts=3, backoff_s=0.5, notify=lambda message: None)
    hub.create_repo(api, target, retry)
    started = time.perf_counter()
    # No rate bound here (1e9 an hour): the figure is about batching, the bound only ever lowers the count.
    committer = hub_commits.HubCommitter(
        api, target, retry, max_commits_per_hour=1e9, commit_every=commit_every, commit_interval_s=3600
    )
    uploader = hub_commits.ShardUploader(
        api, target, 0, 1, {}, sink=committer, retry=retry, delete_after_commit=False, batch=commit_every
    )
    for path, meta in shard_files:
        uploader.submit(path, meta)  # type: ignore[arg-type]
    uploader.close()
    committer.close()
    seconds = time.perf_counter() - started
    commits = server.commit_count(repo_id)  # type: ignore[attr-defined]
    megabytes = uploader.bytes_uploaded / 1e6
    return {"seconds": seconds, "commits": commits, "mb": megabytes, "mb_per_s": megabytes / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 shards instead of 1,000")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    count = 100 if args.quick else 1000
    baseline_count = 100 if args.quick else 200  # one commit per shard is slow: time a sample, scale per 1k

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        from tests.support.hub_fixture import pointed_at
        from tests.support.hub_server import HubServer

        with HubServer(root / "hub") as server, pointed_at(server, root / "hf-home"):
            shard_files = make_shards(root / "shards", count)
            runs: dict[str, list[dict[str, float]]] = {"deepsynth (8 per commit)": [], "one commit per shard": []}
            for repeat in range(args.repeats):
                user = server.user
                runs["deepsynth (8 per commit)"].append(push(server, shard_files, f"{user}/batched-{repeat}", 8))
                sample = shard_files[:baseline_count]
                runs["one commit per shard"].append(push_one_per_shard(server, sample, f"{user}/single-{repeat}"))

    results = {}
    for name, measured in runs.items():
        shards_pushed = count if name.startswith("deepsynth") else baseline_count
        results[name] = {
            "shards": shards_pushed,
            "mb_per_s": statistics.median(run["mb_per_s"] for run in measured),
            "commits_per_1k_shards": statistics.median(run["commits"] for run in measured) * 1000 / shards_pushed,
            "seconds_per_1k_shards": statistics.median(run["seconds"] for run in measured) * 1000 / shards_pushed,
        }
    ours, base = results["deepsynth (8 per commit)"], results["one commit per shard"]
    table = Table(title=f"upload to a loopback Hub ({PAGE_BYTES // 1000} KB shards, median of {args.repeats})")
    for column in ("strategy", "shards", "MB/s", "commits / 1k shards", "s / 1k shards"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for name, row in results.items():
        table.add_row(
            name, str(row["shards"]), f"{row['mb_per_s']:.1f}", f"{row['commits_per_1k_shards']:.0f}",
            f"{row['seconds_per_1k_shards']:.1f}",
        )  # fmt: skip
    console = Console(stderr=False)
    console.print(table)
    speedup = base["seconds_per_1k_shards"] / ours["seconds_per_1k_shards"]
    console.print(f"deepsynth vs one commit per shard: {speedup:.1f}x faster, "
                  f"{base['commits_per_1k_shards'] / ours['commits_per_1k_shards']:.0f}x fewer commits")  # fmt: skip
    import huggingface_hub

    print(
        json.dumps(
            {
                "benchmark": "upload",
                "machine": {"cpu": cpu_model(), "cores": usable_cores()},
                "huggingface_hub": huggingface_hub.__version__,
                "shard_bytes": PAGE_BYTES,
                "results": results,
                "speedup_vs_one_commit_per_shard": round(speedup, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
