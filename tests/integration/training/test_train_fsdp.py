"""`deepsynth train` under FSDP2 with 2 real processes on CPU (gloo), launched with the shipped
`configs/accelerate/fsdp.yaml`: checkpoints gather the sharded weights and optimiser state, a SIGKILLed run resumes
step for step, and the final model is plain weights that `from_pretrained` loads.

accelerate turns FSDP into plain multi-CPU DDP when it finds no GPU (`AcceleratorState` only enables FSDP for GPU
kinds), so the processes start through `_FSDP_ON_CPU`, which switches the state back to FSDP right after
`Accelerator()` is built. Everything after that (wrapping with fully_shard, gathering, saving, loading) is
accelerate's and torch's real FSDP2 code. Slower (process start-up, imports): marked integration.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("accelerate", reason="needs the train extra", exc_type=ModuleNotFoundError)

import torch
from safetensors.torch import load_file

from tests.unit.training.conftest import render

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="finds the worker processes in /proc (Linux)"),
]

FSDP_CONFIG = Path(__file__).resolve().parents[3] / "configs" / "accelerate" / "fsdp.yaml"

_FSDP_ON_CPU = """
import runpy, sys
import torch
from accelerate import Accelerator
from accelerate.state import PartialState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

_init = Accelerator.__init__


def _init_fsdp_on_cpu(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    if self.state.distributed_type == DistributedType.MULTI_CPU:
        self.state.fsdp_plugin = FullyShardedDataParallelPlugin()  # from the launcher's FSDP_* environment
        # FSDP wants the CPU device without an index; PartialState keeps its own copy of both.
        for state in (self.state, PartialState()):
            state.distributed_type, state.device = DistributedType.FSDP, torch.device("cpu")


Accelerator.__init__ = _init_fsdp_on_cpu
sys.argv[0] = "deepsynth"
runpy.run_module("deepsynth_cli", run_name="__main__", alter_sys=True)
"""


@pytest.fixture(scope="module")
def aclsum_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(["aclsum"], tmp_path_factory.mktemp("aclsum"), max_samples=6, splits=["train"])


@pytest.fixture(scope="module")
def launch(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """`accelerate launch` with the shipped fsdp.yaml, on 2 CPU processes."""
    folder = tmp_path_factory.mktemp("fsdp")
    config = yaml.safe_load(FSDP_CONFIG.read_text(encoding="utf-8"))
    config.update(num_processes=2, use_cpu=True)
    config.pop("gpu_ids")
    (folder / "fsdp-cpu.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (folder / "fsdp_on_cpu.py").write_text(_FSDP_ON_CPU, encoding="utf-8")
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(folder / "fsdp-cpu.yaml")]
    return [*launcher, str(folder / "fsdp_on_cpu.py")]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "ACCELERATE_USE_CPU": "1"}


def _train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train", "--datasets", str(data), "--model", "tiny", "--output-dir", str(out), "--max-steps", "10",
        "--save-every", "2", "--json", *extra,
    ]  # fmt: skip


def _descendants(pid: int) -> list[int]:
    # torch's elastic agent starts each worker in a session of its own: killing the launcher's group misses them.
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def _run(command: list[str]) -> dict[str, object]:
    done = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = done.stdout.strip().splitlines()  # process 0 alone prints the summary
    payload: dict[str, object] = json.loads(line)
    return payload


def test_fsdp_checkpoints_are_whole_and_resume_matches_an_uninterrupted_run(
    aclsum_folder: Path, launch: list[str], tmp_path: Path
) -> None:
    whole_dir = tmp_path / "whole"
    whole = _run([*launch, *_train_args(aclsum_folder, whole_dir)])
    assert whole["processes"] == 2 and whole["steps"] == 10

    # The checkpoint holds the whole model and the whole optimiser state, not process 0's shard of them.
    from transformers import AutoModelForImageTextToText

    final = AutoModelForImageTextToText.from_pretrained(whole_dir)
    shapes = {name: tuple(param.shape) for name, param in final.named_parameters()}
    trainable = {name for name in shapes if not name.startswith("model.vision_tower.")}
    step = Path(str(whole["checkpoints"][-1]))  # type: ignore[index]
    for folder in (whole_dir, step):  # every element of every weight (a shard would hold about half)
        assert sum(tensor.numel() for tensor in load_file(folder / "model.safetensors").values()) == sum(
            param.numel() for param in final.parameters()
        )
    AutoModelForImageTextToText.from_pretrained(step)  # loads: no shard-shaped tensor in it
    assert not (step / "optimizer.pt").exists()
    optimizer = torch.load(step / "optimizer.bin", weights_only=True)
    moments = {name: state["exp_avg"] for name, state in optimizer["state"].items()}
    assert set(moments) == trainable  # every trained parameter (vision tower frozen), keyed by name
    assert all(tuple(moment.shape) == shapes[name] for name, moment in moments.items())
    assert all(float(moment.abs().sum()) > 0 for moment in moments.values())
    # One process cannot take that optimiser state: refused with the reason, not resumed off the trajectory.
    single = [sys.executable, "-m", "deepsynth_cli", *_train_args(aclsum_folder, tmp_path / "one")]
    done = subprocess.run(
        [*single, "--resume-from", str(step)], capture_output=True, text=True, env=_env(), timeout=300
    )
    assert done.returncode == 1 and "holds the optimiser state of a FSDP (optimizer.bin) run" in done.stderr

    cut = tmp_path / "cut"
    process = subprocess.Popen(
        [*launch, *_train_args(aclsum_folder, cut)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env()
    )
    deadline = time.monotonic() + 240
    try:
        while not (cut / "step-000004" / "trainer_state.json").is_file():
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        for pid in [*_descendants(process.pid), process.pid]:  # both training processes, then the launcher
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait()
    assert not (cut / "model.safetensors").exists()

    resumed = _run([*launch, *_train_args(aclsum_folder, cut, "--resume")])
    assert 4 <= int(str(resumed["start_step"])) < 10, resumed["start_step"]  # some steps run again
    assert resumed["losses"] == pytest.approx(whole["losses"], rel=1e-5)

    # The final model: plain weights gathered from the shards, loadable without FSDP, equal to the uninterrupted run's.
    again = load_file(cut / "model.safetensors")
    reference = load_file(whole_dir / "model.safetensors")
    assert set(again) == set(reference)
    assert all(torch.allclose(again[name], reference[name], rtol=1e-4, atol=1e-6) for name in reference)


def test_lora_under_fsdp_saves_the_adapter_and_merges_the_final_model_as_ddp_does(
    aclsum_folder: Path, launch: list[str], tmp_path: Path
) -> None:
    ddp_launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "deepsynth_cli",
    ]  # fmt: skip
    lora = ("--lora", "--max-steps", "2")  # the later --max-steps wins
    fsdp = _run([*launch, *_train_args(aclsum_folder, tmp_path / "fsdp", *lora)])
    ddp = _run([*ddp_launch, *_train_args(aclsum_folder, tmp_path / "ddp", *lora)])
    assert fsdp["losses"] == pytest.approx(ddp["losses"], rel=1e-5)
    for name in ("step-000002/adapter_model.safetensors", "model.safetensors"):  # the adapter; merged plain weights
        sharded, reference = load_file(tmp_path / "fsdp" / name), load_file(tmp_path / "ddp" / name)
        assert set(sharded) == set(reference)
        assert all(torch.allclose(sharded[key], reference[key], rtol=1e-4, atol=1e-6) for key in reference)
    assert not any("lora" in key for key in load_file(tmp_path / "fsdp" / "model.safetensors"))
