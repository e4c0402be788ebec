"""`generate` as real processes under SIGTERM and SIGKILL, and two runs on one output folder."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "deepsynth_cli"]
SMALL = ["--page-size", "256", "--font-size", "11"]


class Run:
    """One `deepsynth generate` process. Output goes to files, not pipes: an orphan would hold a pipe open."""

    def __init__(self, path: Path, out: Path, *extra: str) -> None:
        args = [*CLI, "generate", str(path), "--out", str(out), "--rows-per-shard", "20", *SMALL, *extra]
        self.log = out.parent / f"run-{time.monotonic_ns()}.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
        self.pid = self.process.pid

    def finish(self, timeout: float) -> tuple[int, str]:
        code = self.process.wait(timeout=timeout)
        return code, self.log.read_text()


@pytest.fixture
def seen() -> Iterator[list[psutil.Process]]:
    """Every child process a test looked at; any still running at the end is killed, pass or fail."""
    found: list[psutil.Process] = []
    yield found
    for child in found:
        with contextlib.suppress(psutil.Error):
            child.kill()


def _wait_for_shard(out: Path, run: Run) -> None:
    data = out / "corpus" / "data"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(data.glob("train-*.parquet")):
        assert run.process.poll() is None, run.log.read_text()
        time.sleep(0.05)
    assert list(data.glob("train-*.parquet")), "no shard was written in time"


def _descendants(run: Run, count: int, seen: list[psutil.Process]) -> list[psutil.Process]:
    """The run's workers, fork server and resource tracker (at least `count` of them), once they exist."""
    parent = psutil.Process(run.pid)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = parent.children(recursive=True)
        if len(children) >= count:
            seen.extend(children)
            return children
        time.sleep(0.05)
    raise AssertionError(f"expected {count} child processes, saw {parent.children(recursive=True)}")


def _left_alive(processes: list[psutil.Process], within_s: float) -> list[psutil.Process]:
    deadline = time.monotonic() + within_s
    alive = processes
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.1)
    return alive


def _ids(folder: Path) -> Counter[str]:
    return Counter(
        row["source_id"]
        for path in (folder / "data").glob("*.parquet")
        for row in pq.read_table(path, columns=["source_id"]).to_pylist()
    )


def test_sigterm_stops_like_ctrl_c_leaves_no_process_and_the_run_resumes(
    tmp_path: Path,
    make_jsonl: Callable[..., Path],
    article: Callable[..., dict[str, Any]],
    seen: list[psutil.Process],
) -> None:
    path = make_jsonl([article(n, words=150) for n in range(300)])
    out = tmp_path / "out"
    run = Run(path, out, "--num-workers", "2")
    _wait_for_shard(out, run)
    children = _descendants(run, 4, seen)  # 2 workers, the fork server, the resource tracker
    run.process.send_signal(signal.SIGTERM)
    code, stderr = run.finish(timeout=60)
    assert code == 130, stderr  # as for SIGINT, not 143
    assert "run the same command again to resume" in stderr and "Traceback" not in stderr
    assert _left_alive(children, within_s=5) == []
    kept = list((out / "corpus" / "data").glob("train-*.parquet"))
    assert kept and not list((out / "corpus" / "data").glob(".*")), "finished shards kept, no half-written one"

    code, stderr = Run(path, out, "--num-workers", "2").finish(timeout=300)
    assert code == 0, stderr
    assert _ids(out / "corpus") == Counter(f"doc-{n:05d}" for n in range(300))


def test_workers_die_with_a_killed_run(
    tmp_path: Path,
    make_jsonl: Callable[..., Path],
    article: Callable[..., dict[str, Any]],
    seen: list[psutil.Process],
) -> None:
    path = make_jsonl([article(n, words=150) for n in range(300)])
    out = tmp_path / "out"
    run = Run(path, out, "--num-workers", "2")
    _wait_for_shard(out, run)
    children = _descendants(run, 4, seen)
    run.process.send_signal(signal.SIGKILL)
    run.finish(timeout=30)
    left = _left_alive(children, within_s=5)
    assert left == [], f"still running after the run was killed: {[p.cmdline() for p in left]}"


def test_a_second_run_on_the_same_folder_is_refused_and_names_the_holder(
    tmp_path: Path, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    path = make_jsonl([article(n, words=150) for n in range(300)])
    out = tmp_path / "out"
    first = Run(path, out)
    try:
        _wait_for_shard(out, first)
        code, stderr = Run(path, out).finish(timeout=120)
        assert code == 1, stderr
        line = " ".join(stderr.split())
        assert f"is in use by another deepsynth run (pid {first.pid} on {socket.gethostname()}, started" in line
        assert "choose another --out" in line
    finally:
        first.process.send_signal(signal.SIGINT)
        code, stderr = first.finish(timeout=60)
    # 0 or -2: on a loaded machine the first run may finish before the interrupt, or get it while it exits.
    assert code in (130, 0, -signal.SIGINT), stderr

    # The lock went with the first run: the same command now finishes the job.
    code, stderr = Run(path, out).finish(timeout=300)
    assert code == 0, stderr
    assert _ids(out / "corpus") == Counter(f"doc-{n:05d}" for n in range(300))
