"""What a run updates: frozen prefixes, frozen routed experts, and LoRA restricted to the language model.

With LoRA, peft freezes the whole base model; the parts the config trains in full (the projector by default, the
vision tower or the routed experts when asked) are switched back on, saved beside the adapter in each checkpoint
(`trainable_base.safetensors`) and merged into the final model with the adapters."""

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
# Routed experts live at model.language_model.layers.N.mlp.experts (the shared experts are mlp.shared_experts):
# two fused 3-D tensors per layer, gate_up_proj (experts, 2 x intermediate, hidden) and down_proj.
_ROUTED_EXPERTS = re.compile(r"(^|\.)language_model\.layers\.\d+\.mlp\.experts(\.|$)")
TRAINED_BASE_FILE = "trainable_base.safetensors"  # LoRA checkpoints: base weights trained in full


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
    dotted = f".{name}."
    return name == prefix or name.startswith(prefix + ".") or f".{prefix}." in dotted


def apply_freezing(model: torch.nn.Module, cfg: TrainConfig) -> None:
    """Set requires_grad from the config. Frozen modules also go to eval mode in `train_mode`."""
    prefixes = frozen_prefixes(cfg)
    in_full = [VISION_TOWER] if cfg.trainable.vision_tower else []
    in_full += list(PROJECTOR) if cfg.trainable.projector else []
    for name, param in model.named_parameters():
        if ".lora_" in name:
            continue  # an adapter: peft made it trainable
        experts = _ROUTED_EXPERTS.search(name) is not None
        if cfg.lora is not None:
            # peft froze the base model: switch on what trains in full beside the adapters.
            train = any(_under(name, prefix) for prefix in in_full) or (experts and cfg.routed_experts == "train")
            train = train and not any(_under(name, prefix) for prefix in cfg.optim.freeze)
        else:
            train = not any(_under(name, prefix) for prefix in prefixes) and not (
                experts and cfg.routed_experts == "freeze"
            )
        param.requires_grad_(train)


def trained_base(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """With LoRA: the base weights that train in full (not adapters), by their names in the peft model."""
    return {
        name: param.detach().contiguous()
        for name, param in model.named_parameters()
        if param.requires_grad and ".lora_" not in name
    }


def load_trained_base(model: torch.nn.Module, path: Path) -> None:
    """Put the base weights `trained_base` saved back into a fresh peft model (resume)."""
    from safetensors.torch import load_file

    expected = set(trained_base(model))
    if not path.is_file():
        if expected:
            raise ConfigError(
                f"{path.parent.name} has no {TRAINED_BASE_FILE} but this run trains {len(expected)} base weights in "
                "full beside the adapters",
                hint="resume with the trainable settings the checkpoint was written with",
            )
        return
    saved = load_file(str(path))
    if set(saved) != expected:
        raise ConfigError(
            f"{path} does not fit the base weights this run trains in full",
            hint="resume with the trainable settings the checkpoint was written with",
        )
    model.load_state_dict(saved, strict=False)


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


def routed_expert_tensors(model: torch.nn.Module) -> list[str]:
    """Full names of the fused routed-expert tensors of the language model (peft's `target_parameters`)."""
    return [name for name, _ in model.named_parameters() if _ROUTED_EXPERTS.search(name)]


def add_lora(model: torch.nn.Module, settings: LoraSettings, *, experts: bool = False) -> Any:
    """Adapters on the language model's linear layers; `experts`: on its fused routed-expert tensors too (peft's
    parameter targeting: one rank-r pair per expert and tensor, merged exactly like the others)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ModuleNotFoundError as error:
        raise ConfigError("LoRA needs the peft package", hint="pip install peft, or train without --lora") from error

    targets = lora_targets(model, settings)
    if not targets:
        raise ValueError(f"no linear layer of the language model is named one of {settings.targets}")
    parameters = routed_expert_tensors(model) if experts else []
    if parameters and settings.dropout:
        raise ConfigError(
            "LoRA on the routed experts does not take dropout (peft's parameter targeting)",
            hint="set lora.dropout: 0 with trainable.routed_experts: lora",
        )
    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=targets,
        target_parameters=parameters or None,
    )
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
