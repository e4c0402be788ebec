"""`validate` decides what a YAML is from its keys, not from the folder it sits in."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deepsynth_cli.validation.configs import check_config

CONFIGS = Path(__file__).resolve().parents[3] / "configs"


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("serve/default.yaml", "serve"),
        ("eval/default.yaml", "eval"),
        ("generate/billsum.yaml", "generate"),
    ],
)
def test_a_config_copied_out_of_its_folder_keeps_its_kind(tmp_path: Path, source: str, kind: str) -> None:
    copy = tmp_path / "mine.yaml"
    shutil.copy(CONFIGS / source, copy)
    check, loaded = check_config(copy)
    assert check.status == "pass", check.message
    assert check.message == f"valid {kind} config" and loaded is not None and loaded.kind == kind


def test_a_serve_config_in_the_generate_folder_is_still_a_serve_config(tmp_path: Path) -> None:
    folder = tmp_path / "configs" / "generate"
    folder.mkdir(parents=True)
    (folder / "api.yaml").write_text("host: 127.0.0.1\nport: 8000\nbatching:\n  max_batch_size: 4\n")
    check, loaded = check_config(folder / "api.yaml")
    assert check.message == "valid serve config" and loaded is not None and loaded.kind == "serve"


def test_a_typo_in_a_serve_config_is_reported_against_the_serve_schema(tmp_path: Path) -> None:
    path = tmp_path / "api.yaml"
    path.write_text("host: 127.0.0.1\nport: 8000\nbatchng:\n  max_batch_size: 4\n")
    check, _ = check_config(path)
    assert check.status == "fail"
    assert check.message.startswith("serve config: ") and "did you mean 'batching'?" in check.message
