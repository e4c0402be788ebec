"""Shard rows -> model batches: the prompt, the labels and the padding.

One row (as read from the Parquet shards, with pyarrow or `datasets`) becomes one sequence:

    [BOS] [vision tokens of page 1] ... [vision tokens of page N] [instruction] [summary] [EOS] [pad ...]
    labels: -100 on everything before the summary and on the padding; the summary and EOS are learned.

The processor expands one `<image>` per page into that page's vision tokens and turns the pages into
`pixel_values` (one global view per page, resized and grey-padded to the preset's image size whatever the page
size in the shards). Rows may have different page counts within a batch: the model scatters the page features
into the image positions in row-major order, which is the order `pixel_values` is concatenated in here.

Training batches are right-padded; `generation_inputs` left-pads, as batched `generate` needs. Both apply the
limits and return what they cut (`Truncation`) next to the tensors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from PIL import Image

from deepsynth_cli.data.pages import open_page
from deepsynth_cli.models.preset_config import BatchLimits
from deepsynth_cli.models.presets import PresetInfo, Processor

IGNORE_INDEX = -100
"""Label of positions that carry no loss (prompt, image tokens, padding): PyTorch's cross-entropy default."""

Row = Mapping[str, Any]


@dataclass
class Truncation:
    """What the length limits cut from a batch: counts add up over an epoch with `+=`."""

    rows: int = 0
    pages: int = 0  # pages shown to the model
    pages_dropped: int = 0  # pages beyond max_pages
    rows_with_pages_dropped: int = 0
    target_tokens: int = 0  # target tokens kept, EOS included
    target_tokens_dropped: int = 0  # tokens beyond max_target_tokens (the EOS of a cut summary among them)
    targets_truncated: int = 0

    def __iadd__(self, other: Truncation) -> Truncation:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)
        return self

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def pixel_dtype(model: Any) -> torch.dtype:
    """The dtype pixels go into `model` in: its vision tower's (the tower does not cast its input; see
    `Batch.to`). `model`: a DeepSeek-OCR-2 or a peft model around one."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return next(base.model.vision_tower.parameters()).dtype  # type: ignore[no-any-return]


@dataclass
class Batch:
    """Tensors for `model(**batch.inputs)` or `model.generate(**batch.inputs)`, and what the limits cut."""

    inputs: dict[str, torch.Tensor]
    truncation: Truncation = field(default_factory=Truncation)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> Batch:
        """On `device`, with the pixels in `dtype`: the vision tower does not cast them, and float32 pixels into
        a bf16 model fail ("Input type (float) and bias type (c10::BFloat16) should be the same")."""
        moved = {}
        for key, value in self.inputs.items():
            cast = dtype if dtype is not None and value.is_floating_point() else None
            moved[key] = value.to(device=device, dtype=cast)
        return Batch(moved, self.truncation)

    @property
    def num_rows(self) -> int:
        return int(self.inputs["input_ids"].shape[0])


@dataclass
class _Encoded:
    prompt_ids: list[int]
    image_inputs: dict[str, torch.Tensor]


def page_image(page: Any) -> Image.Image:
    """One page as an RGB PIL image, from any form a shard row holds it in (`data.pages.open_page`)."""
    return open_page(page).convert("RGB")  # rendered pages are greyscale ("L"); the model wants three channels


class Batcher:
    """Turns shard rows into batches for one model; usable as a DataLoader `collate_fn`."""

    def __init__(
        self,
        processor: Processor,
        info: PresetInfo,
        *,
        max_pages: int = 4,
        max_target_tokens: int = 256,
    ) -> None:
        if max_pages < 1 or max_target_tokens < 1:
            raise ValueError("max_pages and max_target_tokens must be at least 1")
        self.processor = processor
        self.info = info
        self.max_pages = max_pages
        self.max_target_tokens = max_target_tokens
        tokenizer = processor.tokenizer
        self.eos_id = int(tokenizer.eos_token_id)
        # A tokenizer without a pad token pads with EOS; the attention mask and -100 labels make it inert.
        self.pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id)

    @classmethod
    def from_limits(cls, processor: Processor, info: PresetInfo, limits: BatchLimits) -> Batcher:
        return cls(processor, info, max_pages=limits.max_pages, max_target_tokens=limits.max_target_tokens)

    def __call__(self, rows: Sequence[Row]) -> Batch:
        return self.train_batch(rows)

    def train_batch(self, rows: Sequence[Row]) -> Batch:
        """Prompt + summary + EOS per row, right-padded, with labels only on the summary and EOS."""
        truncation = Truncation()
        sequences: list[list[int]] = []
        labels: list[list[int]] = []
        encoded: list[_Encoded] = []
        for row in rows:
            prompt = self._encode_prompt(row, truncation)
            target = self._target_ids(str(row.get("summary") or ""), truncation)
            sequences.append(prompt.prompt_ids + target)
            labels.append([IGNORE_INDEX] * len(prompt.prompt_ids) + target)
            encoded.append(prompt)
        input_ids, attention_mask = self._pad(sequences, left=False)
        label_ids, _ = self._pad(labels, left=False, value=IGNORE_INDEX)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": label_ids}
        return Batch({**inputs, **_concat_images(encoded)}, truncation)

    def generation_inputs(self, rows: Sequence[Row]) -> Batch:
        """Prompts only, left-padded so that every row's next token comes at the same position."""
        truncation = Truncation()
        encoded = [self._encode_prompt(row, truncation) for row in rows]
        return self._generation_batch(encoded, truncation)

    def encode_pages(self, pages: Sequence[Any]) -> _Encoded:
        """One document's prompt and page tensors: the processor's share of `generation_inputs`, which a server runs
        beside the model (in request threads) and hands to `generation_inputs_encoded`."""
        return self._encode_prompt({"pages": list(pages)}, Truncation())

    def generation_inputs_encoded(self, encoded: Sequence[_Encoded]) -> Batch:
        """`generation_inputs` for documents already through `encode_pages`."""
        return self._generation_batch(encoded, Truncation())

    def _generation_batch(self, encoded: Sequence[_Encoded], truncation: Truncation) -> Batch:
        input_ids, attention_mask = self._pad([item.prompt_ids for item in encoded], left=True)
        return Batch({"input_ids": input_ids, "attention_mask": attention_mask, **_concat_images(encoded)}, truncation)

    def _encode_prompt(self, row: Row, truncation: Truncation) -> _Encoded:
        pages = list(row.get("pages") or ())
        if not pages:
            raise ValueError(f"row {row.get('source_id', '?')!r} has no pages")
        kept = pages[: self.max_pages]
        truncation.rows += 1
        truncation.pages += len(kept)
        if len(pages) > len(kept):
            truncation.pages_dropped += len(pages) - len(kept)
            truncation.rows_with_pages_dropped += 1
        images = [page_image(page) for page in kept]
        out = self.processor(
            images=images, text=[self.info.prompt(len(images))], return_tensors="pt", **self.info.image_kwargs()
        )
        prompt_ids = [int(token) for token in out["input_ids"][0].tolist()]
        image_inputs = {
            key: out[key] for key in ("pixel_values", "pixel_values_local", "num_local_patches") if key in out
        }
        self._check_image_tokens(prompt_ids, image_inputs, len(images))
        return _Encoded(prompt_ids, image_inputs)

    def _check_image_tokens(self, prompt_ids: list[int], image_inputs: dict[str, torch.Tensor], pages: int) -> None:
        # The model raises a bare "features and tokens do not match" deep in the forward pass; say why here.
        tiles = int(image_inputs["num_local_patches"].sum()) if "num_local_patches" in image_inputs else 0
        emitted = pages * self.info.vision_tokens_per_image + tiles * self.info.vision_tokens_per_tile
        inserted = prompt_ids.count(int(self.processor.image_token_id))
        if inserted != emitted:
            raise ValueError(
                f"the processor inserted {inserted} image tokens for {pages} pages and {tiles} tiles, the model "
                f"emits {emitted}: its patch_size/downsample_ratio do not fit image_size {self.info.image_size}"
            )

    def _target_ids(self, summary: str, truncation: Truncation) -> list[int]:
        ids = [int(token) for token in self.processor.tokenizer(summary, add_special_tokens=False)["input_ids"]]
        ids.append(self.eos_id)
        if len(ids) > self.max_target_tokens:
            # A cut summary keeps no EOS: the model must not learn to stop mid-sentence.
            truncation.target_tokens_dropped += len(ids) - self.max_target_tokens
            truncation.targets_truncated += 1
            ids = ids[: self.max_target_tokens]
        truncation.target_tokens += len(ids)
        return ids

    def _pad(
        self, sequences: list[list[int]], *, left: bool, value: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        fill = self.pad_id if value is None else value
        width = max(len(sequence) for sequence in sequences)
        ids = torch.full((len(sequences), width), fill, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for index, sequence in enumerate(sequences):
            start = width - len(sequence) if left else 0
            ids[index, start : start + len(sequence)] = torch.tensor(sequence, dtype=torch.long)
            mask[index, start : start + len(sequence)] = 1
        return ids, mask


def _concat_images(encoded: Sequence[_Encoded]) -> dict[str, torch.Tensor]:
    # Row-major, page order: the order the model fills image positions of the flattened batch in.
    out: dict[str, torch.Tensor] = {}
    for key in ("pixel_values", "num_local_patches", "pixel_values_local"):
        parts = [item.image_inputs[key] for item in encoded if key in item.image_inputs]
        if parts:
            out[key] = torch.cat(parts, dim=0)
    return out
