"""Environment checks of `deepsynth validate`: the supported ranges come from deepsynth's own metadata, and each
test breaks one thing (the DeepSeek-OCR-2 classes, CUDA, bf16) and asserts the check, severity, exit code and JSON."""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

from deepsynth_cli.config import GenerateConfig, RenderConfig
from deepsynth_cli.services import generate
from deepsynth_cli.validation.environment import (
    MODEL_CLASSES,
    Cuda,
    check_gpu,
    check_model_classes,
    check_versions,
    supported_ranges,
)
from tests.unit.validation.test_validate_cli import failures, the_check, validate

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"


def distribution(tmp_path: Path, *requires: str, python: str = ">=3.11") -> importlib.metadata.Distribution:
    """An installed-looking deepsynth distribution whose METADATA declares `requires`."""
    info = tmp_path / "deepsynth-9.9.9.dist-info"
    info.mkdir()
    lines = ["Metadata-Version: 2.1", "Name: deepsynth", "Version: 9.9.9", f"Requires-Python: {python}"]
    lines += [f"Requires-Dist: {line}" for line in requires]
    (info / "METADATA").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return importlib.metadata.PathDistribution(info)


def test_supported_ranges_are_read_from_the_installed_metadata(tmp_path: Path) -> None:
    train = ['transformers<10,>=9.1; extra == "train"', 'torch>=3; extra == "train"']
    ranges = supported_ranges(distribution(tmp_path, "datasets>=4.0", *train, python=">=3.99"))
    assert ranges["transformers"] == SpecifierSet(">=9.1,<10") and ranges["torch"] == SpecifierSet(">=3")
    assert ranges["python"] == SpecifierSet(">=3.99")
    checks = check_versions({"transformers": "5.18.0", "python": "3.11.9"}, ranges)
    assert [(c.name, c.status, c.severity) for c in checks] == [
        ("env:transformers", "fail", "high"),
        ("env:python", "fail", "critical"),
    ]
    assert "outside <10,>=9.1" in checks[0].message


def test_the_ranges_are_the_ones_pyproject_declares() -> None:
    """No second copy: what validate enforces is what pyproject.toml (dependencies and every extra) declares."""
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"].values()
    declared = [*project["dependencies"], *(line for extra in extras for line in extra)]
    ranges = supported_ranges()
    for line in declared:
        requirement = Requirement(line)
        assert ranges[requirement.name.lower().replace("_", "-")] == requirement.specifier, line
    assert ranges["python"] == SpecifierSet(project["requires-python"])
    assert ranges["transformers"] == SpecifierSet(">=5.18,<6")  # the train extra, whatever the install's age


def test_metadata_older_than_the_train_extra_falls_back_to_the_checkout(tmp_path: Path) -> None:
    """An editable install made before `train` existed has no ranges for it: pyproject.toml is read instead."""
    ranges = supported_ranges(distribution(tmp_path, "typer>=0.20", 'pytest>=8; extra == "dev"'))
    train = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["optional-dependencies"]["train"]
    for line in train:
        assert ranges[Requirement(line).name] == Requirement(line).specifier


def test_a_transformers_without_the_deepseek_ocr2_files_fails(tmp_path: Path) -> None:
    pytest.importorskip("transformers", reason="needs the train extra", exc_type=ModuleNotFoundError)
    check = check_model_classes(folder="models/deepseek_ocr1")  # where an older transformers has nothing
    assert (check.name, check.status, check.severity) == ("env:deepseek-ocr-2-classes", "fail", "high")
    assert "no DeepseekOcr2ForConditionalGeneration, DeepseekOcr2Processor" in check.message
    assert check.hint.startswith("pip install 'transformers") and ">=5.18" in check.hint
    # The folder is there but a class is not (a release with the model and without its processor).
    partial = check_model_classes(classes={**MODEL_CLASSES, "processing_deepseek_ocr2.py": "DeepseekOcr2Processorr"})
    assert partial.status == "fail" and "no DeepseekOcr2Processorr (" in partial.message
    assert check_model_classes().status == "pass"
    assert check_model_classes(package="no_such_package_here").status == "skip"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small clean dataset, for train configs (validate checks the datasets a given train config names)."""
    render = RenderConfig(page_size=384, font_size=12, margin=12)
    out = tmp_path_factory.mktemp("rendered")
    cfg = GenerateConfig(datasets=["aclsum"], out=out, num_workers=1, max_samples=1, render=render)
    return Path(generate.run(cfg, lambda event: None).datasets[0].location)


def train_config(tmp_path: Path, dataset: Path, precision: str) -> Path:
    path = tmp_path / "train.yaml"
    path.write_text(f"data:\n  datasets: ['{dataset}']\nprecision: '{precision}'\n", encoding="utf-8")
    return path


def test_a_clean_train_config_scores_100(tmp_path: Path, rendered: Path) -> None:
    code, report = validate("--config", str(train_config(tmp_path, rendered, "no")))
    assert the_check(report, "env:gpu")["status"] == "skip"
    assert failures(report) == [] and (code, report["score"]) == (0, 100)


def test_bf16_without_a_gpu_fails(tmp_path: Path, rendered: Path) -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, report = validate("--config", str(train_config(tmp_path, rendered, "bf16")))
    gpu = the_check(report, "env:gpu")
    assert (gpu["status"], gpu["severity"]) == ("fail", "high") and "CUDA is not available" in gpu["message"]
    assert failures(report) == ["env:gpu"]
    assert (code, report["score"]) == (1, 95)


def test_a_gpu_without_bf16_fails_bf16_and_passes_fp16(
    tmp_path: Path, rendered: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch = pytest.importorskip("torch")
    # A pre-Ampere card, as torch reports it (the third-party probe is replaced, not deepsynth's check).
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args, **kwargs: "Tesla T4")
    code, report = validate("--config", str(train_config(tmp_path, rendered, "bf16")))
    gpu = the_check(report, "env:gpu")
    assert (gpu["status"], gpu["severity"]) == ("fail", "high")
    assert gpu["message"] == "this GPU (Tesla T4) does not support bf16" and "fp16" in gpu["hint"]
    assert failures(report) == ["env:gpu"]
    assert (code, report["score"]) == (1, 95)
    code, report = validate("--config", str(train_config(tmp_path, rendered, "fp16")))
    assert the_check(report, "env:gpu")["message"] == "CUDA on Tesla T4, fp16 supported"
    assert (code, report["score"]) == (0, 100)


def test_the_gpu_check_on_given_facts() -> None:
    assert check_gpu("bf16", Cuda(True, bf16=True, device="H100")).status == "pass"
    assert (check_gpu("bf16", Cuda(True, bf16=False, device="T4")).status, "high") == ("fail", "high")
    assert check_gpu("fp16", Cuda(False)).message == "precision fp16 asks for a GPU but CUDA is not available"
    assert check_gpu("no", Cuda(False)).status == "skip"
