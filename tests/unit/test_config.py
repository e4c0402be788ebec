"""Job configs: precedence defaults < environment < YAML < flags, strict keys, errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from deepsynth_cli.config import GenerateConfig, load_config
from deepsynth_cli.data.registry import get_spec
from deepsynth_cli.errors import ConfigError
from deepsynth_cli.evaluation.config import EvalConfig
from deepsynth_cli.models.preset_config import TrainPreset
from deepsynth_cli.serving.config import ServeConfig
from deepsynth_cli.settings import get_settings

CONFIGS = sorted((Path(__file__).parents[2] / "configs").rglob("*.yaml"))


def test_precedence_defaults_env_yaml_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert GenerateConfig().resolved(get_settings()).num_workers == 1  # built-in default

    monkeypatch.setenv("DEEPSYNTH_NUM_WORKERS", "3")
    monkeypatch.setenv("DEEPSYNTH_DATA_DIR", str(tmp_path / "from-env"))
    cfg = load_config(GenerateConfig).resolved(get_settings())
    assert (cfg.num_workers, cfg.out) == (3, tmp_path / "from-env")

    yaml_file = tmp_path / "job.yaml"
    yaml_file.write_text("num_workers: 5\nout: from-yaml\nrender: {max_pages: 2}\n")
    cfg = load_config(GenerateConfig, yaml_file).resolved(get_settings())
    assert (cfg.num_workers, cfg.out, cfg.render.max_pages) == (5, Path("from-yaml"), 2)

    flags = {"num_workers": 7, "out": None, "render.max_pages": 6, "render.page_size": None}
    cfg = load_config(GenerateConfig, yaml_file, flags).resolved(get_settings())
    assert (cfg.num_workers, cfg.out, cfg.render.max_pages, cfg.render.page_size) == (7, Path("from-yaml"), 6, 1024)


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DEEPSYNTH_NUM_WORKERS=4\nHF_USERNAME=someone\n")
    settings = get_settings()
    assert settings.num_workers == 4 and settings.hf_username == "someone"


def test_token_never_prints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secretvalue123")
    settings = get_settings()
    assert settings.hf_token is not None and settings.hf_token.get_secret_value() == "hf_secretvalue123"
    assert "hf_secretvalue123" not in repr(settings) and "hf_secretvalue123" not in str(settings.model_dump())


def test_typo_in_yaml_names_the_field(tmp_path: Path) -> None:
    yaml_file = tmp_path / "job.yaml"
    yaml_file.write_text("render:\n  max_page: 3\nnum_workers: zero\n")
    with pytest.raises(ConfigError) as caught:
        load_config(GenerateConfig, yaml_file)
    assert "render.max_page" in caught.value.message and "num_workers" in caught.value.message
    assert str(yaml_file) in caught.value.message


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    yaml_file = tmp_path / "job.yaml"
    yaml_file.write_text("datasets: [aclsum\nrender: {}\n")
    with pytest.raises(ConfigError, match=r"line \d+"):
        load_config(GenerateConfig, yaml_file)


def test_missing_config_file_and_non_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(GenerateConfig, tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(GenerateConfig, tmp_path / "list.yaml")


def test_shard_index_must_be_below_num_shards() -> None:
    with pytest.raises(ConfigError, match="shard_index 2 must be below num_shards 2"):
        load_config(GenerateConfig, None, {"num_shards": 2, "shard_index": 2})


JOB_CONFIGS: dict[str, type[BaseModel]] = {
    "generate": GenerateConfig,
    "train": TrainPreset,
    "eval": EvalConfig,
    "serve": ServeConfig,
}


@pytest.mark.parametrize("path", CONFIGS, ids=[str(p.relative_to(p.parents[1])) for p in CONFIGS])
def test_every_shipped_yaml_loads(path: Path) -> None:
    if path.parent.name == "accelerate":  # `accelerate launch --config_file` files, not deepsynth job configs
        _check_accelerate_config(path)
        return
    assert path.parent.name in JOB_CONFIGS, "a new config folder needs its job config here"
    cfg = load_config(JOB_CONFIGS[path.parent.name], path)
    if isinstance(cfg, GenerateConfig):
        assert cfg.datasets
        for name in cfg.datasets:
            get_spec(name)  # raises for a key the registry does not know


def _check_accelerate_config(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    raw = yaml.safe_load(text)
    assert isinstance(raw, dict) and raw["distributed_type"] in {"MULTI_GPU", "FSDP", "DEEPSPEED"}
    assert "accelerate launch --config_file configs/accelerate/" in text and "-m deepsynth_cli train" in text
    try:
        from accelerate.commands.config.config_args import load_config_from_file
    except ModuleNotFoundError:
        return  # accelerate is in the train extra
    assert load_config_from_file(str(path)).distributed_type.value == raw["distributed_type"]


def test_there_are_shipped_configs() -> None:
    assert len(CONFIGS) >= 4
