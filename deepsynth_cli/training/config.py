"""`TrainConfig`: what `deepsynth train` does, typed, without torch (the CLI validates it before importing torch).

Precedence, lowest to highest: built-in defaults < the model preset's YAML (`deepsynth_cli/presets/NAME.yaml`:
package data, linked from `configs/train/`; chosen by `model.model` when it names a preset) < the `--config` YAML
< command-line flags. Every key of a preset YAML is also a key of `TrainConfig`, so a preset file is a valid job
config.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from deepsynth_cli.config import HubConfig, read_yaml, set_dotted
from deepsynth_cli.errors import ConfigError
from deepsynth_cli.models.preset_config import (
    PRESETS,
    BatchLimits,
    ModelPreset,
    OptimPreset,
    RoutedExperts,
    TrainableConfig,
)

PRESET_PACKAGE = "deepsynth_cli.presets"  # one YAML per preset, shipped in the wheel
DEFAULT_MODEL = "deepseek-ocr-2"
LORA_LR = 2e-4  # the learning rate LoRA runs get when none is given: adapters start at zero and want ~10x more

# auto: float32 master weights with bf16 autocast on a GPU that has bf16, fp16 autocast with loss scaling on one
# that has not, plain float32 on a CPU. "no": float32, no autocast. "bf16-pure": bf16 weights and AdamW state
# (half the memory; at small learning rates most updates round away, so only when asked for).
Precision = Literal["auto", "no", "bf16", "fp16", "bf16-pure"]
Tracker = Literal["tensorboard", "wandb", "mlflow", "comet_ml", "aim", "clearml", "dvclive"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(_Strict):
    """Which rendered datasets feed the run and how they are mixed."""

    datasets: list[str] = Field(default_factory=list, description="names resolved like `generate` writes them")
    weights: list[float] | None = Field(None, description="sampling weight per dataset (default: equal)")
    train_split: str = "train"
    eval_split: str = Field("validation", description="evaluation split; never 'test'")
    streaming: bool = Field(True, description="read shards as a stream (memory independent of the dataset size)")
    shuffle_buffer: int = Field(
        64,
        ge=0,
        le=100_000,
        description="Hub streams: rows in the shuffle buffer; local folders shuffle row groups; 0: file order",
    )

    @model_validator(mode="after")
    def _consistent(self) -> DataConfig:
        if self.weights is not None:
            if len(self.weights) != len(self.datasets):
                raise ValueError(f"{len(self.weights)} weights for {len(self.datasets)} datasets")
            if any(weight <= 0 for weight in self.weights):
                raise ValueError("weights must be positive")
        if self.eval_split == "test":
            raise ValueError("the test split is for the final evaluation only: evaluate on 'validation'")
        return self


class LoraSettings(_Strict):
    """LoRA on the language model only (the vision encoder has the same projection names)."""

    r: int = Field(16, ge=1, le=1024)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0, lt=1)
    targets: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


class TrainOptim(OptimPreset):
    """The preset's optimisation fields plus the schedule's shape."""

    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine ends at lr * min_lr_ratio")
    epochs: float | None = Field(None, gt=0, description="stop after this many passes (needs known sizes)")
    router_aux_loss_coef: float = Field(
        0.0, ge=0, le=1, description="weight of the MoE load-balance loss added to the LM loss (0: none; try 1e-3)"
    )


class EvalConfig(_Strict):
    """Evaluation on a fixed sample of the validation split: on by default whenever the split exists, every
    `every` steps and after the last step; the best evaluation's checkpoint is kept."""

    enabled: bool = Field(True, description="evaluate when a validation split exists (false: never)")
    every: int = Field(200, ge=0, description="evaluate every N steps and at the end (0: only at the end)")
    rows: int = Field(16, ge=1, le=100_000, description="validation rows per dataset for the loss")
    generate_rows: int = Field(4, ge=0, le=10_000, description="of those, rows summarised for ROUGE-L (0: none)")
    max_new_tokens: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="generation limit for ROUGE-L (default: the 99th-percentile token length of the training "
        "summaries seen so far, within batching.max_target_tokens)",
    )
    metric: Literal["rougeL", "loss"] = Field("loss", description="what picks the best checkpoint")
    ablation: bool = Field(
        True,
        description="at each evaluation also score the sample on another row's pages and on blank pages "
        "(loss; ROUGE-L on generate_rows): whether the model reads its pages",
    )
    patience: int | None = Field(None, ge=1, description="stop after N evaluations without improvement")


class CheckpointConfig(_Strict):
    every: int = Field(200, ge=1, description="save step-NNNNNN/ every N steps")
    keep: int = Field(2, ge=1, le=10_000, description="most recent checkpoints kept (the best one is kept too)")


class TrainConfig(_Strict):
    """`deepsynth train`: model, data, what trains, how, and where it goes."""

    model: ModelPreset = Field(default_factory=lambda: PRESETS[DEFAULT_MODEL])
    batching: BatchLimits = Field(default_factory=BatchLimits)
    optim: TrainOptim = Field(default_factory=TrainOptim)
    data: DataConfig = Field(default_factory=DataConfig)
    trainable: TrainableConfig = Field(default_factory=TrainableConfig)
    lora: LoraSettings | None = None
    eval: EvalConfig = Field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    precision: Precision = Field(
        "auto",
        description="auto (fp32 weights + bf16 autocast on a bf16 GPU, fp16 + loss scaling on another GPU, fp32 on "
        "CPU), no (fp32), bf16 or fp16 (fp32 weights + autocast), bf16-pure (bf16 weights and optimiser state)",
    )
    activation_checkpointing: bool = Field(
        False, description="recompute activations in backward: less memory, about a third more compute"
    )
    compile: bool = Field(False, description="torch.compile the model (the first steps pay the compilation)")
    report_to: list[Tracker] = Field(
        default_factory=list, description="experiment trackers (accelerate); local logs go to output_dir/logs"
    )
    output_dir: Path = Path("deepsynth-runs/train")
    resume: bool = Field(False, description="continue from the latest checkpoint in output_dir")
    resume_from: Path | None = Field(None, description="continue from this checkpoint folder")
    log_every: int = Field(1, ge=1)
    push_to_hub: str | None = Field(
        None,
        description="after the final save, push the model to this Hub model repo (OWNER/NAME, or NAME of HF_USERNAME)",
    )
    hub_private: bool = Field(
        False, description="create the model repo private (an existing repo keeps its visibility)"
    )
    hub: HubConfig = Field(default_factory=HubConfig, description="retries and timeout of the push")

    @property
    def routed_experts(self) -> RoutedExperts:
        """What happens to the routed experts, defaults resolved."""
        if self.trainable.routed_experts is not None:
            return self.trainable.routed_experts
        return "freeze" if self.lora is not None else "train"

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if self.trainable.routed_experts == "lora" and self.lora is None:
            raise ValueError("trainable.routed_experts: lora needs LoRA (--lora, or a lora: section)")
        if not self.data.datasets:
            raise ValueError("name at least one dataset (data.datasets, --datasets)")
        if self.push_to_hub is not None:
            parts = self.push_to_hub.split("/")
            if len(parts) > 2 or not all(parts):
                raise ValueError(f"push_to_hub must be OWNER/NAME or NAME, not {self.push_to_hub!r}")
        return self


def preset_file(name: str) -> Traversable | None:
    """The YAML of a built-in preset (package data: the same file in a checkout and in a wheel)."""
    if name not in PRESETS:
        return None
    path = resources.files(PRESET_PACKAGE) / f"{name}.yaml"
    return path if path.is_file() else None


def preset_settings(name: str) -> dict[str, Any]:
    """The preset YAML of `name` as a mapping ({} when `name` is not a preset)."""
    path = preset_file(name)
    if path is None:
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_train_config(path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Defaults < preset YAML (by model name) < `path` < `overrides` (dotted keys; None = not given)."""
    user: dict[str, Any] = read_yaml(path) if path else {}
    flags: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        if value is not None:
            set_dotted(flags, key, value)
    chosen = _merge(user, flags)
    model = chosen.get("model", {})
    name = model.get("model", DEFAULT_MODEL) if isinstance(model, dict) else DEFAULT_MODEL
    base: dict[str, Any] = preset_settings(str(name))
    if not base and name in PRESETS:
        # Never train a preset with the bare defaults (lr, steps, freezing) because its file went missing.
        raise ConfigError(
            f"the {name} preset's file {name}.yaml is missing from {PRESET_PACKAGE}",
            hint="reinstall deepsynth (the wheel ships deepsynth_cli/presets/*.yaml)",
        )
    if not base and isinstance(model, dict):
        # A folder or Hub id: its own saved preset fields apply, not the default preset's.
        base = {"model": {"model": name}}
    data = _merge(base, chosen)
    optim = chosen.get("optim")
    lr_given = isinstance(optim, dict) and optim.get("lr") is not None
    if chosen.get("lora") is not None and not lr_given:
        data = _merge(data, {"optim": {"lr": LORA_LR}})  # the preset's lr is for a full fine-tune
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        where = str(path) if path else "command-line options"
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or '(top level)'}: {item['msg']}" for item in exc.errors()
        )
        raise ConfigError(
            f"invalid configuration in {where}: {problems}", hint="fix the listed fields (see `deepsynth train --help`)"
        ) from exc
