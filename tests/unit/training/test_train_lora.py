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
from tests.unit.training.test_train import Recorder, tiny_cfg

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
