"""Presets: the tiny model builds offline and deterministically, checkpoints round-trip, specs resolve."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "transformers", reason="needs the train extra: pip install -e '.[train]'", exc_type=ModuleNotFoundError
)

import torch
import transformers

from deepsynth_cli.config import load_config
from deepsynth_cli.errors import ConfigError
from deepsynth_cli.models.batching import Batcher
from deepsynth_cli.models.preset_config import (
    DEFAULT_INSTRUCTION,
    PRESET_FILE,
    PRESETS,
    REAL_MODEL_ID,
    ModelPreset,
    TrainPreset,
    vision_queries,
)
from deepsynth_cli.models.presets import load_model, resolve_preset, save_model

Row = dict[str, Any]
TRAIN_CONFIGS = sorted((Path(__file__).parents[3] / "configs" / "train").glob("*.yaml"))


def test_tiny_builds_fast_and_deterministically() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    started = time.perf_counter()
    first, processor, info = load_model("tiny")
    assert time.perf_counter() - started < 5
    assert torch.equal(torch.rand(1), expected_next), "building must not consume the caller's random numbers"

    second, again, _ = load_model("tiny")
    assert first.state_dict().keys() == second.state_dict().keys()
    assert all(torch.equal(value, second.state_dict()[key]) for key, value in first.state_dict().items())
    assert processor.tokenizer.backend_tokenizer.to_str() == again.tokenizer.backend_tokenizer.to_str()
    other, _, _ = load_model("tiny", seed=1)
    assert not torch.equal(first.lm_head.weight, other.lm_head.weight)

    assert sum(parameter.numel() for parameter in first.parameters()) < 1_000_000
    assert not first.training and first.dtype == torch.float32
    assert info.source == "random init (seed 0)"


def test_tiny_geometry_and_prompt() -> None:
    model, processor, info = load_model("tiny")
    tokenizer = processor.tokenizer
    assert (info.image_size, info.tile_size, info.crop_to_patches) == (384, 384, False)
    assert info.vision_tokens_per_image == 145
    assert (
        info.prompt(3)
        == "<image><image><image>" + DEFAULT_INSTRUCTION
        == "<image><image><image>\nSummarize this document."
    )
    assert model.config.image_token_id == tokenizer.convert_tokens_to_ids("<image>") == processor.image_token_id
    assert model.config.vision_config.sam_config.initializer_range == 0.02
    assert len(tokenizer) == model.config.text_config.vocab_size == 2048
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (0, 1, 2)
    assert model.generation_config.eos_token_id == tokenizer.eos_token_id
    # Byte-level: any text round-trips, nothing becomes an unknown token; BOS first, as DeepSeek's tokenizer does.
    text = "Zusammenfassung: naïve 東京 résumé ✓"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_vision_token_rule_matches_the_real_model_sizes() -> None:
    assert [vision_queries(size) for size in (192, 384, 640, 768, 1024)] == [144, 144, 144, 144, 256]


def test_tiny_image_size_must_fit_the_token_rule() -> None:
    _, _, info = load_model(ModelPreset(model="tiny", image_size=192))
    assert (info.image_size, info.vision_tokens_per_image) == (192, 145)
    with pytest.raises(ConfigError, match="divisible by 12"):
        load_model(ModelPreset(model="tiny", image_size=400))


def test_specs_resolve_and_unknown_ones_are_config_errors(tmp_path: Path) -> None:
    assert resolve_preset("deepseek-ocr-2").model == REAL_MODEL_ID
    assert resolve_preset("someone/some-model") == ModelPreset(model="someone/some-model")
    assert resolve_preset(str(tmp_path)).model == str(tmp_path)
    with pytest.raises(ConfigError, match="unknown model 'huge'") as caught:
        resolve_preset("huge")
    assert "tiny" in caught.value.hint


def test_real_model_is_loaded_from_the_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The code path reaches the Hub and fails cleanly offline. huggingface_hub reads HF_HUB_OFFLINE once, at
    # import: the environment variable the test setup sets is too late, and the network retries take ~20 s.
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(ConfigError, match=f"cannot load the Hub model {REAL_MODEL_ID}") as caught:
        load_model("deepseek-ocr-2")
    assert "network" in caught.value.hint
    with pytest.raises(ConfigError, match="cannot load the folder"):
        load_model(str(tmp_path))


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=[path.name for path in TRAIN_CONFIGS])
def test_every_train_yaml_loads_and_matches_its_preset(path: Path) -> None:
    preset = load_config(TrainPreset, path)
    assert preset.model == PRESETS[path.stem], "the YAML and the built-in preset of the same name must agree"
    assert preset.batching.max_pages >= 1 and preset.optim.lr > 0


def test_there_is_a_yaml_per_preset() -> None:
    assert sorted(path.stem for path in TRAIN_CONFIGS) == sorted(PRESETS)


def test_checkpoint_round_trip_and_left_padded_generation(tmp_path: Path, rows_by_pages: dict[int, Row]) -> None:
    model, processor, info = load_model(ModelPreset(model="tiny", instruction="\nTL;DR:"))
    folder = save_model(model, processor, info, tmp_path / "step-000000")
    assert (folder / PRESET_FILE).is_file() and (folder / "model.safetensors").is_file()

    # The plain transformers loaders read what we wrote (what a user or vLLM does with a checkpoint) ...
    loaded = transformers.AutoModelForImageTextToText.from_pretrained(folder)
    loaded_processor = transformers.AutoProcessor.from_pretrained(folder)
    assert type(loaded) is type(model) and type(loaded_processor) is type(processor)
    assert (loaded_processor.patch_size, loaded_processor.downsample_ratio) == (32, 1)
    assert loaded_processor.image_processor.crop_to_patches is False
    assert all(torch.equal(value, loaded.state_dict()[key]) for key, value in model.state_dict().items())

    # ... and so does load_model, with the preset fields the checkpoint was made with.
    _, _, reloaded = load_model(str(folder))
    assert reloaded == replace(info, name=str(folder), source=str(folder))
    assert reloaded.prompt(1) == "<image>\nTL;DR:"

    batcher = Batcher(loaded_processor, reloaded)
    rows = [rows_by_pages[1], rows_by_pages[3]]
    batch = batcher.generation_inputs(rows)
    width = batch.inputs["input_ids"].shape[1]
    generated = loaded.generate(**batch.inputs, max_new_tokens=4, do_sample=False)
    assert generated.shape == (2, width + 4)
    # Left padding done right: each row continues exactly as it does when generated alone.
    for index, row in enumerate(rows):
        alone = batcher.generation_inputs([row])
        single = loaded.generate(**alone.inputs, max_new_tokens=4, do_sample=False)
        assert torch.equal(single[0, -4:], generated[index, -4:])
