"""`deepsynth eval` on a Hub dataset and a local one at once (the loopback Hub, the real `datasets` client)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("accelerate", reason="needs the train extra", exc_type=ModuleNotFoundError)

from typer.testing import CliRunner

from deepsynth_cli.cli.app import app
from deepsynth_cli.config import GenerateConfig, HubConfig, RenderConfig
from deepsynth_cli.services import generate
from tests.support.hub_fixture import HubEnv

pytestmark = pytest.mark.hub

RENDER = RenderConfig(page_size=384, font_size=12, margin=12, max_pages=1)


def test_a_hub_dataset_and_a_local_one_are_scored_side_by_side(
    hub_env: HubEnv,
    tmp_path: Path,
    make_jsonl: Callable[..., Path],
    article: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_USERNAME", hub_env.server.user)
    make_jsonl([article(i, 40) for i in range(3)], "remote/test.jsonl")
    fast = HubConfig(backoff_s=0.01, attempts=2, timeout_s=10)
    generate.run(
        GenerateConfig(datasets=[str(tmp_path / "remote")], num_workers=1, render=RENDER, hub=fast, store="hub"),
        lambda event: None,
    )
    make_jsonl([article(i, 40) for i in range(10, 12)], "local/test.jsonl")
    generate.run(
        GenerateConfig(
            datasets=[str(tmp_path / "local")], out=tmp_path / "data", num_workers=1, render=RENDER, store="local"
        ),
        lambda event: None,
    )
    remote = f"hf://datasets/{hub_env.server.user}/deepsynth-remote"
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        ["eval", "--model", "tiny", "--datasets", remote, str(tmp_path / "data" / "local"), "--max-new-tokens", "4",
         "--language", "en", "--output", str(out), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert [(group["dataset"], group["rows"]) for group in metrics["groups"]] == [("deepsynth-remote", 3), ("local", 2)]
    assert metrics["datasets"]["deepsynth-remote"]["location"] == remote
    assert all(group["baselines"]["lead-3"]["rouge"]["rouge1"]["f1"]["mean"] > 0 for group in metrics["groups"])
    assert metrics["totals"]["errors"] == 0
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count('<img src="data:image/jpeg;base64,') == 5  # pages decoded by `datasets` (PIL) and by pyarrow
