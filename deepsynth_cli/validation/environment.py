"""Environment checks: versions against the ranges deepsynth declares, the model classes, GPU, disk, fonts."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from deepsynth_cli.validation import Check, Severity, failed, passed, skipped, warned

# The installed distribution's own metadata is the one source of the supported ranges (pyproject.toml).
DISTRIBUTION = "deepsynth"
PACKAGES = ("torch", "transformers", "accelerate", "datasets", "huggingface-hub")
# The `train` extra: without it, generate works and the model side does not.
_MODEL_SIDE = frozenset({"torch", "transformers", "accelerate"})
# pyproject.toml's `train` extra, for installs whose metadata predates it (an old egg-info).
_TRAIN_EXTRA = {"torch": ">=2.13", "transformers": ">=5.18,<6", "accelerate": ">=1.15"}


def supported_ranges() -> dict[str, SpecifierSet]:
    """Requirement specifiers of deepsynth (all extras) by normalised package name, plus `python`."""
    ranges: dict[str, SpecifierSet] = {}
    try:
        requires = importlib.metadata.requires(DISTRIBUTION) or []
        python = importlib.metadata.metadata(DISTRIBUTION)["Requires-Python"] or ""
    except importlib.metadata.PackageNotFoundError:
        return {}
    for line in requires:
        requirement = Requirement(line)
        ranges[requirement.name.lower().replace("_", "-")] = requirement.specifier
    ranges["python"] = SpecifierSet(python)
    for package, specifier in _TRAIN_EXTRA.items():
        ranges.setdefault(package, SpecifierSet(specifier))
    return ranges


def installed_versions() -> dict[str, str | None]:
    """The installed version of each checked package (None: not installed), without importing any of them."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def check_versions(versions: Mapping[str, str | None], ranges: Mapping[str, SpecifierSet]) -> list[Check]:
    """`env:NAME`: each version inside deepsynth's declared range. torch/transformers/accelerate are `train`."""
    checks = []
    for package, version in versions.items():
        name = f"env:{package}"
        wanted = ranges.get(package, SpecifierSet())
        severity: Severity = "critical" if package in ("python", "datasets", "huggingface-hub") else "high"
        install = f"pip install '{package}{wanted}'" if package != "python" else f"use Python {wanted}"
        if version is None:
            if package in _MODEL_SIDE:
                checks.append(warned(name, "medium", f"{package} is not installed (needed by train)", install))
            else:
                checks.append(failed(name, severity, f"{package} is not installed", install))
            continue
        try:
            inside = Version(version) in wanted if wanted else True
        except InvalidVersion:
            inside = False
        if inside:
            checks.append(passed(name, severity, f"{package} {version} ({wanted or 'any version'})"))
        else:
            checks.append(failed(name, severity, f"{package} {version} is outside {wanted}", install))
    return checks


def check_model_classes() -> Check:
    """transformers ships DeepSeek-OCR-2 natively (no trust_remote_code), found without importing transformers."""
    name = "env:deepseek-ocr-2-classes"
    if importlib.util.find_spec("transformers") is None:
        return skipped(name, "transformers is not installed")
    if importlib.util.find_spec("transformers.models.deepseek_ocr2") is None:
        return failed(
            name, "high", "this transformers has no DeepseekOcr2 classes", "pip install 'transformers>=5.18,<6'"
        )
    return passed(name, "high", "transformers has DeepseekOcr2ForConditionalGeneration")


def check_gpu(precision: str) -> Check:
    """A config that trains in bf16/fp16 needs CUDA (and bf16 support for bf16)."""
    name = "env:gpu"
    if precision == "no":
        return skipped(name, "no config asks for mixed precision on a GPU")
    import torch

    if not torch.cuda.is_available():
        return failed(
            name,
            "high",
            f"precision {precision} asks for a GPU but CUDA is not available",
            "run on a CUDA machine, or set precision: no (CPU)",
        )
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        return failed(name, "high", "this GPU does not support bf16", "use precision: fp16 on this GPU")
    return passed(name, "high", f"CUDA on {torch.cuda.get_device_name(0)}, {precision} supported")


def check_disk(folders: Iterable[Path], min_free_gib: float) -> list[Check]:
    """`env:disk:FOLDER`: free space where outputs go (the nearest existing parent when not created yet)."""
    checks = []
    for folder in dict.fromkeys(Path(f).resolve() for f in folders):
        existing = folder
        while not existing.exists():
            existing = existing.parent
        free_gib = shutil.disk_usage(existing).free / 2**30
        name = f"env:disk:{folder}"
        message = f"{free_gib:.1f} GiB free for {folder}"
        if free_gib < min_free_gib:
            checks.append(failed(name, "high", message + f" (below {min_free_gib:g} GiB)", "free disk space there"))
        else:
            checks.append(passed(name, "high", message))
    return checks
