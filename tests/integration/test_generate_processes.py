"""`generate` as real processes: killed mid-run and resumed, and rendered by several workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from deepsynth_cli.config import GenerateConfig
from deepsynth_cli.services import generate

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "deepsynth_cli"]
SMALL = ["--page-size", "256", "--font-size", "11"]


def _ids(folder: Path) -> Counter[str]:
    return Counter(
        row["source_id"]
        for path in (folder / "data").glob("*.parquet")
        for row in pq.read_table(path, columns=["source_id"]).to_pylist()
    )


def test_kill_mid_run_then_rerun_gives_every_row_exactly_once(
    tmp_path: Path, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    path = make_jsonl([article(n, words=150) for n in range(400)])
    out = tmp_path / "out"
    args = [*CLI, "generate", str(path), "--out", str(out), "--rows-per-shard", "20", *SMALL]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    data = out / "corpus" / "data"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(data.glob("train-*.parquet"))) < 3:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished_before = len(list(data.glob("train-*.parquet")))
    assert 3 <= finished_before < 20, "the kill must land mid-run for this test to mean anything"

    rerun = subprocess.run([*args, "--json"], capture_output=True, text=True, check=True, env=os.environ.copy())
    report = json.loads(rerun.stdout)["datasets"][0]["splits"]["train"]
    assert report["shards_reused"] >= finished_before - 1  # the shard being renamed at the kill may be either
    assert report["rows"] == 400
    ids = _ids(out / "corpus")
    assert ids == Counter(f"doc-{n:05d}" for n in range(400)), "no duplicate and no missing row"
    assert not list(data.glob(".*")), "half-written files are gone"


def test_two_workers_write_the_same_shards_as_one(
    tmp_path: Path,
    make_jsonl: Callable[..., Path],
    article: Callable[..., dict[str, Any]],
    generate_cfg: Callable[..., GenerateConfig],
) -> None:
    path = make_jsonl([article(n, words=80) for n in range(40)])
    one = generate.run(generate_cfg([str(path)], out=tmp_path / "one", num_workers=1, rows_per_shard=16))
    two = generate.run(generate_cfg([str(path)], out=tmp_path / "two", num_workers=2, rows_per_shard=16))
    first, second = Path(one.datasets[0].location), Path(two.datasets[0].location)
    names = sorted(p.name for p in (first / "data").glob("*.parquet"))
    assert names == sorted(p.name for p in (second / "data").glob("*.parquet")) and len(names) == 3
    for name in names:
        assert pq.read_table(first / "data" / name).equals(pq.read_table(second / "data" / name))


def test_cli_interrupt_message_says_how_to_resume(
    tmp_path: Path, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    path = make_jsonl([article(n, words=150) for n in range(400)])
    out = tmp_path / "out"
    process = subprocess.Popen(
        [*CLI, "generate", str(path), "--out", str(out), "--rows-per-shard", "20", *SMALL],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    data = out / "corpus" / "data"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(data.glob("train-*.parquet")):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "run the same command again to resume" in stderr
    assert "Traceback" not in stderr
    assert list(data.glob("train-*.parquet")), "finished shards are kept"
    assert not list(data.glob(".*")), "the shard in progress is removed, not left half-written"
