"""The tiny model on real shards: a finite loss, it reads the pixels, batching is exact, and it learns."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "transformers", reason="needs the train extra: pip install -e '.[train]'", exc_type=ModuleNotFoundError
)

import torch
from PIL import Image, ImageDraw, ImageOps
from transformers import (
    DeepseekOcr2ForConditionalGeneration,
    DeepseekOcr2ImageProcessorPil,
    DeepseekOcr2Processor,
)

from deepsynth_cli.models.batching import Batcher
from deepsynth_cli.models.preset_config import ModelPreset
from deepsynth_cli.models.presets import load_model, tiny_config

Row = dict[str, Any]


def test_forward_on_real_shards_gives_a_finite_loss(aclsum_rows: list[Row]) -> None:
    model, processor, info = load_model("tiny")
    batch = Batcher(processor, info, max_pages=2, max_target_tokens=32)(aclsum_rows[:2])
    with torch.no_grad():
        loss = model(**batch.inputs).loss
    assert loss is not None and torch.isfinite(loss)
    # A random model spreads its bets: about ln(vocab) = 7.6 nats per token.
    assert 5 < loss.item() < 10


def test_bf16_weights_take_batches_cast_with_them(rows_by_pages: dict[int, Row]) -> None:
    model, processor, info = load_model("tiny", dtype="bfloat16")
    batch = Batcher(processor, info)([rows_by_pages[1]]).to("cpu", dtype=model.dtype)
    assert batch.inputs["pixel_values"].dtype == torch.bfloat16 and batch.inputs["input_ids"].dtype == torch.long
    with torch.no_grad():
        loss = model(**batch.inputs).loss
    assert loss is not None and torch.isfinite(loss)


def test_a_row_gives_the_same_logits_alone_and_in_a_mixed_batch(rows_by_pages: dict[int, Row]) -> None:
    # What broke batch > 1 in ms-swift: page features must land on their own row's image positions.
    model, processor, info = load_model("tiny")
    batcher = Batcher(processor, info)
    rows = [rows_by_pages[3], rows_by_pages[1]]
    with torch.no_grad():
        together = model(**batcher(rows).inputs).logits
        for index, row in enumerate(rows):
            alone = model(**batcher([row]).inputs).logits[0]
            assert torch.allclose(together[index, : alone.shape[0]], alone, atol=1e-4)


def _inverted(row: Row) -> Row:
    page = Image.open(io.BytesIO(row["pages"][0]["bytes"]))
    buffer = io.BytesIO()
    ImageOps.invert(page.convert("L")).save(buffer, format="PNG")
    return {**row, "pages": [{"bytes": buffer.getvalue(), "path": None}]}


def test_the_model_reads_the_pixels(rows_by_pages: dict[int, Row]) -> None:
    model, processor, info = load_model("tiny")
    batcher = Batcher(processor, info)
    page, other = rows_by_pages[1], _inverted(rows_by_pages[1])  # same prompt and summary, different image
    first, second = batcher([page]).inputs, batcher([other]).inputs
    assert torch.equal(first["input_ids"], second["input_ids"])
    with torch.no_grad():
        assert (model(**first).logits - model(**second).logits).abs().max() > 1e-3

    # The SAM default initializer_range (1e-10) makes a random model blind: identical logits for any image.
    config = tiny_config(processor.tokenizer)
    config.vision_config.sam_config.initializer_range = 1e-10
    torch.manual_seed(0)
    blind = DeepseekOcr2ForConditionalGeneration(config).eval()
    with torch.no_grad():
        assert torch.equal(blind(**first).logits, blind(**second).logits)


def test_a_few_steps_on_two_rows_bring_the_loss_down(rows_by_pages: dict[int, Row], aclsum_rows: list[Row]) -> None:
    model, processor, info = load_model("tiny")
    torch.manual_seed(0)
    first_page = {**aclsum_rows[0], "pages": aclsum_rows[0]["pages"][:1]}
    batch = Batcher(processor, info, max_target_tokens=24)([rows_by_pages[1], first_page])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(10):
        loss = model(**batch.inputs).loss
        assert loss is not None
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses  # typically 7.6 -> 3.9


def _blank_page(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    page = Image.new("L", size, 255)
    ImageDraw.Draw(page).text((10, 10), "a line of text " * 8, fill=0)
    page.save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_real_processor_geometry_with_tiles_in_a_mixed_batch(tmp_path: Path) -> None:
    # The real checkpoint's processor (1024 px global view, 768 px tiles, patch 16 x downsample 4) in front of a
    # tiny model built for 1024 px: the path `deepseek-ocr-2` takes, offline, tiles on.
    tokenizer = load_model("tiny")[1].tokenizer
    real = DeepseekOcr2Processor(image_processor=DeepseekOcr2ImageProcessorPil(), tokenizer=tokenizer)
    torch.manual_seed(0)
    DeepseekOcr2ForConditionalGeneration(tiny_config(tokenizer, 1024)).save_pretrained(tmp_path)
    real.save_pretrained(tmp_path)

    _, _, plain = load_model(str(tmp_path))  # no deepsynth_preset.json: one 1024 px view a page, no tiles
    assert (plain.image_size, plain.crop_to_patches, plain.vision_tokens_per_image) == (1024, False, 257)

    model, processor, info = load_model(ModelPreset(model=str(tmp_path), crop_to_patches=True))
    assert (info.image_size, info.tile_size, info.vision_tokens_per_tile) == (1024, 768, 144)
    rows = [
        {"pages": [_blank_page((1024, 1024)), _blank_page((384, 384))], "summary": "Two pages, one tiled."},
        {"pages": [_blank_page((1536, 768))], "summary": "One wide page."},
    ]
    batcher = Batcher(processor, info)
    batch = batcher(rows)
    assert batch.inputs["num_local_patches"].tolist() == [4, 0, 2]  # 2x2 tiles, none (fits one tile), 2x1
    assert batch.inputs["pixel_values_local"].shape == (6, 3, 768, 768)
    image_tokens = (batch.inputs["input_ids"] == processor.image_token_id).sum(dim=1).tolist()
    assert image_tokens == [2 * 257 + 4 * 144, 257 + 2 * 144]
    with torch.no_grad():
        together = model(**batch.inputs).logits
        for index, row in enumerate(rows):
            alone = model(**batcher([row]).inputs).logits[0]
            assert torch.allclose(together[index, : alone.shape[0]], alone, atol=1e-4)
