"""Configuration checks: every YAML parses into its job config, with every problem listed at once."""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from deepsynth_cli.config import GenerateConfig, read_yaml
from deepsynth_cli.errors import ConfigError
from deepsynth_cli.models.preset_config import TrainPreset
from deepsynth_cli.training.config import TrainConfig, load_train_config
from deepsynth_cli.validation import Check, failed, passed, skipped

_PRESET_KEYS = frozenset(TrainPreset.model_fields)
# Job configs of other commands: the class, imported only when a file is checked (`serve`, `eval`).
FOLDER_CONFIGS = {
    "serve": "deepsynth_cli.serving.config:ServeConfig",
    "eval": "deepsynth_cli.evaluation.config:EvalConfig",
}
_ORDER = ("generate", "train", "serve", "eval")  # the tie-break when keys fit several kinds equally


@dataclass(frozen=True)
class LoadedConfig:
    """A config file that parsed, with what it is (for the environment checks: a GPU, output folders)."""

    path: Path
    kind: str  # "generate", "train" or "train preset"
    config: BaseModel


def config_files(root: Path) -> list[Path]:
    """Every job YAML under `root` (configs/). accelerate's launcher files are not job configs."""
    return sorted(
        path for path in root.rglob("*.y*ml") if path.suffix in (".yaml", ".yml") and "accelerate" not in path.parts
    )


def _folder_config(kind: str) -> type[BaseModel] | None:
    module, _, cls = FOLDER_CONFIGS[kind].partition(":")
    try:
        model: type[BaseModel] = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError):
        return None
    return model


def _kind(path: Path, data: dict[str, Any]) -> str:
    """What the file is, from its top-level keys: the job config that knows all of them (the most of them when
    none does). The folder (configs/serve/, configs/train/) only breaks ties, so a serve config copied anywhere
    is still checked as a serve config."""
    keys = set(data)
    fields: dict[str, frozenset[str]] = {
        "generate": frozenset(GenerateConfig.model_fields),
        "train": frozenset(TrainConfig.model_fields) | _PRESET_KEYS,  # a train YAML may hold preset keys too
    }
    for kind in FOLDER_CONFIGS:
        model = _folder_config(kind)
        if model is not None:
            fields[kind] = frozenset(model.model_fields)
    folder = path.parent.name
    if folder in FOLDER_CONFIGS and folder not in fields:
        return folder  # its config class is missing from this deepsynth: check_config says so
    hint = folder if folder in fields else ("train" if "train" in folder else None)
    known = {kind: len(keys & fields[kind]) for kind in fields}
    fits = [kind for kind in _ORDER if kind in fields and known[kind] == len(keys)]
    if not keys:
        return hint or "generate"
    if fits:
        kind = hint if hint in fits else fits[0]
    else:
        kind = max((k for k in _ORDER if k in fields), key=lambda k: (known[k], k == hint))
    if kind == "train" and "train" in folder and keys <= _PRESET_KEYS:
        return "train preset"
    return kind


def _fix(field: str, message: str, model: type[BaseModel]) -> str:
    """What to do about one field error: for an unknown key, the known key it most likely means."""
    if "Extra inputs" in message:
        leaf = field.split(".")[-1]
        known = _known_keys(model, field.split(".")[:-1])
        close = difflib.get_close_matches(leaf, known, n=1)
        return f"did you mean {close[0]!r}?" if close else f"remove it (known: {', '.join(sorted(known))})"
    return "fix the value"


def _known_keys(model: type[BaseModel], parents: list[str]) -> list[str]:
    current: Any = model
    for part in parents:
        field = getattr(current, "model_fields", {}).get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        current = annotation
    return list(getattr(current, "model_fields", {}))


def check_config(path: Path) -> tuple[Check, LoadedConfig | None]:
    """One check per file: `config:PATH`. Every field error of the file is in the message, each with its fix."""
    name = f"config:{path}"
    try:
        data = read_yaml(path)
    except ConfigError as error:
        return failed(name, "critical", error.message, error.hint), None
    kind = _kind(path, data)
    models: dict[str, type[BaseModel]] = {"generate": GenerateConfig, "train": TrainConfig, "train preset": TrainPreset}
    if kind in FOLDER_CONFIGS:
        folder_model = _folder_config(kind)
        if folder_model is None:
            return skipped(name, f"no {kind} job config in this deepsynth ({FOLDER_CONFIGS[kind]})"), None
        models[kind] = folder_model
    model = models[kind]
    try:
        if kind == "train":
            config: BaseModel = load_train_config(path)
        else:
            config = model.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            field = ".".join(str(part) for part in item["loc"]) or "(top level)"
            problems.append(f"{field}: {item['msg']} ({_fix(field, item['msg'], model)})")
        return failed(name, "critical", f"{kind} config: " + "; ".join(problems), "fix the listed fields"), None
    except ConfigError as error:  # load_train_config wraps its ValidationError
        message = error.message
        for suggestion in _unknown_keys(data, model):
            message += f"; {suggestion}"
        return failed(name, "critical", f"{kind} config: {message}", "fix the listed fields"), None
    return passed(name, "critical", f"valid {kind} config"), LoadedConfig(path, kind, config)


def _unknown_keys(data: dict[str, Any], model: type[BaseModel], prefix: str = "") -> list[str]:
    """Suggestions for unknown keys (load_train_config's message lists them without a fix)."""
    out = []
    known = model.model_fields
    for key, value in data.items():
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            if close:
                out.append(f"{prefix}{key}: did you mean {close[0]!r}?")
            continue
        annotation = known[key].annotation
        if isinstance(value, dict) and isinstance(annotation, type) and issubclass(annotation, BaseModel):
            out.extend(_unknown_keys(value, annotation, f"{prefix}{key}."))
    return out


def no_configs(root: Path) -> Check:
    return skipped("config", f"no YAML files under {root}")
