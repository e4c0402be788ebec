"""Commits and wall time with N parts: one shared committer against one committer per part (the baseline).

N parts (threads) each finish a shard every `--every-s` seconds and hand it over through the real
`ShardUploader` -> `HubCommitter` path, with the real `huggingface_hub` client, to the test Hub
(`tests/support/hub_server.py`) on 127.0.0.1. The baseline, measured in the same run, gives each part its own
committer with the same settings: what N separate `--shard-index` machines do. Time is scaled down (a commit
gap of `--gap-s` instead of a minute) so that a run takes seconds; the ratio of commits is what carries over.

    python benchmarks/hub_commits.py            # N = 1, 4, 16; 12 shards per part; median of 3
    python benchmarks/hub_commits.py --quick    # N = 1, 4; 6 shards per part; 1 run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.machine_info import cpu_model, usable_cores  # noqa: E402

SHARD_BYTES = 20_000


def make_shards(folder: Path, parts: int, per_part: int) -> dict[int, list[tuple[Path, object]]]:
    from deepsynth_cli.data import rendered, shards
    from deepsynth_cli.data.shards import ShardMeta, ShardWriter

    made: dict[int, list[tuple[Path, object]]] = {}
    for part in range(parts):
        for chunk in range(per_part):
            writer = ShardWriter(folder, shards.shard_name("train", part, parts, chunk))
            writer.add(
                rendered.build_row(
                    pages=[os.urandom(SHARD_BYTES)], text="t" * 300, summary="s", language="en",
                    source_dataset="bench", source_split="train", source_id=f"{part}-{chunk}", text_tokens=70,
                    source_tokens=70, dropped_chars=0, missing_glyphs=0, page_size=256,
                )
            )  # fmt: skip
            meta = ShardMeta(
                split="train", part=part, parts=parts, chunk=chunk, first_position=chunk, positions=1,
                end="full", limit=None, fingerprint="bench", rows=1, pages=1,
            )  # fmt: skip
            made.setdefault(part, []).append((writer.commit(meta), meta))
    return made


def push(
    server: object, made: dict[int, list[tuple[Path, object]]], repo_id: str, shared: bool, args: object
) -> dict[str, float]:
    from deepsynth_cli.data import hub, hub_commits

    api = hub.hub_api(server.token)  # type: ignore[attr-defined]
    target = hub.HubTarget(repo_id=repo_id, private=False)
    retry = hub.Retry(attempts=3, backoff_s=0.5, notify=lambda message: None)
    hub.create_repo(api, target, retry)

    def committer() -> hub_commits.HubCommitter:
        return hub_commits.HubCommitter(
            api, target, retry, max_commits_per_hour=3600 / args.gap_s,  # type: ignore[attr-defined]
            commit_every=8, commit_interval_s=2 * args.gap_s,  # type: ignore[attr-defined]
        )  # fmt: skip

    one = committer() if shared else None
    own = {part: one or committer() for part in made}

    def part(index: int) -> None:
        uploader = hub_commits.ShardUploader(
            api, target, index, len(made), {}, sink=own[index], retry=retry, delete_after_commit=False
        )
        for path, meta in made[index]:
            time.sleep(args.every_s)  # type: ignore[attr-defined]  # rendering the next shard
            uploader.submit(path, meta)  # type: ignore[arg-type]
        uploader.close()
        if not shared:
            own[index].close()

    started = time.perf_counter()
    threads = [threading.Thread(target=part, args=(index,)) for index in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if one is not None:
        one.close()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "commits": server.commit_count(repo_id)}  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 1, 4; 6 shards per part; one run")
    parser.add_argument("--gap-s", type=float, default=1.0, help="seconds between commits (3600 / max an hour)")
    parser.add_argument("--every-s", type=float, default=0.25, help="seconds a part takes per shard")
    args = parser.parse_args()
    counts = [1, 4] if args.quick else [1, 4, 16]
    per_part = 6 if args.quick else 12
    repeats = 1 if args.quick else 3

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        from tests.support.hub_fixture import pointed_at
        from tests.support.hub_server import HubServer

        with HubServer(root / "hub") as server, pointed_at(server, root / "hf-home"):
            for parts in counts:
                made = make_shards(root / f"shards-{parts}", parts, per_part)
                runs: dict[str, list[dict[str, float]]] = {"shared": [], "per part": []}
                for repeat in range(repeats):
                    for name in runs:
                        repo = f"{server.user}/n{parts}-{name.replace(' ', '')}-{repeat}"
                        runs[name].append(push(server, made, repo, name == "shared", args))
                row: dict[str, float] = {"parts": parts, "shards": parts * per_part}
                for name, measured in runs.items():
                    row[f"{name} commits"] = statistics.median(run["commits"] for run in measured)
                    row[f"{name} seconds"] = round(statistics.median(run["seconds"] for run in measured), 2)
                rows.append(row)

    table = Table(title=f"commits with N parts (gap {args.gap_s:g} s, a shard every {args.every_s:g} s per part)")
    for column in rows[0]:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(f"{value:g}" for value in row.values()))
    Console().print(table)
    print(
        json.dumps(
            {
                "benchmark": "hub_commits",
                "machine": {"cpu": cpu_model(), "cores": usable_cores()},
                "gap_s": args.gap_s,
                "every_s": args.every_s,
                "repeats": repeats,
                "results": rows,
            }
        )
    )


if __name__ == "__main__":
    main()
