"""AdamW with linear warmup and a cosine decay: the optimiser and schedule of every run."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch.optim.lr_scheduler import LambdaLR


def adamw(named: Iterable[tuple[str, torch.nn.Parameter]], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; biases, norms and other 1-D parameters get no weight decay
    (decaying a norm's gain towards 0 only fights the model)."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
    for _, param in named:
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # fused: one kernel for all parameters, on CPU and CUDA alike (the same arithmetic there, so a resumed run still
    # matches an uninterrupted one bit for bit). Measured on the tiny preset on CPU: optimizer.step 1.2 ms against
    # 3.6 ms for the per-parameter loop; on a GPU it also saves ~10 passes over the optimiser state per step.
    fused = all(param.device.type in ("cpu", "cuda") for param in decay + no_decay)
    return torch.optim.AdamW([group for group in groups if group["params"]], lr=lr, fused=fused, foreach=False)


def lr_factor(step: int, *, warmup_steps: int, max_steps: int, min_lr_ratio: float) -> float:
    """The multiplier of the peak lr at `step` (0-based count of finished optimiser steps): linear from
    1/(warmup+1) up to 1 over the warmup, then a half cosine down to `min_lr_ratio` at `max_steps`."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    span = max(1, max_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(
    optimizer: torch.optim.Optimizer, *, warmup_steps: int, max_steps: int, min_lr_ratio: float
) -> LambdaLR:
    return LambdaLR(
        optimizer,
        lambda step: lr_factor(step, warmup_steps=warmup_steps, max_steps=max_steps, min_lr_ratio=min_lr_ratio),
    )
