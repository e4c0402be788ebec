"""`deepsynth validate` without datasets or models: config, environment, score, exit codes and the JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from deepsynth_cli.cli.app import app
from deepsynth_cli.services.validate import ValidateReport
from deepsynth_cli.validation import Check, exit_code, score
from deepsynth_cli.validation.environment import check_versions, supported_ranges

runner = CliRunner()


def validate(*args: str) -> tuple[int, dict[str, Any]]:
    result = runner.invoke(app, ["validate", *args, "--json"])
    assert result.stdout.strip(), result.output
    return result.exit_code, json.loads(result.stdout)


def the_check(report: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [check for check in report["checks"] if check["name"] == name]
    assert found, [check["name"] for check in report["checks"]]
    return found[0]


def failures(report: dict[str, Any]) -> list[str]:
    return [check["name"] for check in report["checks"] if check["status"] in ("fail", "warn")]


def test_score_is_100_minus_10_per_critical_5_per_high_2_per_medium_floored_at_0() -> None:
    checks = [
        Check("a", "fail", "critical", ""),
        Check("b", "fail", "high", ""),
        Check("c", "warn", "medium", ""),
        Check("d", "fail", "low", ""),
        Check("e", "pass", "critical", ""),
        Check("f", "skip", "info", ""),
    ]
    assert score(checks) == 100 - 10 - 5 - 2
    assert score([Check(str(i), "fail", "critical", "") for i in range(11)]) == 0
    assert exit_code(checks) == 1
    assert exit_code([Check("c", "warn", "medium", ""), Check("w", "warn", "high", "")]) == 0


def test_every_shipped_config_is_valid() -> None:
    code, report = validate()
    names = [check["name"] for check in report["checks"] if check["name"].startswith("config:")]
    assert any("configs/generate/default.yaml" in name for name in names)
    assert any("configs/train/tiny.yaml" in name for name in names)
    assert not failures(report), report
    assert (code, report["score"]) == (0, 100)


def test_a_config_typo_is_reported_with_the_field_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "gen.yaml"
    path.write_text("datasets: [aclsum]\nrendr:\n  page_size: 512\nmax_samples: 0\n", encoding="utf-8")
    code, report = validate("--config", str(path))
    check = the_check(report, f"config:{path}")
    assert (check["status"], check["severity"]) == ("fail", "critical")
    # Every problem of the file at once, each with its field and what to do.
    assert "rendr" in check["message"] and "did you mean 'render'?" in check["message"]
    assert "max_samples" in check["message"]
    assert failures(report) == [f"config:{path}"]
    assert (code, report["score"]) == (1, 90)


def test_a_train_config_typo_names_the_known_key(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("data:\n  datasets: [aclsum]\noptim:\n  lrr: 0.001\n", encoding="utf-8")
    code, report = validate("--config", str(path))
    check = the_check(report, f"config:{path}")
    assert check["severity"] == "critical" and "optim.lrr" in check["message"] and "'lr'" in check["message"]
    assert code == 1


def test_with_no_arguments_every_yaml_in_configs_is_parsed(tmp_path: Path) -> None:
    (tmp_path / "configs" / "generate").mkdir(parents=True)
    (tmp_path / "configs" / "generate" / "good.yaml").write_text("datasets: [aclsum]\n", encoding="utf-8")
    (tmp_path / "configs" / "generate" / "bad.yaml").write_text("datasets: [aclsum\n", encoding="utf-8")
    code, report = validate()
    assert the_check(report, "config:configs/generate/good.yaml")["status"] == "pass"
    bad = the_check(report, "config:configs/generate/bad.yaml")
    assert (bad["status"], bad["severity"]) == ("fail", "critical") and "not valid YAML" in bad["message"]
    assert code == 1


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["validate", "--config", str(tmp_path / "nope.yaml"), "--json"])
    assert missing.exit_code == 2 and "config file not found" in missing.output
    assert runner.invoke(app, ["validate", "--sample", "0"]).exit_code == 2
    assert runner.invoke(app, ["validate", "--no-such-flag"]).exit_code == 2


def test_a_version_outside_the_supported_range_fails() -> None:
    checks = check_versions({"transformers": "4.46.0"}, supported_ranges())
    assert [(c.name, c.status, c.severity) for c in checks] == [("env:transformers", "fail", "high")]
    assert "outside" in checks[0].message and "pip install" in checks[0].hint
    report = ValidateReport(checks).to_dict()
    assert (report["score"], report["exit_code"]) == (95, 1)


def test_a_missing_model_side_package_is_a_warning_not_a_failure() -> None:
    checks = check_versions({"accelerate": None}, supported_ranges())
    assert [(c.name, c.status, c.severity) for c in checks] == [("env:accelerate", "warn", "medium")]
    assert ValidateReport(checks).exit_code == 0


def test_not_enough_free_disk_fails() -> None:
    code, report = validate("--min-free-gib", "1e12")
    disk = [check for check in report["checks"] if check["name"].startswith("env:disk:")]
    assert disk and all((c["status"], c["severity"]) == ("fail", "high") for c in disk)
    assert failures(report) == [c["name"] for c in disk]
    assert code == 1


def test_the_human_table_and_help_import_nothing_heavy() -> None:
    result = runner.invoke(app, ["validate"])
    assert result.exit_code == 0 and "score 100/100" in result.stdout
    probe = "import sys; from deepsynth_cli.cli.app import app; print(sorted({'torch', 'transformers', " \
        "'datasets', 'huggingface_hub'} & set(sys.modules)))"  # fmt: skip
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_serve_config_is_parsed_as_one(tmp_path: Path) -> None:
    pytest.importorskip("deepsynth_cli.serving.config", reason="serve is not in this checkout yet")
    (tmp_path / "configs" / "serve").mkdir(parents=True)
    (tmp_path / "configs" / "serve" / "good.yaml").write_text("port: 8001\n", encoding="utf-8")
    (tmp_path / "configs" / "serve" / "bad.yaml").write_text("prot: 8001\n", encoding="utf-8")
    code, report = validate()
    assert the_check(report, "config:configs/serve/good.yaml")["message"] == "valid serve config"
    bad = the_check(report, "config:configs/serve/bad.yaml")
    assert (bad["status"], bad["severity"]) == ("fail", "critical")
    assert bad["message"].startswith("serve config: prot") and "did you mean 'port'?" in bad["message"]
    assert failures(report) == ["config:configs/serve/bad.yaml"]
    assert (code, report["score"]) == (1, 90)
