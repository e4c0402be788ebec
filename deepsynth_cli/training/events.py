"""What a training run reports while it runs (events) and when it ends (`TrainReport`); torch-free."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Started:
    model: str
    datasets: list[str]
    trainable_params: int
    total_params: int
    max_steps: int
    start_step: int  # > 0 when resumed
    resumed_from: Path | None
    device: str
    processes: int
    precision: str  # as configured (auto, no, bf16, fp16, bf16-pure)
    weights_dtype: str = "float32"  # what really runs: the dtype the optimiser updates
    autocast: str | None = None  # bf16 / fp16 under mixed precision, else None


@dataclass(frozen=True)
class StepDone:
    step: int
    max_steps: int
    loss: float
    lr: float
    grad_norm: float | None
    samples_per_s: float
    tokens_per_s: float
    memory_gib: float | None  # peak accelerator memory, None on CPU
    moe_max_share: float | None = None  # largest expert's share of routed slots since the last log, worst layer
    moe_entropy: float | None = None  # entropy of tokens per expert / ln(experts), mean over layers (1: even)


@dataclass(frozen=True)
class Evaluated:
    step: int
    loss: float | None
    rouge_l: float | None
    improved: bool
    # The pixel ablation (evaluation/ablation.py), one result per language of the sample: own, another row's and
    # blank pages, and `reads`. Empty when eval.ablation is off or fewer than 2 rows share a language.
    ablation: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class CheckpointSaved:
    step: int
    path: Path


@dataclass(frozen=True)
class Notice:
    message: str


Event = Started | StepDone | Evaluated | CheckpointSaved | Notice
EventSink = Callable[[Event], None]


@dataclass
class TrainReport:
    output_dir: Path
    final_model: Path | None
    model: str
    datasets: list[str]
    steps: int
    start_step: int
    samples: int
    tokens: int
    trainable_params: int
    total_params: int
    losses: list[float] = field(default_factory=list)  # per optimiser step of this process's run, in order
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    best_checkpoint: Path | None = None
    checkpoints: list[Path] = field(default_factory=list)
    truncation: dict[str, int] = field(default_factory=dict)
    stopped_early: bool = False
    seconds: float = 0.0
    samples_per_s: float = 0.0
    tokens_per_s: float = 0.0
    process_index: int = 0  # under `accelerate launch`, only process 0 reports
    processes: int = 1
    pushed_to: str | None = None  # the model repo's URL after --push-to-hub

    @property
    def final_loss(self) -> float | None:
        return self.losses[-1] if self.losses else None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("output_dir", "final_model", "best_checkpoint"):
            out[key] = str(out[key]) if out[key] is not None else None
        out["checkpoints"] = [str(path) for path in self.checkpoints]
        out["final_loss"] = self.final_loss
        out["seconds"] = round(self.seconds, 3)
        return out
