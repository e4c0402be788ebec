"""Credentials and Hub datasets against the loopback Hub (the real huggingface_hub client)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from deepsynth_cli.cli.app import app
from deepsynth_cli.config import GenerateConfig, RenderConfig
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
    hub_env.publish(tmp_path / "corpus", RenderConfig(page_size=384, font_size=12, margin=12))
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


def hub_corpus(
    hub_env: HubEnv, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]], tmp_path: Path
) -> str:
    """`{user}/deepsynth-corpus` on the test Hub: 4 train and 2 test rows, one row per shard (6 shards)."""
    make_jsonl([article(i, 300) for i in range(4)], "corpus/train.jsonl")
    make_jsonl([article(i, 300) for i in range(10, 12)], "corpus/test.jsonl")
    render = RenderConfig(page_size=384, font_size=12, margin=12)
    hub_env.publish(tmp_path / "corpus", render, rows_per_shard=1, repo_id=f"{hub_env.server.user}/deepsynth-corpus")
    return f"{hub_env.server.user}/deepsynth-corpus"


def shard_requests(hub_env: HubEnv) -> list[str]:
    """The shard files the clients asked the Hub for (metadata or content), by file name."""
    paths = [r.path for r in hub_env.server.requests if "/resolve/" in r.path and "/data/" in r.path]
    return sorted({path.rsplit("/", 1)[1] for path in paths})


def test_sampling_a_hub_dataset_downloads_only_the_shards_it_needs(
    hub_env: HubEnv, tmp_path: Path, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    repo = hub_corpus(hub_env, make_jsonl, article, tmp_path)
    assert len([path for path in hub_env.server.list_files(repo) if path.startswith("data/")]) == 6
    hub_env.server.requests.clear()
    name = f"hf://datasets/{repo}"
    code, report = validate("--datasets", name, "--sample", "1")
    # The first shard of each split, not the 4 others: a big dataset costs what its sample costs.
    assert shard_requests(hub_env) == ["test-00000-of-00001-00000.parquet", "train-00000-of-00001-00000.parquet"]
    assert hub_env.server.requests_to("GET", r"/resolve/[^/]+/manifest\.json$")
    # ... and of those, byte ranges (footer, text column, the row groups decoded), never a whole download.
    reads = [r for r in hub_env.server.requests_to("GET", r"/resolve/[^/]+/data/")]
    assert reads and all(r.headers.get("range", "").startswith("bytes=") for r in reads)
    # Row counts still cover every shard (from the part files), and agree with the manifest.
    assert the_check(report, f"dataset:{name}:found")["message"].endswith("test 2, train 4")
    assert the_check(report, f"dataset:{name}:row-counts")["status"] == "pass"
    assert the_check(report, f"dataset:{name}:leakage")["message"].endswith("(texts of 2 of 6 rows read)")
    assert failures(report) == [] and (code, report["score"]) == (0, 100)
    # Two rows per split need the second shard of each, and no more.
    hub_env.server.requests.clear()
    code, report = validate("--datasets", name, "--sample", "2")
    assert shard_requests(hub_env) == [f"{split}-00000-of-00001-0000{chunk}.parquet" for split in ("test", "train")
                                       for chunk in (0, 1)]  # fmt: skip
    assert (code, report["score"]) == (0, 100)


def test_a_shard_missing_from_a_hub_dataset_is_counted(
    hub_env: HubEnv, tmp_path: Path, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    from huggingface_hub import HfApi

    repo = hub_corpus(hub_env, make_jsonl, article, tmp_path)
    # The part file still describes it, the repo no longer holds it: the manifest's 4 train rows are not there.
    HfApi(token=hub_env.token).delete_file("data/train-00000-of-00001-00003.parquet", repo, repo_type="dataset")
    name = f"hf://datasets/{repo}"
    code, report = validate("--datasets", name, "--sample", "1")
    check = the_check(report, f"dataset:{name}:row-counts")
    assert (check["status"], check["severity"]) == ("fail", "high")
    assert check["message"] == "train: 3 rows, manifest says 4"
    assert failures(report) == [check["name"]]
    assert (code, report["score"]) == (1, 95)


READ, WRITE = ["repo.content.read"], ["repo.content.read", "repo.write"]


@pytest.mark.parametrize(
    ("role", "scoped", "status"),
    [
        ("read", None, "fail"),
        ("fineGrained", [("dataset", "{user}/deepsynth-aclsum", WRITE)], "pass"),
        ("fineGrained", [("user", "{user}", WRITE)], "pass"),
        ("fineGrained", [("dataset", "{user}/other", WRITE), ("dataset", "{user}/deepsynth-aclsum", READ)], "fail"),
        ("fineGrained", [("model", "{user}/deepsynth-aclsum", WRITE)], "fail"),  # a model repo of the same name
    ],
    ids=["read", "fine-grained-repo", "fine-grained-namespace", "fine-grained-read-only-here", "fine-grained-model"],
)
def test_a_valid_token_may_still_be_unable_to_write_the_target_repo(
    hub_env: HubEnv,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    role: str,
    scoped: list[tuple[str, str, list[str]]] | None,
    status: str,
) -> None:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    user = hub_env.server.user
    scopes = [(kind, target.format(user=user), permissions) for kind, target, permissions in scoped or []]
    token = hub_env.server.add_token(role=role, scoped=scopes)
    monkeypatch.setenv("HF_TOKEN", token)
    repo = f"{user}/deepsynth-aclsum"
    code, report = validate("--config", str(push_config(tmp_path, repo)))
    assert the_check(report, "hub:whoami")["status"] == "pass"
    check = the_check(report, f"hub:write:{repo}")
    assert (check["status"], check["severity"]) == (status, "high")
    assert token not in json.dumps(report)
    # What validate predicts is what the Hub then does with that token.
    hub_env.server.create_repo(repo)
    api = HfApi(token=token)
    if status == "pass":
        assert failures(report) == [] and (code, report["score"]) == (0, 100)
        api.upload_file(path_or_fileobj=b"{}", path_in_repo="probe.json", repo_id=repo, repo_type="dataset")
    else:
        assert failures(report) == [check["name"]] and (code, report["score"]) == (1, 95)
        with pytest.raises(HfHubHTTPError) as refused:
            api.upload_file(path_or_fileobj=b"{}", path_in_repo="probe.json", repo_id=repo, repo_type="dataset")
        assert refused.value.response.status_code == 403


def test_a_train_config_that_pushes_checks_its_model_repo(
    hub_env: HubEnv,
    tmp_path: Path,
    make_jsonl: Callable[..., Path],
    article: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    make_jsonl([article(i, 300) for i in range(2)], "corpus/train.jsonl")
    render = RenderConfig(page_size=384, font_size=12, margin=12)
    generate.run(GenerateConfig(datasets=[str(tmp_path / "corpus")], out=tmp_path / "out", num_workers=1,
                                render=render, store="local"), lambda event: None)  # fmt: skip
    config = tmp_path / "train.yaml"
    dataset = tmp_path / "out" / "corpus"
    config.write_text(f"data:\n  datasets: ['{dataset}']\npush_to_hub: my-model\n", encoding="utf-8")
    monkeypatch.setenv("HF_TOKEN", hub_env.server.add_token(role="fineGrained", scoped=[("dataset", "x/y", WRITE)]))
    monkeypatch.setenv("HF_USERNAME", hub_env.server.user)  # train pushes NAME to HF_USERNAME/NAME
    code, report = validate("--config", str(config))
    check = the_check(report, f"hub:write:{hub_env.server.user}/my-model")
    assert (check["status"], check["severity"]) == ("fail", "high") and "the model" in check["message"]
    assert failures(report) == [check["name"]]
    assert (code, report["score"]) == (1, 95)
    # Without HF_USERNAME, train names it under the token's user (whoami), as the Hub client would.
    monkeypatch.delenv("HF_USERNAME")
    code, report = validate("--config", str(config))
    assert the_check(report, f"hub:write:{hub_env.server.user}/my-model")["status"] == "fail"
    # With neither HF_USERNAME nor a token, train could not name the repo: that is the failure, not a guess.
    monkeypatch.delenv("HF_TOKEN")
    code, report = validate("--config", str(config))
    check = the_check(report, "hub:write:my-model")
    assert (check["status"], check["severity"]) == ("fail", "high") and "no HF_USERNAME" in check["message"]
    assert check["name"] in failures(report)


def test_a_hub_that_does_not_answer_whoami(hub_env: HubEnv, tmp_path: Path) -> None:
    hub_env.server.fail_next("GET", r"^/api/whoami-v2$", status=503, count=10)
    code, report = validate("--config", str(push_config(tmp_path, f"{hub_env.server.user}/deepsynth-aclsum")))
    check = the_check(report, "hub:whoami")
    assert (check["status"], check["severity"]) == ("fail", "critical")
    assert check["message"] == "cannot reach the Hub (HTTP 503)" and check["hint"] == "check the network"
    assert failures(report) == ["hub:whoami"]  # no write verdict without knowing who the token is
    assert not any(c["name"].startswith("hub:write:") for c in report["checks"])
    assert (code, report["score"]) == (1, 90)
