"""What precision really trains: one step at the real preset's lr (1e-5) moves most trainable elements with float32
master weights (plain or under bf16 autocast) and few with pure bf16 weights, whose updates round away."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("accelerate", reason="needs the train extra", exc_type=ModuleNotFoundError)

import torch
from safetensors.torch import load_file

from deepsynth_cli.models.presets import build_tiny
from deepsynth_cli.services import train
from deepsynth_cli.training.events import Notice, Started
from deepsynth_cli.training.precision import resolve_precision
from tests.unit.training.test_train import Recorder, tiny_cfg


def _moved_share(folder: Path, dtype: torch.dtype) -> float:
    """Share of the trainable elements (all but the frozen vision tower) that differ from the initial weights."""
    initial = build_tiny(seed=0)[0].state_dict()
    trained = load_file(str(folder / "model.safetensors"))
    moved = total = 0
    for name, after in trained.items():
        if "vision_tower" in name or name not in initial:
            continue
        before = initial[name].to(dtype)
        assert after.dtype == dtype, name
        moved += int((after != before).sum())
        total += after.numel()
    return moved / total


def test_one_step_moves_far_more_elements_with_float32_masters(aclsum_data: Path, tmp_path: Path) -> None:
    shares: dict[str, float] = {}
    for precision, dtype in (("no", torch.float32), ("bf16", torch.float32), ("bf16-pure", torch.bfloat16)):
        events = Recorder()
        cfg = tiny_cfg(
            aclsum_data, tmp_path / precision, precision=precision, **{"optim.lr": 1e-5, "optim.max_steps": 1}
        )
        report = train.run(cfg, events)
        assert report.final_model is not None
        shares[precision] = _moved_share(report.final_model, dtype)
        started = events.of(Started)[0]
        assert started.weights_dtype == {torch.float32: "float32", torch.bfloat16: "bfloat16"}[dtype]
        assert started.autocast == ("bf16" if precision == "bf16" else None)
        pure_notice = any("bf16-pure" in event.message for event in events.of(Notice))
        assert pure_notice == (precision == "bf16-pure")
    print(f"share of trainable elements moved by one step at lr 1e-5: {shares}")
    assert shares["no"] > 0.5 and shares["bf16"] > 0.5
    assert shares["bf16-pure"] < shares["bf16"] / 3


def test_auto_is_float32_on_cpu_and_pure_bf16_only_when_asked() -> None:
    cpu = torch.device("cpu")
    assert (resolve_precision("auto", cpu).mixed, resolve_precision("auto", cpu).weights) == ("no", "float32")
    assert resolve_precision("bf16", cpu).weights == "float32"
    assert resolve_precision("bf16-pure", cpu).weights == "bfloat16"
    assert resolve_precision("bf16-pure", cpu).autocast is None
