"""`EvalConfig`: what `deepsynth eval` does, typed, without torch (the CLI validates it before importing torch).

Two modes: `model` generates summaries from the rendered pages of `datasets` and scores them; `predictions`
scores an existing JSON Lines file (see `evaluation/rows.py` for its format) without a model. Precedence,
lowest to highest: built-in defaults < the `--config` YAML < command-line flags.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from deepsynth_cli.evaluation.rouge import Scheme
from deepsynth_cli.inference.options import GenerationOptions

Baseline = Literal["lead-1", "lead-3"]
BASELINES: tuple[Baseline, ...] = ("lead-1", "lead-3")

SAMPLE_SEED = 0
"""Seed of the `--max-samples` subset: the same rows every run, on every machine."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BootstrapConfig(_Strict):
    """Confidence intervals and the paired test against baselines (percentile bootstrap over rows)."""

    resamples: int = Field(1000, ge=100, le=100_000, description="bootstrap resamples")
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="interval coverage")
    seed: int = Field(0, description="seed of the resampling")


class ReportConfig(_Strict):
    """What report.html shows."""

    gallery: int = Field(6, ge=0, le=100, description="examples per dataset, spread from best to worst ROUGE-L")
    thumbnail_px: int = Field(360, ge=64, le=2048, description="width of the page images in the gallery")


class EvalConfig(_Strict):
    """`deepsynth eval`: score a model (or a file of predictions) on rendered datasets, with baselines."""

    model: str | None = Field(None, description="preset, model folder written by `deepsynth train`, or Hub id")
    predictions: Path | None = Field(None, description="score this JSON Lines file of predictions instead")
    datasets: list[str] = Field(default_factory=list, description="rendered datasets: names, folders, hf:// URLs")
    split: str = Field("test", description="split to evaluate on")
    max_samples: int | None = Field(None, ge=1, description="a fixed seeded subset of N rows per dataset")
    sample_seed: int = Field(SAMPLE_SEED, description="seed of the --max-samples subset")
    language: str | None = Field(
        None, description="scoring language (BCP-47) of rows that have none or 'und', e.g. files rendered without one"
    )
    rouge_scheme: Scheme | None = Field(
        None,
        description="how ROUGE tokenises, stems and splits: deepsynth, rouge_score or xlsum; "
        "None: each dataset's paper's scheme (the registry's), deepsynth for datasets it does not know",
    )
    baselines: list[Baseline] = Field(default_factory=lambda: list(BASELINES), description="Lead-k baselines")
    batch_size: int = Field(4, ge=1, le=1024, description="documents per generate call")
    device: str = Field("auto", description="auto (the GPU when there is one), cpu, cuda, cuda:1 ...")
    generation: GenerationOptions = Field(default_factory=GenerationOptions)
    bootstrap: BootstrapConfig = Field(default_factory=BootstrapConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    output: Path = Field(Path("eval-results"), description="metrics.json, predictions.jsonl and report.html go here")
    ablation: bool = Field(
        False, description="also score own, another row's and blank pages (does the model read?); model mode only"
    )

    @field_validator("baselines", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        # `--baselines lead-3,lead-1` and YAML lists alike; "none" or "" turns baselines off.
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list):
            parts = [part.strip() for item in value for part in str(item).split(",")]
            return [part for part in dict.fromkeys(parts) if part and part != "none"]
        return value

    @model_validator(mode="after")
    def _one_mode(self) -> EvalConfig:
        if (self.model is None) == (self.predictions is None):
            raise ValueError("give a model to generate summaries (--model) or a predictions file (--predictions)")
        if self.model is not None and not self.datasets:
            raise ValueError("a model is evaluated on rendered datasets: give --datasets")
        if self.ablation and self.model is None:
            raise ValueError("--ablation swaps the pages a model reads: it needs --model, not --predictions")
        return self

    @property
    def mode(self) -> Literal["model", "predictions"]:
        return "model" if self.model is not None else "predictions"
