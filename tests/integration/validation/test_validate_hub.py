"""Credentials and Hub datasets against the loopback Hub (the real huggingface_hub client)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from deepsynth_cli.cli.app import app
from deepsynth_cli.config import GenerateConfig, HubConfig, RenderConfig
from deepsynth_cli.services import generate
from tests.support.hub_fixture import HubEnv
from tests.unit.validation.test_validate_cli import failures, the_check, validate

pytestmark = pytest.mark.hub


def push_config(tmp_path: Path, repo_id: str) -> Path:
    path = tmp_path / "push.yaml"
    path.write_text(f"datasets: [aclsum]\nstore: hub\nrepo_id: {repo_id}\n", encoding="utf-8")
    return path


def test_a_valid_token_that_can_write_the_target_repo(hub_env: HubEnv, tmp_path: Path) -> None:
    repo = f"{hub_env.server.user}/deepsynth-aclsum"
    code, report = validate("--config", str(push_config(tmp_path, repo)))
    assert the_check(report, "hub:whoami")["message"].startswith(f"token of {hub_env.server.user}")
    assert the_check(report, f"hub:write:{repo}")["status"] == "pass"
    assert failures(report) == [] and (code, report["score"]) == (0, 100)


def test_a_bad_token_is_rejected_and_never_printed(
    hub_env: HubEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = "hf_not_a_real_token_0123456789"
    monkeypatch.setenv("HF_TOKEN", bad)
    config = push_config(tmp_path, f"{hub_env.server.user}/deepsynth-aclsum")
    result = CliRunner().invoke(app, ["validate", "--config", str(config), "--json"])
    human = CliRunner().invoke(app, ["validate", "--config", str(config)])
    assert bad not in result.output and bad not in human.output
    code, report = validate("--config", str(config))
    check = the_check(report, "hub:whoami")
    assert (check["status"], check["severity"]) == ("fail", "critical") and "401" in check["message"]
    assert failures(report) == ["hub:whoami"]
    assert (code, report["score"]) == (1, 90)


def test_no_token_when_the_hub_is_the_store(hub_env: HubEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN")
    code, report = validate("--config", str(push_config(tmp_path, "someone/deepsynth-aclsum")))
    check = the_check(report, "hub:token")
    assert (check["status"], check["severity"]) == ("fail", "critical")
    assert failures(report) == ["hub:token"] and code == 1


def test_a_repo_in_another_namespace_is_not_writable(hub_env: HubEnv, tmp_path: Path) -> None:
    code, report = validate("--config", str(push_config(tmp_path, "someone-else/deepsynth-aclsum")))
    check = the_check(report, "hub:write:someone-else/deepsynth-aclsum")
    assert (check["status"], check["severity"]) == ("fail", "high")
    assert failures(report) == [check["name"]]
    assert (code, report["score"]) == (1, 95)


def test_a_dataset_on_the_hub_is_validated_like_a_local_one(
    hub_env: HubEnv,
    tmp_path: Path,
    make_jsonl: Callable[..., Path],
    article: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_USERNAME", hub_env.server.user)
    make_jsonl([article(i, 300) for i in range(3)], "corpus/train.jsonl")
    render = RenderConfig(page_size=384, font_size=12, margin=12)
    fast = HubConfig(backoff_s=0.01, attempts=2, timeout_s=10)
    cfg = GenerateConfig(datasets=[str(tmp_path / "corpus")], num_workers=1, render=render, hub=fast, store="hub")
    generate.run(cfg, lambda event: None)
    name = f"hf://datasets/{hub_env.server.user}/deepsynth-corpus"
    code, report = validate("--datasets", name)
    assert the_check(report, f"dataset:{name}:found")["message"].endswith("train 3")
    assert the_check(report, "hub:whoami")["status"] == "pass"
    assert failures(report) == [] and (code, report["score"]) == (0, 100)
    # By name, resolved like train does ({HF_USERNAME}/deepsynth-NAME): the credentials are checked too.
    code, report = validate("--datasets", "corpus")
    assert the_check(report, "dataset:corpus:found")["message"].startswith(name)
    assert the_check(report, "hub:whoami")["status"] == "pass"
    assert (code, report["score"]) == (0, 100)


def test_reading_the_hub_without_a_token_is_only_a_warning(hub_env: HubEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN")
    name = f"hf://datasets/{hub_env.server.user}/missing"
    code, report = validate("--datasets", name)
    token = the_check(report, "hub:token")
    assert (token["status"], token["severity"]) == ("warn", "low")
    assert the_check(report, f"dataset:{name}:found")["severity"] == "critical"
    assert failures(report) == [f"dataset:{name}:found", "hub:token"]
    assert (code, report["score"]) == (1, 90)
