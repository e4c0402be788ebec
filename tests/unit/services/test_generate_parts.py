"""`generate --num-shards 2` end to end through the CLI: over a Parquet split with several row groups and a JSON
Lines split, each part renders a contiguous range of the source, the two parts hold every row exactly once, and
the folder records how rows were dealt."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from deepsynth_cli.cli.app import app
from deepsynth_cli.config import GenerateConfig
from deepsynth_cli.data import rendered, shards
from deepsynth_cli.data.sources import open_source
from deepsynth_cli.errors import DatasetError, OutputError
from deepsynth_cli.services import generate

SMALL = ["--page-size", "256", "--font-size", "11", "--num-workers", "1"]


def _corpus(tmp_path: Path, article: Callable[..., dict[str, Any]]) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    rows = [article(n) for n in range(14)]
    pq.write_table(pa.Table.from_pylist(rows), folder / "train.parquet", row_group_size=3)  # 5 row groups
    lines = [json.dumps(article(n)) for n in range(100, 109)]
    (folder / "test.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def _ids(folder: Path, split: str, part: int) -> list[str]:
    files = sorted((folder / "data").glob(f"{split}-{part:05d}-of-00002-*.parquet"))
    return [row["source_id"] for path in files for row in pq.read_table(path, columns=["source_id"]).to_pylist()]


def test_two_parts_render_contiguous_ranges_and_every_row_once(
    tmp_path: Path, article: Callable[..., dict[str, Any]]
) -> None:
    corpus, out = _corpus(tmp_path, article), tmp_path / "out"
    runner = CliRunner()
    for index in (1, 0):  # machines finish in any order
        args = ["generate", str(corpus), "--num-shards", "2", "--shard-index", str(index), "--rows-per-shard", "2"]
        result = runner.invoke(app, [*args, "--out", str(out), "--json", *SMALL])
        assert result.exit_code == 0, result.stderr
    folder = out / "corpus"
    train, test = [f"doc-{n:05d}" for n in range(14)], [f"doc-{n:05d}" for n in range(100, 109)]
    # Parquet: rows 0-6 and 7-13. JSON Lines: the lines whose first byte lies in each half of the file.
    assert (_ids(folder, "train", 0), _ids(folder, "train", 1)) == (train[:7], train[7:])
    part0, part1 = _ids(folder, "test", 0), _ids(folder, "test", 1)
    assert part0 + part1 == test and abs(len(part0) - len(part1)) <= 1
    loaded = datasets.load_dataset(str(folder))
    assert sorted(loaded["train"]["source_id"]) == train and sorted(loaded["test"]["source_id"]) == test
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["fingerprint_inputs"]["part_assignment"] == "ranges"
    assert manifest["splits"]["train"]["rows"] == 14 and manifest["parts_present"] == [0, 1]

    again = runner.invoke(app, ["generate", str(corpus), "--num-shards", "2", "--shard-index", "0",
                                "--rows-per-shard", "2", "--out", str(out), "--json", *SMALL])  # fmt: skip
    assert again.exit_code == 0, again.stderr
    splits = json.loads(again.stdout)["datasets"][0]["splits"]
    assert {name: split["shards_written"] for name, split in splits.items()} == {"train": 0, "test": 0}


def test_max_samples_keeps_the_first_rows_of_the_source_across_parts(
    tmp_path: Path, article: Callable[..., dict[str, Any]], generate_cfg: Callable[..., GenerateConfig]
) -> None:
    corpus = _corpus(tmp_path, article)
    seen: dict[str, list[str]] = {"train": [], "test": []}
    for index in range(2):
        cfg = generate_cfg([str(corpus)], num_shards=2, shard_index=index, rows_per_shard=2, max_samples=5)
        report = generate.run(cfg).datasets[0]
        folder = Path(report.location)
        for split in seen:
            seen[split] += _ids(folder, split, index)
    # The first 5 rows of each split: the Parquet part 0 holds rows 0-6, so it has all 5 and part 1 none.
    assert seen["train"] == [f"doc-{n:05d}" for n in range(5)]
    assert seen["test"] == [f"doc-{n:05d}" for n in range(100, 105)]

    # Raising the limit later keeps the finished shards and renders only what is new.
    cfg = generate_cfg([str(corpus)], num_shards=2, shard_index=0, rows_per_shard=2)
    train = generate.run(cfg).datasets[0].splits["train"]
    assert (train.rows, train.shards_reused, train.shards_written) == (7, 2, 2)


def test_one_part_keeps_the_fingerprint_of_folders_made_before_parts_read_ranges(
    tmp_path: Path, article: Callable[..., dict[str, Any]], generate_cfg: Callable[..., GenerateConfig]
) -> None:
    source = open_source(str(_corpus(tmp_path, article)))
    one = generate.fingerprint_inputs(generate_cfg([str(tmp_path)]), source)
    two = generate.fingerprint_inputs(generate_cfg([str(tmp_path)], num_shards=2), source)
    assert "part_assignment" not in one and two == {**one, "part_assignment": "ranges"}


def test_a_part_with_no_rows_under_max_samples_is_no_error(
    tmp_path: Path, article: Callable[..., dict[str, Any]], generate_cfg: Callable[..., GenerateConfig]
) -> None:
    corpus = _corpus(tmp_path, article)
    events: list[object] = []
    cfg = generate_cfg([str(corpus)], num_shards=2, shard_index=1, max_samples=3, splits=["train"])
    report = generate.run(cfg, events.append).datasets[0]  # rows 0-2 all lie in part 0's range
    assert report.splits["train"].rows == 0
    assert any("part 1 of 2 holds none of the first 3 rows" in str(event) for event in events)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "train.jsonl").write_text("")
    for parts in (1, 2):  # an empty source stays an error, on one machine or several
        with pytest.raises(DatasetError, match="holds no rows"):
            generate.run(generate_cfg([str(tmp_path / "empty")], num_shards=parts))


def test_a_folder_whose_parts_were_dealt_round_robin_is_refused_with_the_reason(
    tmp_path: Path, article: Callable[..., dict[str, Any]], generate_cfg: Callable[..., GenerateConfig]
) -> None:
    corpus = _corpus(tmp_path, article)
    cfg = generate_cfg([str(corpus)], num_shards=2, shard_index=0, rows_per_shard=4, splits=["train"])
    generate.run(cfg)
    folder = Path(cfg.out or "") / "corpus"
    # Make it what an older deepsynth wrote: the same shards, under the fingerprint without `part_assignment`.
    inputs = generate.fingerprint_inputs(cfg, open_source(str(corpus)))
    old_inputs = {key: value for key, value in inputs.items() if key != "part_assignment"}
    old = rendered.fingerprint(old_inputs)
    for name, meta in shards.scan(folder).items():
        rows = pq.read_table(folder / shards.DATA_DIR / name).to_pylist()
        writer = shards.ShardWriter(folder, name)
        for row in rows:
            writer.add(row)
        writer.commit(dataclasses.replace(meta, fingerprint=old))
    manifest = json.loads((folder / "manifest.json").read_text())
    rendered.write_dataset_files(folder, {**manifest, "fingerprint": old, "fingerprint_inputs": old_inputs})
    before = sorted((folder / "data").iterdir())

    with pytest.raises(OutputError) as refused:
        generate.run(cfg.model_copy(update={"shard_index": 1}))
    assert "part_assignment was (unset), now ranges" in refused.value.message
    assert "round-robin" in refused.value.hint
    assert sorted((folder / "data").iterdir()) == before, "refusing touches nothing"
