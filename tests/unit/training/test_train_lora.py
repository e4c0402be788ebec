"""`deepsynth train --lora`: adapters on the language model only, learning, a merged final model, exact resume."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("accelerate", reason="needs the train extra", exc_type=ModuleNotFoundError)
pytest.importorskip("peft", reason="LoRA needs peft (train extra)", exc_type=ModuleNotFoundError)

import torch
import transformers

from deepsynth_cli.models.presets import load_model
from deepsynth_cli.services import train
from deepsynth_cli.training.config import LoraSettings
from deepsynth_cli.training.trainable import add_lora, count_parameters
from tests.unit.training.test_train import Recorder, _safetensors_dtypes, tiny_cfg

LORA = {"r": 4, "alpha": 8}


def test_lora_adapts_only_the_language_model() -> None:
    model = load_model("tiny")[0]
    vision_q = [name for name, _ in model.named_modules() if name.startswith("model.vision_tower") and "q_proj" in name]
    assert vision_q, "the vision encoder has q_proj layers too: a plain name list would adapt them"
    peft_model = add_lora(model, LoraSettings(**LORA))
    trainable = [name for name, param in peft_model.named_parameters() if param.requires_grad]
    assert trainable and all(".lora_" in name and ".language_model." in name for name in trainable)
    assert not any("vision_tower" in name for name, _ in peft_model.named_parameters() if "lora_" in name)
    counts = count_parameters(peft_model.parameters())
    assert 0 < counts.trainable < 0.05 * counts.total


def test_lora_learns_and_the_final_model_is_merged(aclsum_data: Path, tmp_path: Path) -> None:
    # The tiny preset's random lm_head sits behind a norm and stays frozen under LoRA: its logits can only move a
    # little (ln(2048) = 7.62 is where it starts), so the bar is a steady, deterministic drop, not memorisation.
    overrides = {"optim.max_steps": 10, "optim.lr": 0.5, "optim.min_lr_ratio": 1.0, "checkpoint.every": 10}
    report = train.run(tiny_cfg(aclsum_data, tmp_path / "run", lora=LORA, **overrides))
    assert sum(report.losses[-3:]) / 3 < report.losses[0] - 0.03, report.losses
    assert report.trainable_params < 0.05 * report.total_params

    final = tmp_path / "run"
    assert (final / "model.safetensors").is_file() and not (final / "adapter_model.safetensors").exists()
    checkpoint = final / "step-000010"
    assert (checkpoint / "adapter_model.safetensors").is_file() and not (checkpoint / "model.safetensors").exists()

    # The final folder is a plain model (no peft to load it) holding base + adapter, merged.
    merged = transformers.AutoModelForImageTextToText.from_pretrained(final)
    assert not any("lora" in name for name in merged.state_dict())
    base = load_model("tiny")[0].state_dict()
    after = merged.state_dict()
    language = [name for name in after if ".language_model." in name and name.endswith("q_proj.weight")]
    assert language and all(not torch.equal(after[name], base[name]) for name in language)
    vision = [name for name in after if name.startswith("model.vision_tower.")]
    assert vision and all(torch.equal(after[name], base[name]) for name in vision)
    assert torch.equal(after["lm_head.weight"], base["lm_head.weight"])


def test_lora_resume_matches_an_uninterrupted_run(aclsum_data: Path, tmp_path: Path) -> None:
    overrides = {"optim.max_steps": 4, "optim.lr": 2e-2, "optim.warmup_steps": 1, "checkpoint.every": 2}
    whole = train.run(tiny_cfg(aclsum_data, tmp_path / "whole", lora=LORA, **overrides))
    with pytest.raises(KeyboardInterrupt):
        train.run(tiny_cfg(aclsum_data, tmp_path / "cut", lora=LORA, **overrides), Recorder(stop_at=3))
    resumed = train.run(tiny_cfg(aclsum_data, tmp_path / "cut", lora=LORA, resume=True, **overrides))
    assert resumed.start_step == 2
    assert resumed.losses == pytest.approx(whole.losses, rel=1e-6, abs=1e-7)
    a = transformers.AutoModelForImageTextToText.from_pretrained(tmp_path / "whole").state_dict()
    b = transformers.AutoModelForImageTextToText.from_pretrained(tmp_path / "cut").state_dict()
    assert all(torch.allclose(a[name], b[name], atol=1e-6) for name in a)


def test_lora_trains_the_projector_in_full_and_resumes_it(aclsum_data: Path, tmp_path: Path) -> None:
    overrides = {"optim.max_steps": 2, "optim.lr": 2e-2, "checkpoint.every": 1}
    report = train.run(tiny_cfg(aclsum_data, tmp_path / "run", lora=LORA, **overrides))
    checkpoint = tmp_path / "run" / "step-000001"
    from safetensors.torch import load_file

    in_full = load_file(str(checkpoint / "trainable_base.safetensors"))
    assert sorted(name.removeprefix("base_model.model.model.") for name in in_full) == [
        "multi_modal_projector.bias",
        "multi_modal_projector.weight",
        "view_separator",
    ]
    base = load_model("tiny")[0].state_dict()
    merged = transformers.AutoModelForImageTextToText.from_pretrained(tmp_path / "run").state_dict()
    assert not torch.equal(merged["model.multi_modal_projector.weight"], base["model.multi_modal_projector.weight"])
    frozen = train.run(
        tiny_cfg(aclsum_data, tmp_path / "frozen", lora=LORA, **{**overrides, "trainable.projector": False})
    )
    assert frozen.trainable_params == report.trainable_params - sum(tensor.numel() for tensor in in_full.values())


def test_lora_on_the_routed_experts_adapts_the_fused_tensors(aclsum_data: Path, tmp_path: Path) -> None:
    overrides = {"optim.max_steps": 2, "optim.lr": 2e-2, "checkpoint.every": 100, "trainable.routed_experts": "lora"}
    plain = train.run(
        tiny_cfg(aclsum_data, tmp_path / "plain", lora=LORA, **{**overrides, "trainable.routed_experts": None})
    )
    experts = train.run(tiny_cfg(aclsum_data, tmp_path / "experts", lora=LORA, **overrides))
    # One rank-4 pair per expert (4) and fused tensor (gate_up 64x64, down 64x32) of the one MoE layer.
    assert experts.trainable_params - plain.trainable_params == 4 * 4 * (64 + 64) + 4 * 4 * (32 + 64)
    base = load_model("tiny")[0].state_dict()
    merged = transformers.AutoModelForImageTextToText.from_pretrained(tmp_path / "experts").state_dict()
    name = "model.language_model.layers.1.mlp.experts.gate_up_proj"
    assert merged[name].shape == base[name].shape and not torch.equal(merged[name], base[name])
    untouched = transformers.AutoModelForImageTextToText.from_pretrained(tmp_path / "plain").state_dict()
    assert torch.equal(untouched[name], base[name])  # without it the experts stay frozen under LoRA


def test_the_merged_lora_model_is_saved_in_the_presets_dtype(aclsum_data: Path, tmp_path: Path) -> None:
    overrides = {"model.dtype": "bfloat16", "optim.max_steps": 1, "checkpoint.every": 1}
    train.run(tiny_cfg(aclsum_data, tmp_path / "run", lora=LORA, **overrides))
    saved = _safetensors_dtypes(tmp_path / "run")
    assert {dtype for name, dtype in saved.items() if not name.endswith(".mlp.gate.weight")} == {"BF16"}
    assert load_model(str(tmp_path / "run"))[0].dtype == torch.bfloat16
    adapter = _safetensors_dtypes(tmp_path / "run" / "step-000001" / "adapter_model.safetensors")
    assert adapter and set(adapter.values()) == {"F32"}  # the checkpoint keeps the float32 masters
