"""`benchmarks/gpu_kit.py` with the tiny preset on a CPU: every phase runs and says what it measured, so the
script a GPU session runs once cannot rot unnoticed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("accelerate", reason="needs the train extra", exc_type=ModuleNotFoundError)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

KIT = Path(__file__).resolve().parents[3] / "benchmarks" / "gpu_kit.py"


def test_every_phase_of_the_kit_runs_on_a_cpu_with_the_tiny_preset() -> None:
    command = [sys.executable, str(KIT), "--preset", "tiny", "--device", "cpu", "--steps", "2", "--warmup", "1"]
    command += ["--rows", "3", "--generate-docs", "2", "--new-tokens", "4", "--budget-s", "420"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=540, env=os.environ.copy())
    assert done.returncode == 0, done.stderr[-3000:]
    kit = json.loads(done.stdout.strip().splitlines()[-1])  # the one JSON line
    phases = ("geometry", "mixed", "pure", "ours", "trainer", "generation", "full_decoder", "lora")
    for phase in phases:
        assert "error" not in kit[phase] and "skipped" not in kit[phase], (phase, kit[phase])
    assert kit["geometry"]["agree"] and [c["pages"] for c in kit["geometry"]["checks"]] == [1, 2]
    # fp32 master weights keep far more of a step's updates than bf16 weights do (issue 12, point 1).
    assert kit["mixed"]["updated_share_step1"] > kit["pure"]["updated_share_step1"]
    assert kit["mixed"]["weights"] == "float32" and kit["pure"]["weights"] == "bfloat16"
    assert kit["ours"]["samples_per_s"] > 0 and kit["speedup_vs_trainer"] > 0
    assert kit["generation"]["compared"] == 2 and kit["generation"]["pages_each"] == [2, 2]
    assert kit["lora"]["trainable_params"] < kit["full_decoder"]["trainable_params"]
