"""Environment checks: versions against the ranges deepsynth declares, the model classes, GPU, disk, fonts."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from deepsynth_cli.validation import Check, Severity, failed, passed, skipped, warned

# The installed distribution's own metadata is the one source of the supported ranges (pyproject.toml).
DISTRIBUTION = "deepsynth"
PACKAGES = ("torch", "transformers", "accelerate", "datasets", "huggingface-hub")
# The `train` extra: without it, generate works and the model side does not.
TRAIN_EXTRA = "train"
_MODEL_SIDE = frozenset({"torch", "transformers", "accelerate"})
# Where a source checkout declares them, for an editable install whose metadata predates the `train` extra.
_PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
# Where transformers defines the DeepSeek-OCR-2 classes deepsynth loads (file -> class).
MODEL_CLASSES_FOLDER = "models/deepseek_ocr2"
MODEL_CLASSES = {
    "modeling_deepseek_ocr2.py": "DeepseekOcr2ForConditionalGeneration",
    "processing_deepseek_ocr2.py": "DeepseekOcr2Processor",
}


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def ranges_from(requires: Iterable[str], python: str = "") -> dict[str, SpecifierSet]:
    """Specifiers by normalised package name from `Requires-Dist` lines (every extra), plus `python`."""
    ranges = {_normalise(Requirement(line).name): Requirement(line).specifier for line in requires}
    ranges["python"] = SpecifierSet(python)
    return ranges


def _pyproject_requires(path: Path) -> tuple[list[str], str]:
    """`[project]` dependencies and every optional dependency of a checkout's pyproject.toml."""
    import tomllib

    project = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {})
    extras = project.get("optional-dependencies", {})
    lines = [*project.get("dependencies", []), *(line for group in extras.values() for line in group)]
    return lines, str(project.get("requires-python", ""))


def supported_ranges(distribution: importlib.metadata.Distribution | None = None) -> dict[str, SpecifierSet]:
    """Requirement specifiers of deepsynth (all extras) by normalised package name, plus `python`, read from the
    installed distribution's metadata. An editable install made before the `train` extra existed has metadata
    without it: the checkout's pyproject.toml (what a reinstall would write) is read instead. Nothing found: {}."""
    try:
        distribution = distribution or importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return {}
    requires = distribution.requires or []
    python = distribution.metadata["Requires-Python"] or ""
    has_train = any(f'extra == "{TRAIN_EXTRA}"' in line.replace("'", '"') for line in requires)
    if not has_train and distribution.metadata["Name"] == DISTRIBUTION and _PYPROJECT.is_file():
        requires, python = _pyproject_requires(_PYPROJECT)
    return ranges_from(requires, python)


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


def check_model_classes(
    package: str = "transformers", folder: str = MODEL_CLASSES_FOLDER, classes: Mapping[str, str] = MODEL_CLASSES
) -> Check:
    """transformers ships DeepSeek-OCR-2 natively (no trust_remote_code): its `models/deepseek_ocr2` files define
    the classes deepsynth uses. Read from the installed package's files: importing transformers costs seconds."""
    name = "env:deepseek-ocr-2-classes"
    spec = importlib.util.find_spec(package)
    if spec is None:
        return skipped(name, f"{package} is not installed")
    roots = [Path(root) / folder for root in spec.submodule_search_locations or []]
    missing = [cls for file, cls in classes.items() if not any(_defines(root / file, cls) for root in roots)]
    if missing:
        wanted = supported_ranges().get("transformers", SpecifierSet()) if package == "transformers" else ""
        return failed(
            name,
            "high",
            f"this {package} {_version(package)} has no {', '.join(missing)} ({folder} is missing or older)",
            f"pip install '{package}{wanted}'",
        )
    return passed(name, "high", f"{package} has {', '.join(classes.values())}")


def _defines(path: Path, cls: str) -> bool:
    try:
        return f"\nclass {cls}(" in path.read_text(encoding="utf-8")
    except OSError:
        return False


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"


@dataclass(frozen=True)
class Cuda:
    """What the GPU check needs to know about this machine."""

    available: bool
    bf16: bool = False
    device: str = ""


def probe_cuda() -> Cuda | None:
    """This machine's CUDA, from torch (None: torch is not installed)."""
    if importlib.util.find_spec("torch") is None:
        return None
    import torch

    if not torch.cuda.is_available():
        return Cuda(available=False)
    return Cuda(True, bool(torch.cuda.is_bf16_supported()), str(torch.cuda.get_device_name(0)))


def check_gpu(precision: str, cuda: Cuda | None = None) -> Check:
    """A config that trains in bf16/fp16 needs CUDA (and bf16 support for bf16). `cuda`: probed when not given."""
    name = "env:gpu"
    if precision == "no":
        return skipped(name, "no config asks for mixed precision on a GPU")
    cuda = cuda or probe_cuda()
    if cuda is None:
        return failed(name, "high", f"precision {precision} needs torch, which is not installed", "pip install torch")
    if not cuda.available:
        return failed(
            name,
            "high",
            f"precision {precision} asks for a GPU but CUDA is not available",
            "run on a CUDA machine, or set precision: no (CPU)",
        )
    if precision == "bf16" and not cuda.bf16:
        return failed(name, "high", f"this GPU ({cuda.device}) does not support bf16", "use precision: fp16 on it")
    return passed(name, "high", f"CUDA on {cuda.device}, {precision} supported")


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
