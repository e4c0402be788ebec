"""Generation options with bounds: what `eval` flags and `serve` requests may ask of `generate`.

Importing this module is cheap (pydantic only): the CLI and the API validate options without torch.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

DEFAULT_MAX_NEW_TOKENS = 128
"""The length limit of a model that records none (a preset, or a model not trained by deepsynth)."""


class GenerationOptions(BaseModel):
    """Decoding settings. Greedy with an n-gram repetition guard by default: repetition loops are the most
    reported failure of DeepSeek-OCR models (3-9 % of pages without a guard)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_new_tokens: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="summary length limit in tokens (default: the model's own, from the lengths of its training "
        f"summaries; {DEFAULT_MAX_NEW_TOKENS} for a model without one)",
    )
    num_beams: int = Field(1, ge=1, le=8, description="beam search width (1: greedy or sampling)")
    do_sample: bool = Field(False, description="sample instead of searching (uses temperature and top_p)")
    temperature: float = Field(1.0, gt=0, le=2.0, description="sampling temperature")
    top_p: float = Field(1.0, gt=0, le=1.0, description="nucleus sampling mass")
    no_repeat_ngram_size: int = Field(
        4, ge=0, le=32, description="never repeat an n-gram of this many tokens (0: no guard)"
    )
    repetition_penalty: float = Field(1.0, ge=1.0, le=2.0, description="penalty on tokens already generated")
    seed: int | None = Field(None, description="sampling seed, for reproducible samples")

    @model_validator(mode="after")
    def _beams_or_sampling(self) -> GenerationOptions:
        if self.do_sample and self.num_beams > 1:
            raise ValueError("choose beam search (num_beams > 1) or sampling (do_sample), not both")
        return self

    def generate_kwargs(self) -> dict[str, Any]:
        """Keywords for `model.generate`; sampling knobs only when sampling (transformers warns otherwise)."""
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
            "num_beams": self.num_beams,
            "do_sample": self.do_sample,
            "no_repeat_ngram_size": self.no_repeat_ngram_size,
            "repetition_penalty": self.repetition_penalty,
        }
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p)
        else:
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if self.num_beams > 1:
            kwargs["early_stopping"] = True
        return kwargs
