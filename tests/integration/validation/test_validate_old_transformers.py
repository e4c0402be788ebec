"""`deepsynth validate` in a real process whose transformers predates DeepSeek-OCR-2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_a_transformers_without_deepseek_ocr2_fails_the_run(tmp_path: Path) -> None:
    # A transformers package first on the path, laid out like a release before the model was added: the same
    # installed metadata (version in range), no models/deepseek_ocr2/.
    fake = tmp_path / "site" / "transformers"
    (fake / "models" / "llava").mkdir(parents=True)
    for init in (fake / "__init__.py", fake / "models" / "__init__.py", fake / "models" / "llava" / "__init__.py"):
        init.write_text("", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    result = subprocess.run(
        [sys.executable, "-m", "deepsynth_cli", "validate", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    report = json.loads(result.stdout)
    (check,) = [check for check in report["checks"] if check["name"] == "env:deepseek-ocr-2-classes"]
    assert (check["status"], check["severity"]) == ("fail", "high")
    assert "has no DeepseekOcr2ForConditionalGeneration" in check["message"]
    assert [c["name"] for c in report["checks"] if c["status"] in ("fail", "warn")] == [check["name"]]
    assert (result.returncode, report["score"], report["exit_code"]) == (1, 95, 1)
