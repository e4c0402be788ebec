"""`generate` on huge documents, measured in memory (the child's peak RSS), never in time: one far over the
per-document limit costs reading its line, one under a raised limit is laid out only as far as its pages go and
its source tokens are counted in pieces. Before both fixes a 5 MB one-paragraph document took 1.3 GB in all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "deepsynth_cli", "generate", "--num-workers", "1", "--store", "local", "--json"]
SMALL = ["--page-size", "256", "--font-size", "11", "--max-pages", "2"]
# What the big document may add to the peak RSS of the same run on ordinary documents (about 300 MiB). Measured on
# the 2-core build machine: 20 MiB for the 20 MB skipped one, 30 MiB for the 3 MB rendered one. Before the fixes
# (benchmarks/long_documents.py --before): +160 MiB for a 1 MB document, +1,022 MiB for a 5 MB one.
EXTRA_MIB = 150


def _write(path: Path, long_chars: int) -> Path:
    """Two ordinary rows and one of `long_chars` characters (one paragraph), written in pieces."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="ascii") as handle:
        for index in range(2):
            text = " ".join(f"word{(index * 13 + k) % 89}" for k in range(200))
            handle.write(json.dumps({"id": f"doc-{index}", "text": text, "summary": "a short summary"}) + "\n")
        handle.write('{"id": "long", "summary": "the summary of the long one", "text": "')
        piece = " ".join(f"w{k % 997}" for k in range(20_000)) + " "
        written = 0
        while written < long_chars:
            part = piece[: long_chars - written]
            handle.write(part)
            written += len(part)
        handle.write('"}\n')
    return path


def _generate(path: Path, out: Path, *extra: str) -> tuple[dict[str, Any], float]:
    """The CLI in a child process: its train split's report and that child's own peak RSS in MiB, from `wait4`
    (RUSAGE_CHILDREN would also hold every earlier child of this test session)."""
    out.mkdir(parents=True)
    with (out / "stdout").open("wb") as stdout, (out / "stderr").open("wb") as stderr:
        child = subprocess.Popen([*CLI, str(path), "--out", str(out), *SMALL, *extra], stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    assert child.returncode == 0, (out / "stderr").read_text()[-2000:]
    split = json.loads((out / "stdout").read_text())["datasets"][0]["splits"]["train"]
    return split, usage.ru_maxrss / 1024  # KiB on Linux


def test_a_huge_document_costs_reading_it_not_gigabytes(tmp_path: Path) -> None:
    _, baseline = _generate(_write(tmp_path / "small" / "train.jsonl", 50_000), tmp_path / "out-small")

    skipped, peak_skipped = _generate(_write(tmp_path / "huge" / "train.jsonl", 20_000_000), tmp_path / "out-huge")
    assert skipped["skipped"] == {"text_too_long": 1} and skipped["rows"] == 2
    assert peak_skipped - baseline < EXTRA_MIB, (baseline, peak_skipped)

    raised = ["--max-text-chars", "5000000"]
    path = _write(tmp_path / "long" / "train.jsonl", 3_000_000)
    rendered, peak_rendered = _generate(path, tmp_path / "out-long", *raised)
    assert rendered["rows"] == 3
    assert rendered["dropped_chars"] > 2_900_000 and rendered["source_tokens"] > 500_000  # the whole source counted
    assert peak_rendered - baseline < EXTRA_MIB, (baseline, peak_rendered)
