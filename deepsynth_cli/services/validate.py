"""`deepsynth validate`: run the checks that apply to what was given and score the result.

Groups, in order: configuration (each `--config`, or every YAML in configs/ when nothing is given), environment,
datasets (each `--datasets`, else the datasets of each given train config; `--sample N` rows per split), Hub
credentials (only when the Hub is read or a config writes to it) and the model (`--model`). Heavy imports happen
inside the checks that need them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from deepsynth_cli.credentials import find_token
from deepsynth_cli.errors import ConfigError, DeepsynthError
from deepsynth_cli.settings import Settings, get_settings
from deepsynth_cli.validation import Check, exit_code, score

CONFIGS_DIR = Path("configs")
_CHECKOUT_CONFIGS = Path(__file__).resolve().parents[2] / "configs"

Progress = Callable[[str], None]


class ValidateConfig(BaseModel):
    """What to validate. Empty `configs`, `datasets` and no `model`: every YAML under configs/."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    configs: list[Path] = Field(default_factory=list, description="job YAML files to parse")
    datasets: list[str] = Field(default_factory=list, description="rendered datasets, resolved like train does")
    model: str | None = Field(None, description="preset (tiny, deepseek-ocr-2), checkpoint folder or Hub id")
    sample: int = Field(16, ge=1, le=100_000, description="rows decoded per split")
    min_free_gib: float = Field(1.0, ge=0, description="less free disk than this where outputs go is a failure")


@dataclass
class ValidateReport:
    checks: list[Check] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def score(self) -> int:
        return score(self.checks)

    @property
    def exit_code(self) -> int:
        return exit_code(self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "exit_code": self.exit_code,
            "checks": [check.to_dict() for check in self.checks],
            "seconds": round(self.seconds, 3),
        }


def _configs_root() -> Path:
    return CONFIGS_DIR if CONFIGS_DIR.is_dir() else _CHECKOUT_CONFIGS


def _given_configs(cfg: ValidateConfig) -> list[Path]:
    """The files to parse. A given path that is not a file is a usage error (exit 2), not a failed check."""
    for path in cfg.configs:
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}", hint="check the path given to --config")
    if cfg.configs or cfg.datasets or cfg.model:
        return list(cfg.configs)
    from deepsynth_cli.validation.configs import config_files

    return config_files(_configs_root())


def run(cfg: ValidateConfig, progress: Progress | None = None, settings: Settings | None = None) -> ValidateReport:
    """Run every check that applies; never raises for what it inspects (that is what the checks report)."""
    from deepsynth_cli.validation import environment
    from deepsynth_cli.validation.configs import LoadedConfig, check_config, no_configs

    started = time.perf_counter()
    settings = settings or get_settings()
    say = progress or (lambda message: None)
    report = ValidateReport()
    files = _given_configs(cfg)

    say("configuration")
    loaded: list[LoadedConfig] = []
    for path in files:
        check, parsed = check_config(path)
        report.checks.append(check)
        if parsed is not None:
            loaded.append(parsed)
    if not files and not (cfg.datasets or cfg.model):
        report.checks.append(no_configs(_configs_root()))

    say("environment")
    report.checks += environment.check_versions(environment.installed_versions(), environment.supported_ranges())
    report.checks.append(environment.check_model_classes())
    report.checks.append(environment.check_gpu(_precision(loaded)))
    report.checks += environment.check_disk(_output_folders(loaded, settings), cfg.min_free_gib)

    page_tokens: list[int] = []
    datasets = _datasets_to_check(cfg, loaded)
    reads_hub = any(name.startswith("hf://") for name in datasets)
    if datasets:
        from deepsynth_cli.validation.datasets import dataset_checks

        for name in datasets:
            say(f"dataset {name}")
            checks, data = dataset_checks(name, settings, cfg.sample)
            report.checks += checks
            per_page = ((data.manifest or {}).get("model_geometry", {}) if data else {}).get("vision_tokens_per_page")
            if per_page:
                page_tokens.append(int(per_page))
            reads_hub = reads_hub or (data is not None and data.location.kind == "hub")

    uses_hub, targets, unnamed = _hub_targets(loaded, settings)
    if uses_hub or reads_hub:
        say("Hub credentials")
        from deepsynth_cli.validation.credentials import credential_checks

        report.checks += credential_checks(settings, targets, writes=uses_hub)
        report.checks += unnamed

    if cfg.model:
        say(f"model {cfg.model}")
        from deepsynth_cli.validation.model import model_checks

        report.checks += model_checks(cfg.model, page_tokens)
    report.seconds = time.perf_counter() - started
    return report


def _datasets_to_check(cfg: ValidateConfig, loaded: list[Any]) -> list[str]:
    """`--datasets`, or else the `data.datasets` of the train configs given with `--config` (the run would read
    them: they must exist and be readable). Configs found under configs/ with no argument are only parsed."""
    if cfg.datasets or not cfg.configs:
        return list(cfg.datasets)
    names = [name for item in loaded if item.kind == "train" for name in item.config.data.datasets]
    return list(dict.fromkeys(names))


def _precision(loaded: list[Any]) -> str:
    """The most demanding mixed precision any train config asks for."""
    asked = {getattr(item.config, "precision", "no") for item in loaded if item.kind == "train"}
    return "bf16" if "bf16" in asked else "fp16" if "fp16" in asked else "no"


def _output_folders(loaded: list[Any], settings: Settings) -> list[Path]:
    folders = [settings.data_dir]
    for item in loaded:
        if item.kind == "generate" and item.config.out is not None:
            folders.append(item.config.out)
        elif item.kind == "train":
            folders.append(item.config.output_dir)
    return folders


def _hub_targets(loaded: list[Any], settings: Settings) -> tuple[bool, dict[str, str], list[Check]]:
    """Whether a config writes to the Hub, the repos it would write (repo id -> repo type), and a failed
    `hub:write:NAME` for a push_to_hub that train could not name: a `generate` config whose store is the Hub
    (store hub, or auto with a token, as generate decides) writes its dataset repos, a train config with
    `push_to_hub` its model repo (NAME under HF_USERNAME, as train resolves it)."""
    from deepsynth_cli.validation import failed

    uses_hub = False
    targets: dict[str, str] = {}
    unnamed: list[Check] = []
    for item in loaded:
        if item.kind == "train" and item.config.push_to_hub:
            from deepsynth_cli.training.hub import resolve_repo_id

            uses_hub = True
            try:
                targets[resolve_repo_id(item.config.push_to_hub, settings)] = "model"
            except DeepsynthError as error:  # no owner to name it under, or whoami could not say (offline, 401)
                unnamed.append(failed(f"hub:write:{item.config.push_to_hub}", "high", error.message, error.hint))
        if item.kind != "generate":
            continue
        store = item.config.store or settings.store
        if store == "local" or (store == "auto" and find_token(settings) is None):
            continue
        uses_hub = True
        if item.config.repo_id:
            targets[item.config.repo_id] = "dataset"
        else:  # a bare NAME is checked under the token's user (credential_checks asks whoami once)
            from deepsynth_cli.data.rendered import REPO_PREFIX

            owner = f"{settings.hf_username}/" if settings.hf_username else ""
            targets.update({f"{owner}{REPO_PREFIX}{name}": "dataset" for name in item.config.datasets})
    return uses_hub, targets, unnamed
