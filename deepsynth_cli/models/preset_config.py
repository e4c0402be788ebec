"""The typed presets, without torch: what `configs/train/*.yaml` holds and what `load_model` reads.

Importing this module is cheap (pydantic only), so the CLI and the job configs can validate a preset or a YAML
file without importing torch or transformers; `presets.py` builds and loads the models they describe.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

REAL_MODEL_ID = "deepseek-community/DeepSeek-OCR-2"
TINY = "tiny"
DEFAULT_INSTRUCTION = "\nSummarize this document."
IMAGE_TOKEN = "<image>"
PRESET_FILE = "deepsynth_preset.json"
"""Written beside the weights by `save_model`: the preset fields a checkpoint was trained with."""

DType = Literal["float32", "bfloat16", "float16"]

# The tiny model's vocabulary: the specials first, so their ids are fixed (bos/eos 0/1 as in DeepSeek's vocab).
TINY_SPECIAL_TOKENS = ("<bos>", "<eos>", "<pad>", IMAGE_TOKEN)
TINY_VOCAB_SIZE = 2048
TINY_IMAGE_SIZE = 384


class ModelPreset(BaseModel):
    """What `load_model` builds or loads and how pages are shown to it. None: from the checkpoint, else default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(TINY, description="'tiny', a Hub id, or a folder written by save_pretrained")
    image_size: int | None = Field(
        None, ge=96, le=2048, description="side of the global view in px (1024: 257 tokens a page; tiny: 384)"
    )
    crop_to_patches: bool | None = Field(
        None, description="add 768 px tiles for pages larger than a tile: 144 more tokens per tile (default off)"
    )
    instruction: str | None = Field(None, description="text after the page placeholders")
    dtype: DType | None = Field(None, description="weights' dtype (default: tiny float32, a checkpoint its own)")


PRESETS: dict[str, ModelPreset] = {
    TINY: ModelPreset(
        model=TINY,
        image_size=TINY_IMAGE_SIZE,
        crop_to_patches=False,
        instruction=DEFAULT_INSTRUCTION,
        dtype="float32",
    ),
    # One 1024 px global view per page, no tiles: 257 tokens a page, the count `generate` records per row.
    "deepseek-ocr-2": ModelPreset(
        model=REAL_MODEL_ID,
        image_size=1024,
        crop_to_patches=False,
        instruction=DEFAULT_INSTRUCTION,
        dtype="bfloat16",
    ),
}


class BatchLimits(BaseModel):
    """Length limits applied when rows become batches; what they cut is counted, never hidden."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_pages: int = Field(4, ge=1, le=64, description="pages per row shown to the model; later pages are dropped")
    max_target_tokens: int = Field(256, ge=1, le=8192, description="summary tokens per row, EOS included")


class OptimPreset(BaseModel):
    """Optimisation defaults of a training preset: starting points, overridden per run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lr: float = Field(1e-5, gt=0, le=1, description="peak learning rate (AdamW)")
    weight_decay: float = Field(0.0, ge=0, le=1)
    batch_size: int = Field(1, ge=1, le=4096, description="rows per forward pass")
    grad_accum_steps: int = Field(1, ge=1, le=4096, description="forward passes per optimiser step")
    max_steps: int = Field(1000, ge=1, description="optimiser steps")
    warmup_steps: int = Field(0, ge=0)
    max_grad_norm: float | None = Field(1.0, gt=0, description="clip gradients to this norm (None: no clipping)")
    freeze: list[str] = Field(
        default_factory=list, description="module name prefixes kept frozen, e.g. model.vision_tower"
    )
    seed: int = 0


RoutedExperts = Literal["train", "freeze", "lora"]


class TrainableConfig(BaseModel):
    """What is updated. `optim.freeze` adds module prefixes on top of these switches. With LoRA, the decoder's
    linear layers get adapters and the parts switched on here train in full beside them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    vision_tower: bool = Field(False, description="train the vision encoder in full (frozen by default)")
    projector: bool = Field(True, description="train the multi-modal projector and the view separator in full")
    routed_experts: RoutedExperts | None = Field(
        None,
        description="the decoder's MoE routed experts: train (in full; the default without LoRA), freeze (the "
        "default with LoRA), lora (adapters on the fused expert tensors, with --lora)",
    )

    @model_validator(mode="before")
    @classmethod
    def _booleans(cls, data: Any) -> Any:
        # `routed_experts: true/false`, the earlier spelling, still means train / freeze.
        if isinstance(data, dict) and isinstance(data.get("routed_experts"), bool):
            data = {**data, "routed_experts": "train" if data["routed_experts"] else "freeze"}
        return data


class TrainPreset(BaseModel):
    """One file of configs/train/: the model, the batch limits and the optimisation defaults of a preset."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: ModelPreset = Field(default_factory=ModelPreset)
    batching: BatchLimits = Field(default_factory=BatchLimits)
    optim: OptimPreset = Field(default_factory=OptimPreset)
    trainable: TrainableConfig = Field(default_factory=TrainableConfig)


def vision_queries(view_size: int) -> int:
    """Vision tokens the model emits for one square view of `view_size` px (without the separator).

    Fixed by its learned queries, not the pixels: 144 when SAM's feature map (stride 16, then two stride-2
    convolutions) has at most 144 cells, i.e. any view up to 768 px; 256 above.
    """
    side = math.ceil((view_size // 16) / 4)
    return 144 if side * side <= 144 else 256
