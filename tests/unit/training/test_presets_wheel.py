"""The presets ship in the wheel: built from this tree, unpacked, imported on its own (not the checkout, not the
editable install), every preset resolves to the same whole TrainConfig as from the checkout."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from deepsynth_cli.models.preset_config import PRESETS
from deepsynth_cli.training.config import load_train_config

ROOT = Path(__file__).resolve().parents[3]
_RESOLVE = """
import json, sys, deepsynth_cli
from deepsynth_cli.models.preset_config import PRESETS
from deepsynth_cli.training.config import load_train_config
configs = {name: load_train_config(None, {"model.model": name, "data.datasets": ["x"]}).model_dump(mode="json")
           for name in PRESETS}
print(json.dumps({"package": deepsynth_cli.__file__, "configs": configs}))
"""


def _build_wheel(tmp_path: Path) -> Path:
    # A copy of what the build reads, so the build leaves nothing (build/, *.egg-info) in the checkout.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "MANIFEST.in", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "deepsynth_cli", source / "deepsynth_cli", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    subprocess.run([*command, "-w", str(wheels), str(source)], check=True, capture_output=True, timeout=240)
    (wheel,) = wheels.glob("deepsynth-*.whl")
    return wheel


def test_every_preset_resolves_the_same_from_the_wheel(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"deepsynth_cli/presets/{name}.yaml" for name in PRESETS} <= set(names)

    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {**os.environ, "PYTHONPATH": str(site)}  # the unpacked wheel first: before the editable install's finder
    out = subprocess.run(
        [sys.executable, "-c", _RESOLVE], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(result["package"]).is_relative_to(site), result["package"]
    for name in PRESETS:
        here = load_train_config(None, {"model.model": name, "data.datasets": ["x"]}).model_dump(mode="json")
        assert result["configs"][name] == here, name
    tiny = result["configs"]["tiny"]["optim"]
    assert (tiny["lr"], tiny["max_steps"], tiny["batch_size"]) == (1e-3, 50, 2)  # tiny.yaml, not the defaults
