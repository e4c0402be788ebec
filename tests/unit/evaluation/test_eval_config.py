"""EvalConfig: one mode at a time, comma-separated baselines, flags over YAML, the shipped YAML loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepsynth_cli.config import load_config
from deepsynth_cli.errors import ConfigError
from deepsynth_cli.evaluation.config import EvalConfig

SHIPPED = Path(__file__).parents[3] / "configs" / "eval"


def test_a_model_or_a_predictions_file_but_not_both_nor_neither() -> None:
    with pytest.raises(ConfigError, match=r"give a model .* or a predictions file"):
        load_config(EvalConfig, None, {})
    with pytest.raises(ConfigError, match=r"give a model .* or a predictions file"):
        load_config(EvalConfig, None, {"model": "tiny", "predictions": "p.jsonl", "datasets": ["x"]})
    with pytest.raises(ConfigError, match="give --datasets"):
        load_config(EvalConfig, None, {"model": "tiny"})
    assert load_config(EvalConfig, None, {"predictions": "p.jsonl"}).mode == "predictions"


def test_baselines_take_a_comma_list_or_none() -> None:
    base = {"predictions": "p.jsonl"}
    assert load_config(EvalConfig, None, base).baselines == ["lead-1", "lead-3"]
    assert load_config(EvalConfig, None, {**base, "baselines": "lead-3, lead-1"}).baselines == ["lead-3", "lead-1"]
    assert load_config(EvalConfig, None, {**base, "baselines": "none"}).baselines == []
    with pytest.raises(ConfigError, match="baselines"):
        load_config(EvalConfig, None, {**base, "baselines": "lead-7"})


def test_flags_override_the_yaml_and_generation_stays_bounded(tmp_path: Path) -> None:
    path = tmp_path / "eval.yaml"
    path.write_text("model: tiny\ndatasets: [a]\ngeneration:\n  num_beams: 4\n  max_new_tokens: 64\n", encoding="utf-8")
    cfg = load_config(EvalConfig, path, {"generation.num_beams": 2})
    assert (cfg.generation.num_beams, cfg.generation.max_new_tokens) == (2, 64)
    with pytest.raises(ConfigError, match=r"generation\.max_new_tokens"):
        load_config(EvalConfig, path, {"generation.max_new_tokens": 0})
    path.write_text("model: tiny\ndatasets: [a]\nbatchsize: 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="batchsize"):
        load_config(EvalConfig, path)


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*.yaml")), ids=lambda path: path.name)
def test_shipped_eval_configs_load(path: Path) -> None:
    cfg = load_config(EvalConfig, path)
    assert cfg.datasets and cfg.split == "test" and cfg.generation.no_repeat_ngram_size > 0


def test_there_is_a_default_eval_config() -> None:
    assert (SHIPPED / "default.yaml").is_file()
