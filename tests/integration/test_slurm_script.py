"""`configs/slurm/generate.sbatch` as SLURM runs it: array tasks of one job, each its own part, at the same time
into one folder; a follow-up run of one index writes the manifest of every part."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).parents[2] / "configs" / "slurm" / "generate.sbatch"


def test_array_tasks_split_the_work_and_run_at_once_into_one_folder(
    tmp_path: Path, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    path = make_jsonl([article(n) for n in range(30)])
    shim = tmp_path / "bin" / "deepsynth"  # the installed entry point, whatever this interpreter is
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m deepsynth_cli "$@"\n')
    shim.chmod(0o755)
    out = tmp_path / "out"
    args = ["bash", str(SCRIPT), str(path), "--out", str(out), "--rows-per-shard", "4", "--page-size", "256"]
    env = {**os.environ, "PATH": f"{shim.parent}:{os.environ['PATH']}", "SLURM_ARRAY_TASK_COUNT": "3"}
    tasks = [
        subprocess.Popen(args, env={**env, "SLURM_ARRAY_TASK_ID": str(index)}, stderr=subprocess.PIPE, text=True)
        for index in range(3)
    ]
    for task in tasks:
        _, stderr = task.communicate(timeout=300)
        assert task.returncode == 0, stderr

    folder = out / "corpus"
    ids = Counter(
        row["source_id"]
        for shard in (folder / "data").glob("*.parquet")
        for row in pq.read_table(shard, columns=["source_id"]).to_pylist()
    )
    assert ids == Counter(f"doc-{n:05d}" for n in range(30))
    assert {shard.name.split("-")[1] for shard in (folder / "data").glob("*.parquet")} == {"00000", "00001", "00002"}

    follow_up = {**env, "SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "1", "DEEPSYNTH_PARTS": "3"}
    done = subprocess.run(args, env=follow_up, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "already complete" in done.stderr
    assert json.loads((folder / "manifest.json").read_text())["splits"]["train"]["rows"] == 30
