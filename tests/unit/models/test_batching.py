"""Batching: prompts with one image per page, labels only on the summary + EOS, limits that count what they cut."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "transformers", reason="needs the train extra: pip install -e '.[train]'", exc_type=ModuleNotFoundError
)

import torch
from PIL import Image, ImageDraw

from deepsynth_cli.models.batching import IGNORE_INDEX, Batcher, Truncation, page_image
from deepsynth_cli.models.presets import PresetInfo, Processor, load_model

Row = dict[str, Any]


@pytest.fixture(scope="module")
def tiny() -> tuple[Processor, PresetInfo]:
    _, processor, info = load_model("tiny")
    return processor, info


def test_rows_of_1_and_3_pages_share_a_batch(tiny: tuple[Processor, PresetInfo], rows_by_pages: dict[int, Row]) -> None:
    processor, info = tiny
    assert sorted(rows_by_pages) == [1, 3], "the fixture's documents must render to 1 and 3 pages"
    rows = [rows_by_pages[1], rows_by_pages[3]]
    batch = Batcher(processor, info)(rows)
    ids, mask, labels = (batch.inputs[key] for key in ("input_ids", "attention_mask", "labels"))
    assert batch.inputs["pixel_values"].shape == (4, 3, 384, 384)  # pages of both rows, row after row
    assert batch.inputs["num_local_patches"].tolist() == [0, 0, 0, 0]
    assert "pixel_values_local" not in batch.inputs
    image_id = processor.image_token_id
    assert (ids == image_id).sum(dim=1).tolist() == [145, 3 * 145]
    assert batch.truncation == Truncation(rows=2, pages=4, target_tokens=batch.truncation.target_tokens)

    eos, pad = processor.tokenizer.eos_token_id, processor.tokenizer.pad_token_id
    for index, row in enumerate(rows):
        length = int(mask[index].sum())
        assert mask[index, :length].all() and not mask[index, length:].any(), "training batches pad on the right"
        assert (ids[index, length:] == pad).all() and (labels[index, length:] == IGNORE_INDEX).all()
        target = processor.tokenizer(row["summary"], add_special_tokens=False)["input_ids"] + [eos]
        learned = labels[index] != IGNORE_INDEX
        # Exactly the last len(target) real positions are learned: summary + EOS, nothing of the prompt.
        assert learned.nonzero().flatten().tolist() == list(range(length - len(target), length))
        assert ids[index, learned].tolist() == labels[index, learned].tolist() == target
        assert labels[index, length - 1] == eos
        assert not learned[ids[index] == image_id].any()
        prompt = processor.tokenizer.decode(ids[index, : length - len(target)])
        assert prompt.startswith("<bos><image>") and prompt.endswith("<image>\nSummarize this document.")


def test_limits_cut_pages_and_targets_and_count_it(tiny: tuple[Processor, PresetInfo], aclsum_rows: list[Row]) -> None:
    processor, info = tiny
    assert [row["num_pages"] for row in aclsum_rows] == [4, 4, 4, 4]
    batcher = Batcher(processor, info, max_pages=2, max_target_tokens=10)
    batch = batcher(aclsum_rows[:3])
    summaries = [len(processor.tokenizer(row["summary"], add_special_tokens=False)["input_ids"]) for row in aclsum_rows]
    assert all(length + 1 > 10 for length in summaries), "ACLSum summaries are longer than 10 tokens"
    assert batch.truncation == Truncation(
        rows=3,
        pages=6,
        pages_dropped=6,
        rows_with_pages_dropped=3,
        target_tokens=30,
        target_tokens_dropped=sum(length + 1 - 10 for length in summaries[:3]),
        targets_truncated=3,
    )
    assert batch.inputs["pixel_values"].shape[0] == 6
    labels = batch.inputs["labels"]
    assert ((labels != IGNORE_INDEX).sum(dim=1) == 10).all()
    assert not (labels == processor.tokenizer.eos_token_id).any(), "a cut summary does not end with EOS"

    total = Truncation()
    total += batch.truncation
    total += batcher(aclsum_rows[3:]).truncation
    assert (total.rows, total.pages_dropped, total.targets_truncated) == (4, 8, 4)
    assert total.to_dict()["target_tokens"] == 40


def test_generation_inputs_pad_on_the_left(tiny: tuple[Processor, PresetInfo], rows_by_pages: dict[int, Row]) -> None:
    processor, info = tiny
    batch = Batcher(processor, info, max_pages=3).generation_inputs([rows_by_pages[3], rows_by_pages[1]])
    ids, mask = batch.inputs["input_ids"], batch.inputs["attention_mask"]
    assert "labels" not in batch.inputs
    assert mask[:, -1].all(), "every prompt ends in the last column"
    short = int(mask[1].sum())
    assert not mask[1, : ids.shape[1] - short].any()
    instruction = processor.tokenizer("\nSummarize this document.", add_special_tokens=False)["input_ids"]
    assert ids[:, -len(instruction) :].tolist() == [instruction, instruction]
    assert batch.num_rows == 2 and batch.truncation.pages == 4


def _page(size: tuple[int, int], text: str) -> Image.Image:
    image = Image.new("L", size, 255)
    draw = ImageDraw.Draw(image)
    for line in range(0, size[1], 24):
        draw.text((8, line), text, fill=0)
    return image


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_pages_of_any_size_and_form_become_one_view(tiny: tuple[Processor, PresetInfo], tmp_path: Path) -> None:
    processor, info = tiny
    batcher = Batcher(processor, info)
    png = _png(_page((384, 384), "a page of text"))
    (tmp_path / "page.png").write_bytes(png)
    forms: list[Any] = [{"bytes": png, "path": None}, png, Image.open(io.BytesIO(png)), str(tmp_path / "page.png")]
    forms.append({"bytes": None, "path": str(tmp_path / "page.png")})
    views = [batcher([{"pages": [form], "summary": "s"}]).inputs["pixel_values"] for form in forms]
    assert all(torch.equal(view, views[0]) for view in views)
    with pytest.raises(ValueError, match="cannot read a page image"):
        page_image(3)

    # A 1024 px page is resized to the model's 384 px view: same tensor shape, same 145 tokens as a 384 px page.
    big = batcher([{"pages": [_png(_page((1024, 1024), "a page of text"))], "summary": "s"}])
    assert big.inputs["pixel_values"].shape == views[0].shape == (1, 3, 384, 384)
    assert (big.inputs["input_ids"] == processor.image_token_id).sum() == 145
    # A page that is not square is fitted on its long side and padded with grey (127 -> (127/255 - 0.5) / 0.5).
    wide = batcher([{"pages": [_png(_page((768, 384), "wide"))], "summary": "s"}]).inputs["pixel_values"]
    assert wide.shape == (1, 3, 384, 384)
    assert torch.allclose(wide[0, :, :96, :], torch.tensor(127 / 127.5 - 1)) and wide[0, :, 96:288].max() == 1.0


def test_rows_read_by_datasets_batch_like_rows_read_by_pyarrow(
    tiny: tuple[Processor, PresetInfo], rows_by_pages: dict[int, Row], tmp_path: Path
) -> None:
    datasets = pytest.importorskip("datasets")
    processor, info = tiny
    row = rows_by_pages[3]
    features = datasets.Features({"pages": datasets.List(datasets.Image()), "summary": datasets.Value("string")})
    table = datasets.Dataset.from_list([{"pages": row["pages"], "summary": row["summary"]}], features=features)
    decoded = table[0]
    assert isinstance(decoded["pages"][0], Image.Image) and decoded["pages"][0].mode == "L"
    batcher = Batcher(processor, info)
    from_datasets, from_arrow = batcher([decoded]), batcher([row])
    assert all(torch.equal(from_datasets.inputs[key], from_arrow.inputs[key]) for key in from_arrow.inputs)


def test_a_row_without_pages_is_refused(tiny: tuple[Processor, PresetInfo]) -> None:
    processor, info = tiny
    with pytest.raises(ValueError, match="no pages"):
        Batcher(processor, info)([{"pages": [], "summary": "s", "source_id": "x"}])
    with pytest.raises(ValueError, match="at least 1"):
        Batcher(processor, info, max_pages=0)
