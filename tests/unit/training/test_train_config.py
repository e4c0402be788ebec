"""TrainConfig: preset YAML < --config YAML < flags; strict keys; the test split is never evaluated on."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepsynth_cli.errors import ConfigError
from deepsynth_cli.models.preset_config import PRESETS
from deepsynth_cli.training.config import TrainConfig, load_train_config, preset_file


def test_the_model_preset_yaml_is_the_base(tmp_path: Path) -> None:
    cfg = load_train_config(None, {"model.model": "tiny", "data.datasets": ["aclsum"]})
    assert cfg.model == PRESETS["tiny"]
    assert (cfg.optim.lr, cfg.optim.batch_size, cfg.batching.max_target_tokens) == (1e-3, 2, 128)  # tiny.yaml

    real = load_train_config(None, {"data.datasets": ["aclsum"]})  # default: the real model and its YAML
    assert real.model == PRESETS["deepseek-ocr-2"] and real.optim.grad_accum_steps == 16
    assert not real.trainable.vision_tower and not real.trainable.projector and real.routed_experts == "train"


def test_lora_gets_a_lora_learning_rate_unless_one_is_given() -> None:
    lora = load_train_config(None, {"data.datasets": ["a"], "lora": {}})
    assert lora.optim.lr == 2e-4 and lora.routed_experts == "freeze"
    assert load_train_config(None, {"data.datasets": ["a"], "lora": {}, "optim.lr": 1e-3}).optim.lr == 1e-3
    assert load_train_config(None, {"data.datasets": ["a"]}).optim.lr == 1e-5  # the preset's, full fine-tune
    old = load_train_config(None, {"data.datasets": ["a"], "trainable.routed_experts": False})
    assert old.routed_experts == "freeze"  # the earlier boolean spelling
    with pytest.raises(ConfigError, match="routed_experts: lora needs LoRA"):
        load_train_config(None, {"data.datasets": ["a"], "trainable.routed_experts": "lora"})


def test_precedence_preset_then_yaml_then_flags(tmp_path: Path) -> None:
    job = tmp_path / "job.yaml"
    job.write_text("model: {model: tiny}\ndata: {datasets: [a, b], weights: [2, 1]}\noptim: {lr: 0.5, max_steps: 7}\n")
    cfg = load_train_config(job, {"optim.max_steps": 9, "data.datasets": None})
    assert cfg.optim.lr == 0.5 and cfg.optim.max_steps == 9 and cfg.optim.batch_size == 2  # yaml, flag, preset
    assert cfg.data.datasets == ["a", "b"] and cfg.data.weights == [2, 1]


def test_a_folder_or_hub_model_does_not_take_the_default_preset() -> None:
    cfg = load_train_config(None, {"model.model": "owner/other", "data.datasets": ["x"]})
    assert cfg.model.model == "owner/other" and cfg.model.image_size is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"data.datasets": ["a"], "data.eval_split": "test"}, "test split"),
        ({"data.datasets": ["a", "b"], "data.weights": [1.0]}, "1 weights for 2 datasets"),
        ({}, "at least one dataset"),
        ({"data.datasets": ["a"], "optim.lr": -1}, "optim.lr"),
        ({"data.datasets": ["a"], "precision": "fp8"}, "precision"),
    ],
)
def test_invalid_configs_name_the_problem(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_train_config(None, {"model.model": "tiny", **overrides})


def test_every_preset_yaml_is_a_train_config() -> None:
    for name in PRESETS:
        path = preset_file(name)
        assert path is not None
        TrainConfig.model_validate({**__import__("yaml").safe_load(path.read_text()), "data": {"datasets": ["a"]}})
