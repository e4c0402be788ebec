"""`deepsynth eval` on a Hub dataset and a local one at once (the loopback Hub, the real `datasets` client)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("accelerate", reason="needs the train extra", exc_type=ModuleNotFoundError)

import pyarrow.parquet as pq
from typer.testing import CliRunner

from deepsynth_cli.cli.app import app
from deepsynth_cli.config import GenerateConfig, RenderConfig
from deepsynth_cli.data.shards import ROW_GROUP_ROWS
from deepsynth_cli.evaluation.rows import sample_indices
from deepsynth_cli.services import generate
from tests.support.hub_fixture import HubEnv
from tests.unit.evaluation.conftest import news_rows

pytestmark = pytest.mark.hub

FOOTER_READ = 64 * 1024  # what pyarrow reads from a file's end to find its footer
RENDER = RenderConfig(page_size=384, font_size=12, margin=12, max_pages=1)
SMALL = RenderConfig(page_size=128, font_size=8, margin=4, max_pages=1)


def test_a_hub_dataset_and_a_local_one_are_scored_side_by_side(
    hub_env: HubEnv,
    tmp_path: Path,
    make_jsonl: Callable[..., Path],
    article: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_USERNAME", hub_env.server.user)
    make_jsonl([article(i, 40) for i in range(3)], "remote/test.jsonl")
    hub_env.publish(tmp_path / "remote", RENDER)
    make_jsonl([article(i, 40) for i in range(10, 12)], "local/test.jsonl")
    generate.run(
        GenerateConfig(
            datasets=[str(tmp_path / "local")], out=tmp_path / "data", num_workers=1, render=RENDER, store="local"
        ),
        lambda event: None,
    )
    remote = f"hf://datasets/{hub_env.server.user}/deepsynth-remote"
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["eval", "--model", "tiny", "--datasets", remote, str(tmp_path / "data" / "local"), "--max-new-tokens", "4",
         "--language", "en", "--output", str(out), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert [(group["dataset"], group["rows"]) for group in metrics["groups"]] == [("deepsynth-remote", 3), ("local", 2)]
    assert metrics["datasets"]["deepsynth-remote"]["location"] == remote
    assert all(group["baselines"]["lead-3"]["rouge"]["rouge1"]["f1"]["mean"] > 0 for group in metrics["groups"])
    assert metrics["totals"]["errors"] == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count('<img src="data:image/jpeg;base64,') == 5  # pages decoded by `datasets` (PIL) and by pyarrow


def _served(hub_env: HubEnv) -> dict[str, list[tuple[int, int]]]:
    """Per shard file name, the byte ranges [start, end) the Hub served for it (a GET without Range counts as whole)."""
    served: dict[str, list[tuple[int, int]]] = {}
    for request in hub_env.server.requests_to("GET", r"/resolve/[^/]+/data/"):
        match = re.fullmatch(r"bytes=(\d+)-(\d+)", request.headers.get("range", ""))
        span = (int(match[1]), int(match[2]) + 1) if match else (0, 2**62)
        served.setdefault(request.path.rsplit("/", 1)[1], []).append(span)
    return served


def _union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for first, last in sorted(spans):
        if merged and first <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def _covered(spans: list[tuple[int, int]], start: int = 0, end: int = 2**62) -> int:
    """How many bytes of [start, end) the spans cover."""
    return sum(max(0, min(last, end) - max(first, start)) for first, last in _union(spans))


def _group_spans(shard: Path) -> list[tuple[int, int]]:
    """[start, end) in the file of each row group (all its column chunks)."""
    meta = pq.read_metadata(shard)
    spans = []
    for group in range(meta.num_row_groups):
        columns = [meta.row_group(group).column(i) for i in range(meta.num_columns)]
        starts = [min(c.data_page_offset, c.dictionary_page_offset or c.data_page_offset) for c in columns]
        spans.append((min(starts), max(s + c.total_compressed_size for s, c in zip(starts, columns, strict=True))))
    return spans


def _pages_chunks(shard: Path) -> list[tuple[int, int]]:
    """[start, end) in the file of the `pages` column chunk (its leaf columns) of each row group."""
    meta = pq.read_metadata(shard)
    chunks = []
    for group in range(meta.num_row_groups):
        columns = [meta.row_group(group).column(i) for i in range(meta.num_columns)]
        leaves = [column for column in columns if column.path_in_schema.startswith("pages.")]
        starts = [min(c.data_page_offset, c.dictionary_page_offset or c.data_page_offset) for c in leaves]
        chunks.append((min(starts), max(s + c.total_compressed_size for s, c in zip(starts, leaves, strict=True))))
    return chunks


def test_a_sample_of_a_hub_split_reads_only_its_row_groups_and_scores_like_the_local_copy(
    hub_env: HubEnv, tmp_path: Path
) -> None:
    # 300 rows in 3 shards of 100 rows, each in row groups of ROW_GROUP_ROWS, on the loopback Hub and kept locally.
    corpus = tmp_path / "news"
    corpus.mkdir()
    (corpus / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in news_rows(300)), encoding="utf-8")
    repo = f"{hub_env.server.user}/news"
    hub_env.publish(corpus, SMALL, out=tmp_path / "out", repo_id=repo, language="en", rows_per_shard=100)
    local = tmp_path / "out" / "news"
    shards = sorted((local / "data").glob("test-*.parquet"))
    assert len(shards) == 3 and all(
        pq.read_metadata(shard).num_row_groups == -(-100 // ROW_GROUP_ROWS) for shard in shards
    )
    common = ["eval", "--model", "tiny", "--max-samples", "3", "--max-new-tokens", "4", "--json"]
    hub_env.server.requests.clear()
    remote = CliRunner().invoke(app, [*common, "--datasets", f"hf://datasets/{repo}", "--output", str(tmp_path / "r")])
    assert remote.exit_code == 0, remote.stderr
    served = _served(hub_env)
    mine = CliRunner().invoke(app, [*common, "--datasets", str(local), "--output", str(tmp_path / "l")])
    assert mine.exit_code == 0, mine.stderr

    # The same rows, pages, predictions and scores as from the local folder.
    lines = [(tmp_path / out / "predictions.jsonl").read_text(encoding="utf-8") for out in ("r", "l")]
    assert lines[0] == lines[1] and len(lines[0].splitlines()) == 3
    remote_metrics, local_metrics = json.loads(remote.stdout), json.loads(mine.stdout)
    assert remote_metrics["groups"] == local_metrics["groups"]
    assert remote_metrics["datasets"]["news"]["rows_in_split"] == local_metrics["datasets"]["news"]["rows_in_split"]
    assert remote_metrics["generation"]["pages"] == 3

    # Only range reads; a shard with no sampled row is never opened; of the others, the pages of exactly the row
    # groups that hold sampled rows are read in full, those of the other row groups are not.
    assert all(r.headers.get("range", "").startswith("bytes=") for r in hub_env.server.requests_to("GET", "/data/"))
    needed = {(index // 100, index % 100 // ROW_GROUP_ROWS) for index in sample_indices(300, 3, 0)}
    assert {shard for shard, _ in needed} != {0, 1, 2}  # the seeded sample leaves a shard out (the test's premise)
    assert set(served) == {shards[shard].name for shard, _ in needed}
    for shard, path in enumerate(shards):
        for group, (start, end) in enumerate(_pages_chunks(path)):
            covered = _covered(served.get(path.name, []), start, end)
            assert (covered == end - start) == ((shard, group) in needed), (path.name, group, covered, end - start)
    # Nothing else: every byte served lies in a needed row group or in the footer (pyarrow reads 64 KiB for it).
    for shard, path in enumerate(shards):
        size = path.stat().st_size
        footer = size - 8 - pq.read_metadata(path).serialized_size  # a footer longer than the first read is re-read
        allowed = [(max(0, min(size - FOOTER_READ, footer)), size)]
        allowed += [span for group, span in enumerate(_group_spans(path)) if (shard, group) in needed]
        spans = served.get(path.name, [])
        inside = sum(_covered(spans, start, end) for start, end in _union(allowed))
        assert _covered(spans) == inside, path.name


def test_a_hub_split_that_is_missing_or_miscounted_is_an_error_that_says_so(hub_env: HubEnv, tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    corpus = tmp_path / "news"
    corpus.mkdir()
    (corpus / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in news_rows(3)), encoding="utf-8")
    repo = f"{hub_env.server.user}/news"
    hub_env.publish(corpus, SMALL, repo_id=repo, language="en", rows_per_shard=2)
    common = ["eval", "--predictions", str(tmp_path / "p.jsonl"), "--datasets", f"hf://datasets/{repo}"]
    (tmp_path / "p.jsonl").write_text(json.dumps({"id": "doc-002", "prediction": "x"}) + "\n", encoding="utf-8")
    missing = CliRunner().invoke(app, [*common, "--split", "validation", "--output", str(tmp_path / "a")])
    assert missing.exit_code == 1 and "has no 'validation' split (it has: test)" in missing.stderr
    # The part file says the second shard holds 2 rows, it holds 1: positions past it would be wrong rows.
    [part] = [path for path in hub_env.server.list_files(repo) if path.startswith("deepsynth/")]
    declared = json.loads(hub_env.server.read_file(repo, part))
    declared["shards"]["test-00000-of-00001-00001.parquet"]["rows"] = 2
    HfApi(token=hub_env.token).upload_file(
        path_or_fileobj=json.dumps(declared).encode(), path_in_repo=part, repo_id=repo, repo_type="dataset"
    )
    miscounted = CliRunner().invoke(app, [*common, "--output", str(tmp_path / "b")])
    assert miscounted.exit_code == 1
    assert "test-00000-of-00001-00001.parquet holds 1 rows, its part file says 2" in miscounted.stderr


def test_a_hub_dataset_is_read_at_the_commit_it_was_listed_at(hub_env: HubEnv, tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    from deepsynth_cli.data.hub_read import list_hub_dataset
    from deepsynth_cli.data.store import resolve_dataset
    from deepsynth_cli.settings import Settings

    corpus = tmp_path / "news"
    corpus.mkdir()
    (corpus / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in news_rows(3)), encoding="utf-8")
    repo = f"{hub_env.server.user}/news"
    hub_env.publish(corpus, SMALL, repo_id=repo, language="en", rows_per_shard=2)
    settings = Settings()
    listed = list_hub_dataset(resolve_dataset(f"hf://datasets/{repo}", settings), settings)
    shards = listed.shards()["test"]
    assert listed.declared == {"test-00000-of-00001-00000.parquet": 2, "test-00000-of-00001-00001.parquet": 1}
    # A push after the listing (here: the last shard deleted) does not change what the job reads.
    HfApi(token=hub_env.token).delete_file(shards[1], repo, repo_type="dataset")
    rows = listed.open_shard(shards[1]).read(columns=["source_id"]).column("source_id").to_pylist()
    assert rows == ["doc-002"]
