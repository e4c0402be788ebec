"""What precision a run really trains in: the weights' dtype (the optimiser updates those) and the autocast dtype.

AdamW's update at lr 1e-5 is far below bf16's resolution of a weight near 1 (2^-8): with bf16 weights most updates
round away. So by default the weights stay float32 (the "master" copy the optimiser updates) and the forward and
backward passes run under autocast in bf16 (fp16 with loss scaling on a GPU without bf16); on a CPU the default is
plain float32. Pure bf16 weights (half the weight and optimiser memory) only when asked for: `bf16-pure`.
Measured on the tiny preset at lr 1e-5, the share of trainable elements one step moves is in
tests/unit/training/test_precision.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class RunPrecision:
    requested: str  # as configured: auto, no, bf16, fp16, bf16-pure
    mixed: str  # what accelerate gets: no, bf16, fp16
    weights: str  # the dtype of the weights (and of the AdamW state): float32 or bfloat16

    @property
    def autocast(self) -> str | None:
        return None if self.mixed == "no" else self.mixed

    def describe(self) -> str:
        compute = f"autocast {self.autocast}" if self.autocast else "no autocast"
        return f"weights {self.weights}, {compute} (precision {self.requested})"


def resolve_precision(requested: str, device: torch.device) -> RunPrecision:
    """`requested` (TrainConfig.precision) on `device` as weights dtype + accelerate's mixed precision."""
    if requested == "bf16-pure":
        return RunPrecision(requested, "no", "bfloat16")
    if requested != "auto":
        return RunPrecision(requested, requested, "float32")
    if device.type == "cuda":
        return RunPrecision(requested, "bf16" if torch.cuda.is_bf16_supported() else "fp16", "float32")
    return RunPrecision(requested, "no", "float32")


PURE_BF16_NOTICE = (
    "precision bf16-pure: the weights and AdamW state are bf16; updates smaller than a weight's bf16 step round "
    "away (at lr 1e-5 most of them). The default (auto) keeps float32 weights with bf16 autocast on a GPU"
)
