"""`deepsynth train --push-to-hub`: the final model and its card on the loopback Hub, through the real client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("accelerate", reason="needs the train extra", exc_type=ModuleNotFoundError)

import torch
import yaml
from typer.testing import CliRunner

from deepsynth_cli.cli.app import app
from deepsynth_cli.data.hub import HubError
from deepsynth_cli.data.store import resolve_dataset
from deepsynth_cli.errors import ConfigError
from deepsynth_cli.models.batching import Batcher
from deepsynth_cli.models.presets import load_model
from deepsynth_cli.services import train
from deepsynth_cli.settings import Settings
from deepsynth_cli.training.config import TrainConfig
from deepsynth_cli.training.data import eval_rows
from deepsynth_cli.training.hub import base_model
from tests.support.hub_fixture import HubEnv
from tests.unit.training.test_train import tiny_cfg

pytestmark = pytest.mark.hub

MODEL_FILES = {
    "README.md",
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "processor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "deepsynth_preset.json",
    "deepsynth_render.json",  # how the training pages were rendered, for eval and serve
    "deepsynth_limits.json",  # the trained page limit and the generation limit its summaries call for
    "train_config.json",
}


@pytest.fixture
def hub(hub_env: HubEnv, monkeypatch: pytest.MonkeyPatch) -> HubEnv:
    monkeypatch.setenv("HF_USERNAME", hub_env.server.user)
    return hub_env


def test_push_to_hub_uploads_a_model_that_loads_from_the_hub_with_a_card(
    hub: HubEnv, aclsum_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = ["train", "--datasets", str(aclsum_data), "--model", "tiny", "--output-dir", str(out)]
    args += [
        "--max-steps",
        "2",
        "--save-every",
        "1",
        "--eval-every",
        "2",
        "--push-to-hub",
        "tiny-summarizer",
        "--private",
    ]
    config = tmp_path / "job.yaml"
    config.write_text(
        yaml.safe_dump({"batching": {"max_target_tokens": 24}, "eval": {"rows": 2, "generate_rows": 1}}),
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, [*args, "--config", str(config)])
    assert result.exit_code == 0, result.output
    repo_id = f"{hub.server.user}/tiny-summarizer"
    assert "pushed to:" in result.output and hub.token not in result.output
    assert "Hub token: from HF_TOKEN" in result.output  # where the push's token comes from

    assert hub.server.store.get("model", repo_id).private  # --private; loading below uses HF_TOKEN
    files = set(hub.server.list_files(repo_id, repo_type="model")) - {".gitattributes"}  # the Hub's own
    assert files == MODEL_FILES  # the final model only: no step-NNNNNN/ checkpoint, no optimizer state
    for name in files:
        assert hub.token.encode() not in hub.server.read_file(repo_id, name, repo_type="model"), name

    card = hub.server.read_file(repo_id, "README.md", repo_type="model").decode()
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["library_name"] == "transformers" and metadata["pipeline_tag"] == "image-text-to-text"
    assert "deepsynth" in metadata["tags"] and metadata["language"] == ["en"]
    assert "base_model" not in metadata  # the tiny preset has random weights: no base on the Hub
    assert "AutoModelForImageTextToText.from_pretrained" in card and "validation_loss" in card
    assert '"validation_reads_pages": ' in card  # the pixel ablation's verdict at the last evaluation
    settings = json.loads(card.split("```json\n")[1].split("```")[0])
    assert settings["optim"]["max_steps"] == 2 and "output_dir" not in settings and "push_to_hub" not in settings

    import transformers

    monkeypatch_cache = hub.cache_dir / "download"
    model = transformers.AutoModelForImageTextToText.from_pretrained(repo_id, cache_dir=monkeypatch_cache)
    processor = transformers.AutoProcessor.from_pretrained(repo_id, cache_dir=monkeypatch_cache)
    local, _, info = load_model(str(out))
    assert torch.equal(model.lm_head.weight, local.lm_head.weight)
    rows = eval_rows(resolve_dataset(str(aclsum_data), Settings()), "validation", Settings(), 1)
    batch = Batcher(processor, info).generation_inputs(rows)
    prompt = batch.inputs["input_ids"].shape[1]
    generated = model.generate(**batch.inputs, max_new_tokens=3, do_sample=False)
    assert prompt < generated.shape[1] <= prompt + 3


def test_push_failures_are_clear_and_token_free(
    hub: HubEnv, aclsum_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_USERNAME")
    monkeypatch.delenv("HF_TOKEN")  # with a token, NAME goes under the token's user (test_hub_login.py)
    with pytest.raises(ConfigError, match="HF_USERNAME"):  # before any training
        train.run(tiny_cfg(aclsum_data, tmp_path / "a", push_to_hub="alone"))
    assert not (tmp_path / "a").exists()

    monkeypatch.setenv("HF_TOKEN", "hf_not_the_right_one")
    cfg = tiny_cfg(aclsum_data, tmp_path / "b", push_to_hub="someone-else/x", **{"optim.max_steps": 1})
    cfg = cfg.model_copy(update={"hub": cfg.hub.model_copy(update={"attempts": 1})})
    with pytest.raises(HubError) as caught:
        train.run(cfg)
    text = f"{caught.value} {caught.value.hint}"
    assert "hf_not_the_right_one" not in text and "someone-else/x" in text
    assert str(tmp_path / "b") in caught.value.hint  # the trained model is kept locally
    assert (tmp_path / "b" / "model.safetensors").is_file()


def test_base_model_of_the_card() -> None:
    def cfg(model: str) -> TrainConfig:
        return tiny_cfg(Path("x"), Path("y"), **{"model.model": model})

    assert base_model(cfg("tiny")) is None
    assert base_model(cfg("deepseek-ocr-2")) == "deepseek-community/DeepSeek-OCR-2"
    assert base_model(cfg("me/my-ocr")) == "me/my-ocr"
