"""The shipped `configs/accelerate/` files name classes that exist in the installed DeepSeek-OCR-2 code."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

pytest.importorskip("transformers", reason="needs the train extra", exc_type=ModuleNotFoundError)

from transformers.models.deepseek_ocr2 import modeling_deepseek_ocr2

ACCELERATE = Path(__file__).resolve().parents[3] / "configs" / "accelerate"


def test_fsdp_is_fsdp2_full_shard_and_wraps_the_model_s_transformer_layers() -> None:
    fsdp = yaml.safe_load((ACCELERATE / "fsdp.yaml").read_text(encoding="utf-8"))["fsdp_config"]
    # FSDP2 keeps the original parameters (frozen and trained ones share units); the tested checkpoint path.
    assert fsdp["fsdp_version"] == 2 and fsdp["fsdp_reshard_after_forward"] is True
    assert fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    layers = fsdp["fsdp_transformer_layer_cls_to_wrap"].split(",")
    assert "DeepseekOcr2TextDecoderLayer" in layers
    assert set(layers) <= set(modeling_deepseek_ocr2.DeepseekOcr2PreTrainedModel._no_split_modules)
    assert all(hasattr(modeling_deepseek_ocr2, name) for name in layers)


def test_there_are_configs_for_ddp_fsdp_and_zero2() -> None:
    kinds = {
        path.name: yaml.safe_load(path.read_text(encoding="utf-8"))["distributed_type"]
        for path in ACCELERATE.glob("*.yaml")
    }
    assert sorted(kinds.values()) == ["DEEPSPEED", "FSDP", "MULTI_GPU", "MULTI_GPU"]
    two = yaml.safe_load((ACCELERATE / "ddp-2nodes.yaml").read_text(encoding="utf-8"))
    assert two["num_machines"] == 2 and two["main_process_ip"] == "MAIN_NODE_IP"
    zero = yaml.safe_load((ACCELERATE / "deepspeed-zero2.yaml").read_text(encoding="utf-8"))["deepspeed_config"]
    assert zero["zero_stage"] == 2


def test_deepspeed_gets_the_run_s_accumulation_through_its_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """What reaches accelerate under `accelerate launch --config_file configs/accelerate/deepspeed-zero2.yaml`:
    the engine's gradient_accumulation_steps is the run's, so it steps once per optimiser step."""
    from accelerate.commands.config.config_args import load_config_from_file

    from deepsynth_cli.errors import ConfigError
    from deepsynth_cli.training.config import load_train_config
    from deepsynth_cli.training.loop import deepspeed_options

    cfg = load_train_config(None, {"data.datasets": ["a"], "optim.grad_accum_steps": 4})
    assert deepspeed_options(cfg, {}) == {}  # no DeepSpeed: the loop accumulates itself

    launcher = load_config_from_file(str(ACCELERATE / "deepspeed-zero2.yaml"))
    assert "gradient_accumulation_steps" not in launcher.deepspeed_config  # deepsynth sets it
    # The environment `accelerate launch` gives the processes for this file (accelerate.utils.launch).
    environ = {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2"}
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    options = deepspeed_options(cfg, environ)
    assert options["gradient_accumulation_steps"] == 4
    plugin = options["deepspeed_plugin"]
    assert plugin.deepspeed_config["gradient_accumulation_steps"] == 4
    assert plugin.deepspeed_config["zero_optimization"]["stage"] == 2

    with pytest.raises(ConfigError, match="gradient_accumulation_steps 1 but this run accumulates 4"):
        deepspeed_options(cfg, {**environ, "ACCELERATE_GRADIENT_ACCUMULATION_STEPS": "1"})
