"""Checkpoints that describe themselves: `step-000200/` under the output folder.

    step-000200/
      model.safetensors, config.json, generation_config.json   weights (save_model), or adapter_* with LoRA
      processor_config.json, tokenizer.json, ...               the processor, tokenizer included
      deepsynth_preset.json                                    image size, instruction, tiles
      optimizer.pt  scheduler.pt  rng_state.pt                 optimiser, schedule, python/numpy/torch RNG
                                                               (FSDP: optimizer.bin, or optimizer_0/ with a
                                                               sharded state dict; DeepSpeed: deepspeed/)
      train_config.json                                        the resolved TrainConfig of the run
      trainer_state.json                                       step, data position, losses, evaluations, best

A checkpoint is written to a hidden `.step-000200.partial/` and renamed when complete, so a kill mid-save leaves
no folder that looks finished; `trainer_state.json` is what marks a checkpoint.

Single process and DDP: every process holds the whole model and optimiser, and process 0 writes everything
(`save_checkpoint`). FSDP and DeepSpeed ZeRO shard the optimiser state (FSDP the weights too) over the processes:
`save_sharded_checkpoint` is then called by every process, gathers the full weights with
`accelerator.get_state_dict` and saves the optimiser state with accelerate's FSDP utilities (gathered into
`optimizer.bin`, or one `optimizer_0/` distributed checkpoint) or, under DeepSpeed, with `accelerator.save_state`
(the engine's checkpoint, one optimiser shard per process). The weights, processor and small files are the same
as under DDP, so the folder loads with `from_pretrained` whatever wrote it.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepsynth_cli.errors import OutputError

STATE_FILE = "trainer_state.json"
CONFIG_FILE = "train_config.json"
OPTIMIZER_FILE = "optimizer.pt"
SCHEDULER_FILE = "scheduler.pt"
RNG_FILE = "rng_state.pt"
SCALER_FILE = "scaler.pt"
FSDP_OPTIMIZER_FILE = "optimizer.bin"  # accelerate's save_fsdp_optimizer, FULL_STATE_DICT
FSDP_OPTIMIZER_DIR = "optimizer_0"  # the same, SHARDED_STATE_DICT (torch.distributed.checkpoint)
DEEPSPEED_DIR = "deepspeed"  # accelerator.save_state under DeepSpeed: the engine's checkpoint, ZeRO shards
FORMAT_VERSION = 1
_NAME = re.compile(r"^step-(\d{6,})$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def is_checkpoint(folder: Path) -> bool:
    if not (folder.is_dir() and (folder / STATE_FILE).is_file()):
        return False
    return (folder / OPTIMIZER_FILE).is_file() or any(
        (folder / name).exists() for name in (FSDP_OPTIMIZER_FILE, FSDP_OPTIMIZER_DIR, DEEPSPEED_DIR)
    )


def _optimizer_layout(folder: Path) -> str:
    if (folder / OPTIMIZER_FILE).is_file():
        return "one process or DDP (optimizer.pt)"
    if (folder / DEEPSPEED_DIR).exists():
        return f"DeepSpeed ({DEEPSPEED_DIR}/)"
    return f"FSDP ({FSDP_OPTIMIZER_FILE if (folder / FSDP_OPTIMIZER_FILE).exists() else FSDP_OPTIMIZER_DIR + '/'})"


def _layout_error(folder: Path, run: str) -> OutputError:
    return OutputError(
        f"{folder.name} holds the optimiser state of a {_optimizer_layout(folder)} run; this run is {run}",
        hint="resume with the accelerate config the run was started with (configs/accelerate/), or start a new "
        "--output-dir",
    )


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under `root`, oldest first."""
    if not root.is_dir():
        return []
    found = [(int(m[1]), path) for path in root.iterdir() if (m := _NAME.match(path.name)) and is_checkpoint(path)]
    return [path for _, path in sorted(found)]


def latest_checkpoint(root: Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _partial(root: Path, step: int) -> Path:
    return root / f".{checkpoint_name(step)}.partial"


def _start(root: Path, step: int) -> Path:
    partial = _partial(root, step)
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    return partial


def _finish(
    partial: Path, step: int, *, scheduler: Any, scaler: Any, config: dict[str, Any], state: dict[str, Any]
) -> Path:
    final = partial.parent / checkpoint_name(step)
    torch.save(scheduler.state_dict(), partial / SCHEDULER_FILE)
    torch.save(rng_state(), partial / RNG_FILE)
    if scaler is not None:
        torch.save(scaler.state_dict(), partial / SCALER_FILE)
    (partial / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    payload = {"format_version": FORMAT_VERSION, "step": step, **state}
    (partial / STATE_FILE).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    partial.rename(final)
    return final


def save_checkpoint(
    root: Path,
    step: int,
    *,
    save_weights: Callable[[Path], None],
    optimizer: Any,
    scheduler: Any,
    scaler: Any,
    config: dict[str, Any],
    state: dict[str, Any],
) -> Path:
    """Write `root/step-NNNNNN/` atomically (main process only) and return it."""
    partial = _start(root, step)
    save_weights(partial)
    torch.save(optimizer.state_dict(), partial / OPTIMIZER_FILE)
    return _finish(partial, step, scheduler=scheduler, scaler=scaler, config=config, state=state)


def save_sharded_checkpoint(
    root: Path,
    step: int,
    *,
    accelerator: Any,
    model: Any,
    save_weights: Callable[[Path, dict[str, Any]], None],
    optimizer: Any,
    scheduler: Any,
    scaler: Any,
    config: dict[str, Any],
    state: dict[str, Any],
) -> Path:
    """Write `root/step-NNNNNN/` under FSDP or DeepSpeed: EVERY process calls this (it gathers and saves
    collectively). `save_weights(folder, full_state_dict)` is called on the main process only."""
    main = accelerator.is_main_process
    partial = _partial(root, step)
    if main:
        _start(root, step)
    accelerator.wait_for_everyone()  # the folder exists before any process writes into it
    weights = accelerator.get_state_dict(model)  # a collective: full on process 0 (FSDP gathers the shards)
    if main:
        save_weights(partial, weights)
    del weights
    _save_sharded_optimizer(accelerator, model, optimizer, partial)
    accelerator.wait_for_everyone()  # every shard is written before the folder is renamed
    if main:
        _finish(partial, step, scheduler=scheduler, scaler=scaler, config=config, state=state)
    accelerator.wait_for_everyone()
    return root / checkpoint_name(step)


def is_deepspeed(accelerator: Any) -> bool:
    from accelerate.utils import DistributedType

    return bool(accelerator.distributed_type == DistributedType.DEEPSPEED)


def is_sharded(accelerator: Any) -> bool:
    """FSDP or DeepSpeed: the optimiser state (and under FSDP the weights) is split over the processes."""
    from accelerate.utils import DistributedType

    return accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)


def _save_sharded_optimizer(accelerator: Any, model: Any, optimizer: Any, folder: Path) -> None:
    if is_deepspeed(accelerator):
        # The engine owns the ZeRO partitions: its checkpoint is the only complete record of them.
        accelerator.save_state(str(folder / DEEPSPEED_DIR))
    else:
        from accelerate.utils import save_fsdp_optimizer

        save_fsdp_optimizer(accelerator.state.fsdp_plugin, accelerator, optimizer, model, str(folder))


def load_sharded_optimizer(accelerator: Any, model: Any, optimizer: Any, folder: Path) -> None:
    """The optimiser state saved by `save_sharded_checkpoint`, each process taking its shard. Every process calls
    this. Under DeepSpeed the engine's checkpoint also restores the (identical) weights."""
    if is_deepspeed(accelerator):
        if not (folder / DEEPSPEED_DIR).is_dir():
            raise _layout_error(folder, "DeepSpeed")
        accelerator.load_state(str(folder / DEEPSPEED_DIR))
        return
    from accelerate.utils import load_fsdp_optimizer

    if not ((folder / FSDP_OPTIMIZER_FILE).is_file() or (folder / FSDP_OPTIMIZER_DIR).is_dir()):
        raise _layout_error(folder, "FSDP")
    load_fsdp_optimizer(accelerator.state.fsdp_plugin, accelerator, optimizer, model, str(folder))


def read_state(folder: Path) -> dict[str, Any]:
    """The state file of a checkpoint; an OutputError when `folder` is not one."""
    if not is_checkpoint(folder):
        present = sorted(path.name for path in folder.iterdir())[:8] if folder.is_dir() else []
        raise OutputError(
            f"{folder} is not a training checkpoint (no {STATE_FILE} and {OPTIMIZER_FILE}"
            + (f"; it holds {', '.join(present)})" if present else ")"),
            hint="give a step-NNNNNN folder written by `deepsynth train`, or use --resume with the run's --output-dir",
        )
    state: dict[str, Any] = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
    return state


def load_training_state(folder: Path, optimizer: Any, scheduler: Any, scaler: Any) -> None:
    """Optimiser, schedule, loss scaler and RNG as they were when `folder` was saved. `optimizer` None: already
    loaded by `load_sharded_optimizer` (FSDP, DeepSpeed)."""
    # weights_only=False: the RNG states hold numpy arrays and Python tuples. These are our own files.
    if optimizer is not None:
        if not (folder / OPTIMIZER_FILE).is_file():
            raise _layout_error(folder, "one process or DDP")
        optimizer.load_state_dict(torch.load(folder / OPTIMIZER_FILE, map_location="cpu", weights_only=False))
    scheduler.load_state_dict(torch.load(folder / SCHEDULER_FILE, weights_only=False))
    if scaler is not None and (folder / SCALER_FILE).is_file():
        scaler.load_state_dict(torch.load(folder / SCALER_FILE, weights_only=False))
    restore_rng(torch.load(folder / RNG_FILE, weights_only=False))


def prune(root: Path, keep: int, protect: set[Path]) -> list[Path]:
    """Delete all but the `keep` newest checkpoints, never one in `protect` (the best); returns the deleted."""
    found = list_checkpoints(root)
    deleted = []
    for path in found[: max(0, len(found) - keep)]:
        if path.resolve() in {item.resolve() for item in protect}:
            continue
        shutil.rmtree(path)
        deleted.append(path)
    return deleted


def write_run_config(folder: Path, config: dict[str, Any]) -> Path:
    """The resolved config beside the final model: how it was trained."""
    path = folder / CONFIG_FILE
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path
