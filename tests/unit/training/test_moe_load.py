"""The MoE router load: counted by hooks on the real DeepseekOcr2 routers, reported per logged step, changed by
the routing; the optional balance loss changes the training."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

pytest.importorskip("accelerate", reason="needs the train extra", exc_type=ModuleNotFoundError)

import torch

from deepsynth_cli.models.presets import build_tiny
from deepsynth_cli.services import train
from deepsynth_cli.training.events import StepDone
from deepsynth_cli.training.moe import RouterLoad
from tests.unit.training.test_train import Recorder, tiny_cfg


def _forward(model: torch.nn.Module) -> None:
    ids = torch.randint(4, 2000, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.model.language_model(input_ids=ids)  # type: ignore[operator, union-attr]


def test_the_load_figure_follows_the_routing() -> None:
    model, _ = build_tiny()
    load = RouterLoad(model)
    assert len(load.routers) == 1  # the tiny decoder: one dense layer, one sparse one (4 experts, top-2)
    _forward(model)
    spread = load.summary()
    assert spread is not None and 0.25 <= spread["moe_max_share"] <= 1.0 and 0 < spread["moe_entropy"] <= 1.0
    assert load.summary() is None  # read and reset

    router = load.routers[0]
    with torch.no_grad():  # all-zero router weights: every token scores the experts equally, topk takes the same two
        router.weight.zero_()
    _forward(model)
    collapsed = load.summary()
    assert collapsed is not None
    assert collapsed["moe_max_share"] == pytest.approx(0.5)  # two experts share every slot
    assert collapsed["moe_entropy"] == pytest.approx(math.log(2) / math.log(4))
    assert collapsed != spread
    with load.paused():
        _forward(model)
    assert load.summary() is None  # evaluation is not counted


def test_training_logs_the_load_and_the_balance_loss_changes_the_updates(aclsum_data: Path, tmp_path: Path) -> None:
    events = Recorder()
    overrides = {"optim.max_steps": 2, "checkpoint.every": 100}
    plain = train.run(tiny_cfg(aclsum_data, tmp_path / "plain", **overrides), events)
    logged = events.of(StepDone)
    assert len(logged) == 2 and all(0 < (event.moe_entropy or 0) <= 1 for event in logged)
    assert all(0.25 <= (event.moe_max_share or 0) <= 1 for event in logged)
    balanced = train.run(tiny_cfg(aclsum_data, tmp_path / "aux", **{**overrides, "optim.router_aux_loss_coef": 0.5}))
    assert balanced.losses[0] == pytest.approx(plain.losses[0], rel=1e-6)  # the LM loss is reported, not the sum
    assert balanced.losses[1] != pytest.approx(plain.losses[1], rel=1e-6)  # its gradient moved the router
