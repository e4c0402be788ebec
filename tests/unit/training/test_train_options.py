"""Training options on the tiny preset, on CPU: bf16 mixed precision, activation checkpointing, torch.compile,
experiment trackers, and a resume whose settings differ from the checkpoint's."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

pytest.importorskip("accelerate", reason="needs the train extra", exc_type=ModuleNotFoundError)

from deepsynth_cli.errors import ConfigError
from deepsynth_cli.services import train
from deepsynth_cli.training.events import Notice, Started
from deepsynth_cli.training.loop import _load
from tests.unit.training.test_train import Recorder, tiny_cfg

TWO_STEPS = {"optim.max_steps": 2, "checkpoint.every": 100}


def test_bf16_mixed_precision_trains_on_cpu(aclsum_data: Path, tmp_path: Path) -> None:
    events = Recorder()
    bf16 = train.run(tiny_cfg(aclsum_data, tmp_path / "bf16", precision="bf16", **TWO_STEPS), events)
    fp32 = train.run(tiny_cfg(aclsum_data, tmp_path / "fp32", **TWO_STEPS))

    assert events.of(Started)[0].precision == "bf16"
    assert len(bf16.losses) == 2 and all(math.isfinite(loss) and loss > 0 for loss in bf16.losses)
    # Autocast really computed in bf16: close to the float32 losses (same weights, same rows), but not equal.
    assert bf16.losses == pytest.approx(fp32.losses, rel=2e-2) and bf16.losses != fp32.losses


def test_activation_checkpointing_is_on_and_changes_no_loss(aclsum_data: Path, tmp_path: Path) -> None:
    cfg = tiny_cfg(aclsum_data, tmp_path / "ckpt", activation_checkpointing=True, **TWO_STEPS)
    model, _, _ = _load(cfg, None)
    assert getattr(model, "is_activation_checkpointing", False) or model.is_gradient_checkpointing  # <5.24: old name

    recomputed = train.run(cfg)
    stored = train.run(tiny_cfg(aclsum_data, tmp_path / "plain", **TWO_STEPS))
    # The same arithmetic, recomputed in backward: the first loss equal, the second (after one update) too.
    assert recomputed.losses == pytest.approx(stored.losses, rel=1e-5)


def test_compile_flag_compiles_the_model(aclsum_data: Path, tmp_path: Path) -> None:
    # Only the wiring: a cold inductor compile of the tiny model takes ~150 s on a 2-core CPU (7 s warm), too slow
    # for this tier. A compiled run's losses equal an eager run's (checked by hand: 7.6448, 7.6169, 7.6644).
    model, _, _ = _load(tiny_cfg(aclsum_data, tmp_path / "c", compile=True), None)
    assert model._compiled_call_impl is not None
    eager, _, _ = _load(tiny_cfg(aclsum_data, tmp_path / "e"), None)
    assert eager._compiled_call_impl is None


def test_tensorboard_tracker_writes_the_losses(aclsum_data: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard", reason="the dev extra installs tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    overrides = {**TWO_STEPS, "eval.enabled": True, "eval.every": 2, "eval.rows": 2, "eval.generate_rows": 0}
    report = train.run(tiny_cfg(aclsum_data, tmp_path / "run", report_to=["tensorboard"], **overrides))

    (events_file,) = (tmp_path / "run" / "logs" / "deepsynth-train").glob("events.out.tfevents.*")
    log = EventAccumulator(str(events_file))
    log.Reload()
    losses = log.Scalars("train/loss")
    assert [event.step for event in losses] == [1, 2]
    assert [event.value for event in losses] == pytest.approx(report.losses, rel=1e-6)
    assert [event.step for event in log.Scalars("eval/loss")] == [2]
    assert {"train/lr", "train/samples_per_s", "train/grad_norm"} <= set(log.Tags()["scalars"])


def test_resume_with_other_settings_warns_and_with_other_data_fails(
    aclsum_data: Path, words_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    train.run(tiny_cfg(aclsum_data, out, **{"optim.max_steps": 2, "checkpoint.every": 2}))

    events = Recorder()
    longer = {"optim.max_steps": 3, "checkpoint.every": 2, "optim.batch_size": 1, "optim.lr": 5e-4}
    report = train.run(tiny_cfg(aclsum_data, out, resume=True, **longer), events)
    assert report.start_step == 2 and report.steps == 3
    (notice,) = [event.message for event in events.of(Notice) if "differ" in event.message]
    assert "optim.batch_size 2 -> 1" in notice and "optim.lr 0.001 -> 0.0005" in notice
    assert "max_steps" not in notice  # training longer is what a resume is for

    with pytest.raises(ConfigError, match="trained on 0:aclsum, not 0:words") as caught:
        train.run(tiny_cfg(words_data, out, resume=True, **{"optim.max_steps": 4}))
    assert "train_config.json" in caught.value.hint

    with pytest.raises(ConfigError, match="trained without LoRA; this run asks with"):
        train.run(tiny_cfg(aclsum_data, out, resume=True, lora={}, **{"optim.max_steps": 4}))
