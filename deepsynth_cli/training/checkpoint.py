"""Checkpoints that describe themselves: `step-000200/` under the output folder.

    step-000200/
      model.safetensors, config.json, generation_config.json   weights (save_model), or adapter_* with LoRA
      processor_config.json, tokenizer.json, ...               the processor, tokenizer included
      deepsynth_preset.json                                    image size, instruction, tiles
      optimizer.pt  scheduler.pt  rng_state.pt                 optimiser, schedule, python/numpy/torch RNG
      train_config.json                                        the resolved TrainConfig of the run
      trainer_state.json                                       step, data position, losses, evaluations, best

A checkpoint is written to a hidden `.step-000200.partial/` and renamed when complete, so a kill mid-save leaves
no folder that looks finished; `trainer_state.json` is what marks a checkpoint.
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
FORMAT_VERSION = 1
_NAME = re.compile(r"^step-(\d{6,})$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def is_checkpoint(folder: Path) -> bool:
    return folder.is_dir() and (folder / STATE_FILE).is_file() and (folder / OPTIMIZER_FILE).is_file()


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
    final = root / checkpoint_name(step)
    partial = root / f".{final.name}.partial"
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    save_weights(partial)
    torch.save(optimizer.state_dict(), partial / OPTIMIZER_FILE)
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
    """Optimiser, schedule, loss scaler and RNG as they were when `folder` was saved."""
    # weights_only=False: the RNG states hold numpy arrays and Python tuples. These are our own files.
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
