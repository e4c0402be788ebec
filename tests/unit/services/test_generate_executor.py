"""The parts executor's seams that need no cluster: per-part locks, Ray not installed, ray with one part's index."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from deepsynth_cli import processes
from deepsynth_cli.cli.app import app
from deepsynth_cli.config import GenerateConfig
from deepsynth_cli.data import shards
from deepsynth_cli.errors import OutputError


def test_parts_of_one_folder_lock_apart_and_one_part_only_once(tmp_path: Path) -> None:
    held = processes.output_locks([tmp_path], 0, 3), processes.output_locks([tmp_path], 1, 3)
    with pytest.raises(OutputError) as refused, processes.output_lock(tmp_path, 1, 3):
        pass
    for lock in held:
        lock.close()
    assert "(part 1 of 3) is in use by another deepsynth run (pid " in refused.value.message
    with processes.output_lock(tmp_path, 1, 3):  # released with its holder
        pass
    assert processes.lock_file(0, 1) == processes.LOCK_FILE  # one part: the folder's lock, as before


def test_half_written_files_of_other_parts_are_left_alone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    mine = data / f".{shards.shard_name('train', 0, 2, 3)}.partial"
    theirs = data / f".{shards.shard_name('train', 1, 2, 3)}.partial"  # another part may be writing it now
    for path in (mine, theirs):
        path.write_bytes(b"half")
    assert shards.remove_partial_files(tmp_path, part=0) == 1
    assert not mine.exists() and theirs.exists()


def test_executor_ray_without_ray_installed_is_one_line(
    make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where it is not installed
    path = make_jsonl([article(n) for n in range(3)])
    result = CliRunner().invoke(app, ["generate", str(path), "--executor", "ray", "--page-size", "256"])
    assert result.exit_code == 2, result.output
    assert "--executor ray needs Ray, which is not installed" in result.output
    assert "pip install 'deepsynth[ray]'" in result.output and "Traceback" not in result.output
    assert not list(Path("out").glob("**/*.parquet"))


def test_ray_runs_every_part_so_a_shard_index_is_refused() -> None:
    with pytest.raises(ValueError, match="with executor ray every part runs"):
        GenerateConfig(executor="ray", num_shards=4, shard_index=2)
