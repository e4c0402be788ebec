"""The loop's small helpers: the schedule, the data mixing and position, checkpoint files and pruning."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="needs the train extra", exc_type=ModuleNotFoundError)

import torch

from deepsynth_cli.data.store import resolve_dataset
from deepsynth_cli.errors import DatasetError, OutputError
from deepsynth_cli.settings import Settings
from deepsynth_cli.training import checkpoint as ckpt
from deepsynth_cli.training.data import DataPosition, TrainStream, eval_rows
from deepsynth_cli.training.optim import lr_factor


def test_warmup_then_cosine_to_the_floor() -> None:
    factors = [lr_factor(step, warmup_steps=4, max_steps=14, min_lr_ratio=0.1) for step in range(15)]
    assert factors[:4] == [0.2, 0.4, 0.6, 0.8]
    assert factors[4] == 1.0 and math.isclose(factors[9], 0.55) and math.isclose(factors[14], 0.1)
    assert all(a >= b for a, b in itertools.pairwise(factors[4:]))


def test_mixing_follows_the_weights_and_resumes_at_the_same_row(aclsum_data: Path) -> None:
    location = resolve_dataset(str(aclsum_data), Settings())
    stream = TrainStream(
        [location, location], Settings(), split="train", weights=[3, 1], streaming=True, seed=0, shuffle_buffer=8
    )
    first = [row["source_id"] for row in stream.next_rows(8)]
    taken = {name: position.taken for name, position in stream.position.streams.items()}
    assert list(taken.values()) == [6, 2]
    rest = [row["source_id"] for row in stream.next_rows(8)]  # crosses into the second epoch of the first
    assert stream.position.streams["0:aclsum"].epoch == 1

    replay = TrainStream(
        [location, location], Settings(), split="train", weights=[3, 1], streaming=True, seed=0, shuffle_buffer=8
    )
    assert [row["source_id"] for row in replay.next_rows(8)] == first
    saved = DataPosition.from_dict(replay.position.to_dict())
    resumed = TrainStream(
        [location, location], Settings(), split="train", weights=[3, 1], streaming=True, seed=0, shuffle_buffer=8,
        position=saved,
    )  # fmt: skip
    assert [row["source_id"] for row in resumed.next_rows(8)] == rest
    assert len(set(first[:6]) & set(rest)) > 0 and sorted(set(first)) != first  # epochs repeat, order shuffled


def test_eval_rows_are_the_first_rows_of_validation(aclsum_data: Path) -> None:
    location = resolve_dataset(str(aclsum_data), Settings())
    rows = eval_rows(location, "validation", Settings(), 3)
    assert len(rows) == 3 and {row["source_split"] for row in rows} == {"val"}
    with pytest.raises(DatasetError, match="no 'dev' split"):
        eval_rows(location, "dev", Settings(), 3)


def _fake_checkpoint(root: Path, step: int) -> Path:
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    return ckpt.save_checkpoint(
        root, step, save_weights=lambda folder: None, optimizer=optimizer, scheduler=scheduler, scaler=None,
        config={"a": 1}, state={"losses": [1.0]},
    )  # fmt: skip


def test_checkpoints_are_listed_pruned_and_checked(tmp_path: Path) -> None:
    for step in (2, 4, 6, 8):
        _fake_checkpoint(tmp_path, step)
    (tmp_path / ".step-000010.partial").mkdir()  # a kill mid-save: not a checkpoint
    assert [path.name for path in ckpt.list_checkpoints(tmp_path)] == [f"step-00000{s}" for s in (2, 4, 6, 8)]
    deleted = ckpt.prune(tmp_path, keep=2, protect={tmp_path / "step-000002"})
    assert [path.name for path in deleted] == ["step-000004"]
    assert ckpt.latest_checkpoint(tmp_path) == tmp_path / "step-000008"
    assert ckpt.read_state(tmp_path / "step-000008")["step"] == 8
    with pytest.raises(OutputError, match="not a training checkpoint") as caught:
        ckpt.read_state(tmp_path)
    assert "step-NNNNNN" in caught.value.hint


def test_a_sharded_checkpoint_is_listed_but_not_resumed_as_a_ddp_one(tmp_path: Path) -> None:
    # An FSDP run writes optimizer.bin (accelerate's save_fsdp_optimizer) instead of optimizer.pt.
    fsdp = _fake_checkpoint(tmp_path, 2)
    (fsdp / ckpt.OPTIMIZER_FILE).rename(fsdp / ckpt.FSDP_OPTIMIZER_FILE)
    assert ckpt.list_checkpoints(tmp_path) == [fsdp] and ckpt.read_state(fsdp)["step"] == 2
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    with pytest.raises(OutputError, match=r"step-000002 holds the optimiser state of a FSDP \(optimizer.bin\) run; "
                       "this run is one process or DDP") as caught:  # fmt: skip
        ckpt.load_training_state(fsdp, optimizer, scheduler, None)
    assert "configs/accelerate/" in caught.value.hint
    ckpt.load_training_state(fsdp, None, scheduler, None)  # FSDP loads its optimiser itself; the rest loads


def test_rng_states_round_trip() -> None:
    state = ckpt.rng_state()
    first = torch.rand(3)
    ckpt.restore_rng(state)
    assert torch.equal(torch.rand(3), first)


def test_lora_targets_only_the_language_model() -> None:
    from deepsynth_cli.models.presets import load_model
    from deepsynth_cli.training.config import LoraSettings
    from deepsynth_cli.training.trainable import lora_targets

    model = load_model("tiny")[0]
    vision_q = [name for name, _ in model.named_modules() if name.startswith("model.vision_tower") and "q_proj" in name]
    assert vision_q, "the vision encoder has q_proj layers too: the reason for restricting by path"
    targets = lora_targets(model, LoraSettings())
    assert targets and all(name.startswith("model.language_model.") for name in targets)
    assert {name.rsplit(".", 1)[-1] for name in targets} >= {"q_proj", "k_proj", "v_proj", "o_proj"}
