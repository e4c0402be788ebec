"""`deepsynth serve`: registered, configured from YAML and flags, clear errors when it cannot start."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from deepsynth_cli.cli.app import app
from deepsynth_cli.serving.config import ServeConfig, load_serve_config

DEFAULT_YAML = Path(__file__).resolve().parents[3] / "configs" / "serve" / "default.yaml"
runner = CliRunner()


def test_serve_is_a_command_with_help() -> None:
    assert "serve" in runner.invoke(app, ["--help"]).output
    shown = runner.invoke(app, ["serve"])  # no arguments: the help, not a server
    assert "--model" in shown.output and "--port" in shown.output and "--max-batch-size" in shown.output


def test_shipped_yaml_and_precedence(tmp_path: Path) -> None:
    shipped = load_serve_config(DEFAULT_YAML)
    assert shipped.model_dump(exclude={"model"}) == ServeConfig(model="x").model_dump(exclude={"model"})
    assert shipped.host == "127.0.0.1"  # loopback unless told otherwise
    job = tmp_path / "serve.yaml"
    job.write_text("model: runs/fr\nport: 9000\nbatching: {max_batch_size: 4, max_wait_ms: 5}\n", encoding="utf-8")
    cfg = load_serve_config(job, {"port": 9100, "batching.max_batch_size": None, "host": None})
    assert (cfg.model, cfg.port, cfg.batching.max_batch_size, cfg.batching.max_wait_ms) == ("runs/fr", 9100, 4, 5)


def test_config_typos_and_missing_model_are_usage_errors(tmp_path: Path) -> None:
    job = tmp_path / "serve.yaml"
    job.write_text("model: tiny\nbatching: {max_batch: 4}\n", encoding="utf-8")
    result = runner.invoke(app, ["serve", "--config", str(job)])
    assert result.exit_code == 2 and "batching.max_batch" in result.output
    result = runner.invoke(app, ["serve", "--config", str(DEFAULT_YAML)])
    assert result.exit_code == 2 and "no model" in result.output


def test_a_model_that_cannot_be_served_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEEPSYNTH_API_KEY", "dsk-secret-never-shown")
    missing = tmp_path / "no-such-model"
    result = runner.invoke(app, ["serve", "--model", str(missing), "--port", "0"])
    assert result.exit_code == 2, result.output  # a mistyped path: refused before the server starts
    assert "unknown model" in result.output and "Traceback" not in result.output
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{not json", encoding="utf-8")
    result = runner.invoke(app, ["serve", "--model", str(broken), "--port", "0"])
    assert result.exit_code == 2, result.output  # the load itself failed, in the lifespan: its error, one line
    assert result.output.strip().splitlines()[-2].startswith(f"error: cannot load the folder {broken}")
    assert "dsk-secret-never-shown" not in result.output
