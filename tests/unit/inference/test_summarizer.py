"""The shared summarizer (eval and serve): decoding options, beams over multi-page documents, failures per row,
and the render settings a trained model carries."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from deepsynth_cli.config import RenderConfig
from deepsynth_cli.inference.options import GenerationOptions
from deepsynth_cli.inference.summarizer import (
    RENDER_FILE,
    Summarizer,
    read_render_config,
    save_render_config,
)
from deepsynth_cli.models.presets import save_model

SMALL = RenderConfig(page_size=384, font_size=12, margin=12, max_pages=3)


@pytest.fixture(scope="module")
def summarizer() -> Summarizer:
    loaded = Summarizer.load("tiny", device="cpu")
    loaded.render_config = SMALL
    return loaded


@pytest.fixture(scope="module")
def documents(summarizer: Summarizer) -> dict[int, list[bytes]]:
    short = summarizer.render("A short note about parsers and grammars.", "en")
    long = summarizer.render(" ".join(f"token{k % 89} of a long paper" for k in range(600)), "en")
    assert len(short.pages) == 1 and len(long.pages) >= 2
    return {1: short.pages, len(long.pages): long.pages}


def test_options_have_bounds_and_reject_beams_with_sampling() -> None:
    assert GenerationOptions().no_repeat_ngram_size > 0  # the repetition guard is on by default
    with pytest.raises(ValidationError):
        GenerationOptions(max_new_tokens=0)
    with pytest.raises(ValidationError):
        GenerationOptions(num_beams=64)
    with pytest.raises(ValidationError, match="not both"):
        GenerationOptions(num_beams=2, do_sample=True)
    with pytest.raises(ValidationError):
        GenerationOptions(unknown=1)  # type: ignore[call-arg]


def test_greedy_counts_pages_tokens_and_stops_at_the_limit(
    summarizer: Summarizer, documents: dict[int, list[bytes]]
) -> None:
    pages = sorted(documents)
    out = summarizer.summarize([documents[n] for n in pages], GenerationOptions(max_new_tokens=6))
    per_page = summarizer.info.vision_tokens_per_image
    assert [item.pages for item in out] == pages
    assert [item.vision_tokens for item in out] == [n * per_page for n in pages]
    for item in out:  # random weights never emit EOS within 6 tokens here
        assert item.error is None and 0 < item.new_tokens <= 6 and item.text


def test_beams_show_each_beam_the_whole_document(summarizer: Summarizer, documents: dict[int, list[bytes]]) -> None:
    """Every beam of a multi-page document sees that document's pages, in order, at its image positions (repeating
    `pixel_values` page by page would show beams [A, A] and [B, B] instead of [A, B])."""
    long = documents[max(documents)]
    seen: list[torch.Tensor] = []

    def capture(module: torch.nn.Module, args: tuple[object, ...], kwargs: dict[str, torch.Tensor]) -> None:
        if not seen:  # the prefill: the whole prompt with the page features scattered in
            seen.append(kwargs["inputs_embeds"].detach().clone())

    options = GenerationOptions(max_new_tokens=3, num_beams=3)
    hook = summarizer.model.model.language_model.register_forward_pre_hook(capture, with_kwargs=True)
    try:
        together = summarizer.summarize([documents[1], long], options)
    finally:
        hook.remove()
    batch = summarizer._batcher.generation_inputs([{"pages": long}])
    with torch.inference_mode():
        features = summarizer.model.get_image_features(pixel_values=batch.inputs["pixel_values"], return_dict=True)
    expected = torch.cat(list(features.pooler_output), dim=0)  # page 1's tokens, then page 2's ...
    (embeds,) = seen
    assert embeds.shape[0] == 2 * options.num_beams
    image_id = int(summarizer.processor.image_token_id)
    rows = summarizer._batcher.generation_inputs([{"pages": documents[1]}, {"pages": long}]).inputs["input_ids"]
    positions = rows[1] == image_id
    for beam in range(options.num_beams):
        torch.testing.assert_close(embeds[options.num_beams + beam][positions], expected)
    alone = summarizer.summarize([long], options)
    assert together[1].text == alone[0].text and together[1].logprob == pytest.approx(alone[0].logprob, abs=1e-4)


def test_different_pages_give_different_summaries(summarizer: Summarizer) -> None:
    first = summarizer.render("Parsing with grammars.", "en").pages
    second = summarizer.render("Zebras graze on the savannah at dawn, " * 30, "en").pages
    a, b = summarizer.summarize([first, second], GenerationOptions(max_new_tokens=8))
    assert a.text != b.text


def test_a_bad_row_is_recorded_and_the_others_are_summarised(
    summarizer: Summarizer, documents: dict[int, list[bytes]]
) -> None:
    out = summarizer.summarize([documents[1], [b"not an image"], documents[1]], GenerationOptions(max_new_tokens=4))
    assert out[0].error is None and out[2].error is None and out[0].text == out[2].text
    assert out[1].error and "Image" in out[1].error and out[1].text == ""
    [alone] = summarizer.summarize([[b"not an image"]], GenerationOptions(max_new_tokens=4))
    assert alone.error and alone.error.startswith("UnidentifiedImageError") and alone.text == ""


def test_render_settings_travel_with_a_model_folder(tmp_path: Path, summarizer: Summarizer) -> None:
    folder = save_model(summarizer.model, summarizer.processor, summarizer.info, tmp_path / "model")
    assert read_render_config(folder) is None
    custom = RenderConfig(page_size=512, font_size=15, max_pages=2)
    assert save_render_config(folder, custom) == folder / RENDER_FILE
    loaded = Summarizer.load(str(folder), device="cpu")
    assert loaded.render_config == custom and loaded.render_source == "checkpoint" and loaded.max_pages == 2
    assert read_render_config("tiny") is None  # presets carry no training render settings (and ask no network)
