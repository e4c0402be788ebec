"""`deepsynth train` as real processes: SIGKILL mid-run then --resume, and a 2-process `accelerate launch` (DDP
on CPU, gloo). Slower (process start-up, imports): marked integration."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("accelerate", reason="needs the train extra", exc_type=ModuleNotFoundError)

from tests.unit.training.conftest import render

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def aclsum_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(["aclsum"], tmp_path_factory.mktemp("aclsum"), max_samples=6, splits=["train"])


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _train_args(data: Path, out: Path, *extra: str, steps: int = 30, save_every: int = 4) -> list[str]:
    return [
        "train", "--datasets", str(data), "--model", "tiny", "--output-dir", str(out), "--max-steps", str(steps),
        "--save-every", str(save_every), "--json", *extra,
    ]  # fmt: skip


def _run(args: list[str]) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "deepsynth_cli", *args], capture_output=True, text=True, env=_env(), timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    payload: dict[str, object] = json.loads(done.stdout)
    return payload


def test_resume_after_sigkill_matches_an_uninterrupted_run(aclsum_folder: Path, tmp_path: Path) -> None:
    whole = _run(_train_args(aclsum_folder, tmp_path / "whole"))

    cut = tmp_path / "cut"
    process = subprocess.Popen(
        [sys.executable, "-m", "deepsynth_cli", *_train_args(aclsum_folder, cut)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
    )  # fmt: skip
    deadline = time.monotonic() + 240
    while not (cut / "step-000008" / "trainer_state.json").is_file():
        assert process.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (cut / "model.safetensors").exists()

    resumed = _run(_train_args(aclsum_folder, cut, "--resume"))
    assert int(str(resumed["start_step"])) >= 8
    assert resumed["losses"] == pytest.approx(whole["losses"], rel=1e-5)


def test_two_processes_with_accelerate_launch(aclsum_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "deepsynth_cli", *_train_args(aclsum_folder, out, steps=3, save_every=2),
    ]  # fmt: skip
    # ACCELERATE_USE_CPU: without a GPU, processes started by torchrun form a gloo group on the CPU.
    done = subprocess.run(
        command, capture_output=True, text=True, env={**_env(), "ACCELERATE_USE_CPU": "1"}, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = done.stdout.strip().splitlines()  # process 0 alone prints the summary
    payload = json.loads(line)
    assert payload["steps"] == 3 and payload["samples"] == 3 * 2 * 2  # tiny batch 2 on each of 2 processes
    assert (out / "step-000002" / "trainer_state.json").is_file() and (out / "model.safetensors").is_file()
    state = json.loads((out / "step-000002" / "trainer_state.json").read_text())
    assert state["processes"] == 2 and state["truncation"]["rows"] == 8


_OUT_OF_MEMORY = """
import json, resource, sys
from pathlib import Path
from typer.testing import CliRunner
from deepsynth_cli.cli.app import app

data, out = sys.argv[1], sys.argv[2]
base = ["train", "--datasets", data, "--model", "tiny", "--max-steps", "1", "--save-every", "100"]
runner = CliRunner()
warm = runner.invoke(app, [*base, "--output-dir", out + "-warm", "--batch-size", "1"])  # libraries, thread pools
assert warm.exit_code == 0, warm.output
size = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines() if "VmSize" in line)
# 256 MiB of address space more: 96 rows x 2 pages of 384 px are 340 MiB of pixels alone.
resource.setrlimit(resource.RLIMIT_AS, (size * 1024 + 256 * 2**20, resource.getrlimit(resource.RLIMIT_AS)[1]))
result = runner.invoke(app, [*base, "--output-dir", out, "--batch-size", "96"])
print(json.dumps({"exit_code": result.exit_code, "stderr": result.stderr}))
"""


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads VmSize from /proc (Linux)")
def test_running_out_of_host_memory_names_the_knob(aclsum_folder: Path, tmp_path: Path) -> None:
    # A real allocation failure: the process's address space is capped just above what a 1-row run needed.
    done = subprocess.run(
        [sys.executable, "-c", _OUT_OF_MEMORY, str(aclsum_folder), str(tmp_path / "run")],
        capture_output=True, text=True, env=_env(), timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["exit_code"] == 1, result["stderr"]
    assert "error: out of host memory (RAM) during training" in result["stderr"]
    assert "hint: lower --batch-size" in result["stderr"] and "Traceback" not in result["stderr"]
