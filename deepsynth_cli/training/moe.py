"""How evenly the decoder's MoE routers spread tokens over the routed experts, and an optional load-balance loss.

DeepSeek-OCR-2's decoder routes each token to `num_experts_per_tok` of `n_routed_experts` experts per sparse layer
(`DeepseekOcr2TextTopkRouter`, which returns its logits, weights and chosen indices). Forward hooks on those
routers count tokens per expert; a logged step reports, over the steps since the last log line:

    max share   the largest share of routed slots any expert took, worst layer (1/E when even, 1 at collapse)
    entropy     entropy of the tokens-per-expert distribution / ln(E), mean over layers (1 when even)

Every position the decoder reads is counted (prompt, vision and padding tokens too: the router sees them all).
With `optim.router_aux_loss_coef > 0` the hooks also keep the router probabilities, and the loss gains the
Switch Transformer balance term E * sum_e f_e * P_e per layer (f_e: share of slots routed to e, P_e: mean router
probability of e), averaged over layers: 1 when even, E at collapse.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch


class RouterLoad:
    """Hooks on every routed-MoE router of `model`; `summary()` reads and resets the counts (a host sync)."""

    def __init__(self, model: torch.nn.Module, *, keep_probabilities: bool = False) -> None:
        from transformers.models.deepseek_ocr2.modeling_deepseek_ocr2 import DeepseekOcr2TextTopkRouter

        self.routers = [module for module in model.modules() if isinstance(module, DeepseekOcr2TextTopkRouter)]
        self.keep_probabilities = keep_probabilities
        self.counts: list[torch.Tensor | None] = [None] * len(self.routers)
        self._balance: list[torch.Tensor] = []  # this forward's per-layer balance terms (with gradients)
        self.recording = True
        self._handles = [router.register_forward_hook(self._hook(index)) for index, router in enumerate(self.routers)]

    def _hook(self, layer: int) -> Any:
        def record(module: torch.nn.Module, inputs: Any, output: Any) -> None:
            if not self.recording:
                return
            logits, _, indices = output
            experts = logits.shape[-1]
            chosen = torch.bincount(indices.detach().flatten(), minlength=experts)
            current = self.counts[layer]
            self.counts[layer] = chosen if current is None else current + chosen
            if self.keep_probabilities and torch.is_grad_enabled():
                probabilities = logits.softmax(dim=-1).mean(dim=0)
                slots = chosen.to(probabilities.dtype) / max(1, int(indices.numel()))
                self._balance.append(experts * (slots * probabilities).sum())

        return record

    def begin(self) -> None:
        """Before a forward pass: drop terms a recomputation (activation checkpointing) recorded in backward."""
        self._balance = []

    def balance_loss(self) -> torch.Tensor | None:
        """The balance term of the forward passes since the last call (mean over layers); None when none ran."""
        terms, self._balance = self._balance, []
        return torch.stack(terms).mean() if terms else None

    def summary(self, reduce: Any = None) -> dict[str, float] | None:
        """(max share, entropy) since the last call; `reduce` sums a tensor over processes (a collective)."""
        counts = [count for count in self.counts if count is not None]
        self.counts = [None] * len(self.routers)
        if not counts:
            return None
        stacked = torch.stack([count.float() for count in counts])  # layers x experts
        if reduce is not None:
            stacked = reduce(stacked)
        shares = stacked / stacked.sum(dim=1, keepdim=True).clamp_min(1)
        experts = shares.shape[1]
        entropy = -(shares * shares.clamp_min(1e-12).log()).sum(dim=1) / math.log(experts)
        return {"moe_max_share": float(shares.max()), "moe_entropy": float(entropy.mean())}

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Evaluation and generation: their tokens are not training's load."""
        self.recording = False
        try:
            yield
        finally:
            self.recording = True

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
