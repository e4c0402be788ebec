"""What a run updates: frozen prefixes, frozen routed experts, and LoRA restricted to the language model."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from deepsynth_cli.errors import ConfigError
from deepsynth_cli.training.config import LoraSettings, TrainConfig

VISION_TOWER = "model.vision_tower"
PROJECTOR = ("model.multi_modal_projector", "model.view_separator")
LANGUAGE_MODEL = "model.language_model"
# Routed experts live at model.language_model.layers.N.mlp.experts (the shared experts are mlp.shared_experts).
_ROUTED_EXPERTS = re.compile(r"(^|\.)language_model\.layers\.\d+\.mlp\.experts(\.|$)")


@dataclass(frozen=True)
class ParamCount:
    trainable: int
    total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.trainable / self.total if self.total else 0.0


def frozen_prefixes(cfg: TrainConfig) -> list[str]:
    prefixes = list(cfg.optim.freeze)
    if not cfg.trainable.vision_tower:
        prefixes.append(VISION_TOWER)
    if not cfg.trainable.projector:
        prefixes.extend(PROJECTOR)
    return prefixes


def _under(name: str, prefix: str) -> bool:
    # PEFT wraps the model as base_model.model.<name>: match the prefix anywhere on a module boundary.
    return name == prefix or name.startswith(prefix + ".") or f".{prefix}." in f".{name}"


def apply_freezing(model: torch.nn.Module, cfg: TrainConfig) -> None:
    """Set requires_grad from the config. Frozen modules also go to eval mode in `train_mode`."""
    prefixes = frozen_prefixes(cfg)
    for name, param in model.named_parameters():
        if cfg.lora is not None:
            continue  # peft has already frozen everything but the adapters
        frozen = any(_under(name, prefix) for prefix in prefixes)
        if not cfg.trainable.routed_experts and _ROUTED_EXPERTS.search(name):
            frozen = True
        param.requires_grad_(not frozen)


def lora_targets(model: torch.nn.Module, settings: LoraSettings) -> list[str]:
    """Full module names of the language model's linear layers whose last name is a target: the vision encoder's
    Qwen2 layers carry the same q_proj ... down_proj names, and a plain name list would adapt them too."""
    names = []
    for name, module in model.named_modules():
        if not name.startswith(LANGUAGE_MODEL + ".") or not isinstance(module, torch.nn.Linear):
            continue
        if name.rsplit(".", 1)[-1] in settings.targets:
            names.append(name)
    return names


def add_lora(model: torch.nn.Module, settings: LoraSettings) -> Any:
    try:
        from peft import LoraConfig, get_peft_model
    except ModuleNotFoundError as error:
        raise ConfigError("LoRA needs the peft package", hint="pip install peft, or train without --lora") from error

    targets = lora_targets(model, settings)
    if not targets:
        raise ValueError(f"no linear layer of the language model is named one of {settings.targets}")
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout, target_modules=targets)
    return get_peft_model(model, config)  # type: ignore[arg-type]


def load_lora_weights(model: Any, path: Path) -> None:
    """Put the adapter weights saved by `save_pretrained` (in a checkpoint) back into a fresh peft model.

    Not `peft.set_peft_model_state_dict`: it renames keys with the model's checkpoint-conversion mapping, which
    for DeepSeek-OCR-2 prepends a second `language_model.` and silently loads nothing.
    """
    from safetensors.torch import load_file

    saved = load_file(str(path))
    expected = {name for name in model.state_dict() if ".lora_" in name}
    renamed: dict[str, torch.Tensor] = {}
    for key, tensor in saved.items():
        # peft saves `...lora_A.weight`; the live module holds `...lora_A.<adapter>.weight`.
        head, _, leaf = key.rpartition(".")
        renamed[f"{head}.default.{leaf}"] = tensor
    missing, unexpected = expected - set(renamed), set(renamed) - expected
    if missing or unexpected:
        raise ConfigError(
            f"{path} does not fit this model's LoRA layers ({len(missing)} missing, {len(unexpected)} unexpected)",
            hint="resume with the same model and lora settings the checkpoint was written with",
        )
    model.load_state_dict(renamed, strict=False)


def count_parameters(parameters: Iterable[torch.nn.Parameter]) -> ParamCount:
    trainable = total = 0
    for param in parameters:
        total += param.numel()
        if param.requires_grad:
            trainable += param.numel()
    return ParamCount(trainable, total)


def train_mode(model: torch.nn.Module) -> None:
    """Training mode, except for whole subtrees with nothing to train (their dropout stays off)."""
    model.train()

    def visit(module: torch.nn.Module) -> None:
        for child in module.children():
            params = list(child.parameters())
            if params and not any(param.requires_grad for param in params):
                child.eval()
            else:
                visit(child)

    visit(model)
