"""`generate` with the Hub as the store: the real huggingface_hub and datasets clients against a loopback Hub."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from deepsynth_cli.cli.app import app
from deepsynth_cli.config import GenerateConfig, HubConfig
from deepsynth_cli.data.store import load_split, resolve_dataset
from deepsynth_cli.errors import DatasetError
from deepsynth_cli.services import generate
from deepsynth_cli.settings import get_settings
from tests.support.hub_fixture import HubEnv

pytestmark = pytest.mark.hub
FAST_RETRY = HubConfig(backoff_s=0.01, attempts=4, commit_every=2, commit_interval_s=30, timeout_s=5)
MakeCfg = Callable[..., GenerateConfig]


@pytest.fixture
def hub(hub_env: HubEnv, monkeypatch: pytest.MonkeyPatch) -> HubEnv:
    monkeypatch.setenv("HF_USERNAME", hub_env.server.user)
    return hub_env


def _corpus(make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]], n: int) -> Path:
    return make_jsonl([article(i) for i in range(n)])


def _repo_ids(hub: HubEnv, repo_id: str) -> Counter[str]:
    ids: Counter[str] = Counter()
    for path in hub.server.list_files(repo_id):
        if path.endswith(".parquet"):
            local = hub.cache_dir / "read.parquet"
            local.write_bytes(hub.server.read_file(repo_id, path))
            ids.update(row["source_id"] for row in pq.read_table(local, columns=["source_id"]).to_pylist())
    return ids


def test_first_push_lands_as_a_loadable_dataset_with_a_card(
    hub: HubEnv, generate_cfg: MakeCfg, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    events: list[object] = []
    cfg = generate_cfg([str(_corpus(make_jsonl, article, 7))], rows_per_shard=2, hub=FAST_RETRY, out=None)
    report = generate.run(cfg, events.append).datasets[0]
    repo_id = f"{hub.server.user}/deepsynth-corpus"
    assert report.location == f"hf://datasets/{repo_id}"
    files = hub.server.list_files(repo_id)
    shard_files = [f"data/train-00000-of-00001-0000{i}.parquet" for i in range(4)]
    assert [f for f in files if f.startswith("data/")] == shard_files
    assert {"README.md", "manifest.json", "deepsynth/part-00000-of-00001.json"} <= set(files)
    # Shards travel a few per commit, not one commit per file: 4 shards at 2 per commit, then the description.
    assert hub.server.commit_count(repo_id) <= 4
    staging = get_settings().cache_dir / "staging"
    assert not list(staging.rglob("*.parquet")), "staged shards are deleted once uploaded (no --out given)"
    assert any("store: Hub dataset repo" in str(getattr(e, "message", "")) for e in events)

    loaded = datasets.load_dataset(repo_id, split="train")
    assert sorted(loaded["source_id"]) == [f"doc-{i:05d}" for i in range(7)]
    assert loaded[0]["pages"][0].size == (256, 256)
    streamed = datasets.load_dataset(repo_id, split="train", streaming=True)
    assert sum(1 for _ in streamed) == 7

    card = hub.server.read_file(repo_id, "README.md").decode()
    metadata = yaml.safe_load(card.split("---")[1])
    assert metadata["task_categories"] == ["summarization", "image-to-text"]
    assert metadata["configs"][0]["data_files"] == [{"split": "train", "path": "data/train-*"}]
    assert metadata["deepsynth"]["rows"] == {"train": 7}
    assert metadata["size_categories"] == ["n<1K"]
    manifest = json.loads(hub.server.read_file(repo_id, "manifest.json"))
    assert manifest["splits"]["train"]["rows"] == 7


def test_card_metadata_for_a_registry_dataset(hub: HubEnv, generate_cfg: MakeCfg) -> None:
    generate.run(generate_cfg(["aclsum"], max_samples=2, hub=FAST_RETRY, out=None, private=True))
    repo_id = f"{hub.server.user}/deepsynth-aclsum"
    metadata = yaml.safe_load(hub.server.read_file(repo_id, "README.md").decode().split("---")[1])
    assert metadata["language"] == ["en"] and metadata["license"] == "mit"
    assert [entry["split"] for entry in metadata["configs"][0]["data_files"]] == ["train", "validation", "test"]
    assert "Takeshita" in hub.server.read_file(repo_id, "README.md").decode(), "the source's citation is on the card"
    # --private: invisible without the token
    with pytest.raises(datasets.exceptions.DatasetNotFoundError):
        datasets.load_dataset(repo_id, split="test", token=False)
    assert datasets.load_dataset(repo_id, split="test").num_rows == 2


def test_without_credentials_the_store_is_local(
    hub: HubEnv, generate_cfg: MakeCfg, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_TOKEN")
    events: list[object] = []
    report = generate.run(generate_cfg(["aclsum"], max_samples=1, splits=["test"]), events.append)
    assert not report.datasets[0].location.startswith("hf://")
    assert any("store: local folder" in str(getattr(e, "message", "")) for e in events)
    assert hub.server.requests == []


def test_transient_errors_are_retried_and_nothing_is_lost(
    hub: HubEnv, generate_cfg: MakeCfg, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    hub.server.fail_next("POST", r"/commit/", status=500, count=2)
    hub.server.fail_next("POST", r"/preupload/", status=503, count=1)
    cfg = generate_cfg([str(_corpus(make_jsonl, article, 5))], rows_per_shard=2, hub=FAST_RETRY)
    generate.run(cfg)
    assert _repo_ids(hub, f"{hub.server.user}/deepsynth-corpus") == Counter(f"doc-{i:05d}" for i in range(5))


def test_a_stalled_commit_times_out_and_is_retried(
    hub: HubEnv, generate_cfg: MakeCfg, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    hub.server.delay_next("POST", r"/commit/", seconds=2.5, count=1)
    quick = FAST_RETRY.model_copy(update={"timeout_s": 1.0})
    generate.run(generate_cfg([str(_corpus(make_jsonl, article, 3))], rows_per_shard=2, hub=quick))
    assert _repo_ids(hub, f"{hub.server.user}/deepsynth-corpus") == Counter(f"doc-{i:05d}" for i in range(3))


def test_failed_upload_keeps_the_shards_and_a_rerun_finishes_without_rendering_again(
    hub: HubEnv, generate_cfg: MakeCfg, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    path = _corpus(make_jsonl, article, 6)
    hub.server.fail_next("POST", r"/commit/", status=500, count=100)
    with pytest.raises(Exception, match="kept failing") as caught:
        generate.run(generate_cfg([str(path)], rows_per_shard=2, hub=FAST_RETRY, out=None))
    assert "run the same command again" in caught.value.hint  # type: ignore[attr-defined]
    staged = list((get_settings().cache_dir / "staging").rglob("*.parquet"))
    assert len(staged) == 3, "a failed upload never deletes local data"

    hub.server.clear_faults()
    report = generate.run(generate_cfg([str(path)], rows_per_shard=2, hub=FAST_RETRY, out=None)).datasets[0]
    assert report.splits["train"].shards_written == 0, "the staged shards are uploaded, not rendered again"
    assert _repo_ids(hub, f"{hub.server.user}/deepsynth-corpus") == Counter(f"doc-{i:05d}" for i in range(6))


def test_staged_shards_the_hub_already_holds_are_deleted_on_the_next_run(
    hub: HubEnv, generate_cfg: MakeCfg, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    """A run killed after a commit but before deleting the staged files leaves them in the cache: the next run
    finds them in the repo and deletes them (it neither uploads nor renders them again)."""
    path = _corpus(make_jsonl, article, 4)
    cfg = generate_cfg([str(path)], rows_per_shard=2, hub=FAST_RETRY, out=None)
    generate.run(cfg)
    repo_id = f"{hub.server.user}/deepsynth-corpus"
    staging = get_settings().cache_dir / "staging" / repo_id.replace("/", "__") / "data"
    assert not list(staging.glob("*.parquet"))
    staging.mkdir(parents=True, exist_ok=True)  # as the killed run left them: committed, still staged
    for name in [f for f in hub.server.list_files(repo_id) if f.startswith("data/")]:
        (staging / Path(name).name).write_bytes(hub.server.read_file(repo_id, name))
    commits = hub.server.commit_count(repo_id)
    events: list[object] = []
    report = generate.run(cfg, events.append).datasets[0]
    assert not list(staging.glob("*.parquet")), "staged copies of committed shards are deleted"
    assert any("deleted 2 staged shard(s) the Hub already holds" in str(getattr(e, "message", "")) for e in events)
    assert report.splits["train"].shards_written == 0 and hub.server.commit_count(repo_id) <= commits + 1
    assert _repo_ids(hub, repo_id) == Counter(f"doc-{i:05d}" for i in range(4))


def test_resume_on_another_machine_reads_the_repo(
    hub: HubEnv, generate_cfg: MakeCfg, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:  # fmt: skip
    path = _corpus(make_jsonl, article, 8)
    generate.run(generate_cfg([str(path)], rows_per_shard=2, max_samples=4, hub=FAST_RETRY))
    # "Another machine": a fresh cache and output folder, only the repo in common.
    fresh = generate_cfg([str(path)], rows_per_shard=2, hub=FAST_RETRY, out=tmp_path / "elsewhere")
    report = generate.run(fresh).datasets[0]
    assert (report.splits["train"].shards_reused, report.splits["train"].shards_written) == (2, 2)
    assert _repo_ids(hub, f"{hub.server.user}/deepsynth-corpus") == Counter(f"doc-{i:05d}" for i in range(8))
    assert len(list((tmp_path / "elsewhere" / "corpus" / "data").glob("*.parquet"))) == 2, "--out keeps a copy"


def test_concurrent_machines_share_one_repo_without_overwriting(
    hub: HubEnv, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    path = _corpus(make_jsonl, article, 30)
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "deepsynth_cli", "generate", str(path), "--num-shards", "2", "--shard-index",
             str(index), "--rows-per-shard", "3", "--page-size", "256", "--font-size", "11", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "DEEPSYNTH_CACHE_DIR": str(tmp_path / f"machine-{index}")},
        )
        for index in range(2)
    ]  # fmt: skip
    for run in runs:
        _, stderr = run.communicate(timeout=300)
        assert run.returncode == 0, stderr
    repo_id = f"{hub.server.user}/deepsynth-corpus"
    assert _repo_ids(hub, repo_id) == Counter(f"doc-{i:05d}" for i in range(30))
    files = hub.server.list_files(repo_id)
    assert {"deepsynth/part-00000-of-00002.json", "deepsynth/part-00001-of-00002.json"} <= set(files)
    assert Counter(datasets.load_dataset(repo_id, split="train")["source_id"]) == Counter(
        f"doc-{i:05d}" for i in range(30)
    )
    manifest = json.loads(hub.server.read_file(repo_id, "manifest.json"))
    assert manifest["splits"]["train"]["rows"] == 30 and manifest["parts_present"] == [0, 1]


@pytest.mark.integration
def test_kill_mid_upload_then_rerun_gives_every_row_once(
    hub: HubEnv, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    path = _corpus(make_jsonl, article, 12)
    hub.server.delay_next("POST", r"/commit/", seconds=3, count=1)
    args = [sys.executable, "-m", "deepsynth_cli", "generate", str(path), "--rows-per-shard", "2",
            "--page-size", "256", "--font-size", "11"]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not hub.server.requests_to("POST", r"/commit/"):
        time.sleep(0.02)
    assert hub.server.requests_to("POST", r"/commit/") or process.poll() is None
    process.send_signal(signal.SIGKILL)
    process.wait()
    rerun = subprocess.run([*args, "--json"], capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    repo_id = f"{hub.server.user}/deepsynth-corpus"
    assert _repo_ids(hub, repo_id) == Counter(f"doc-{i:05d}" for i in range(12))
    assert datasets.load_dataset(repo_id, split="train").num_rows == 12


def test_list_shows_hub_rows_and_names_resolve_through_the_hub(hub: HubEnv, generate_cfg: MakeCfg) -> None:
    generate.run(generate_cfg(["aclsum"], max_samples=2, splits=["test"], hub=FAST_RETRY, out=None))
    result = CliRunner().invoke(app, ["generate", "--list", "--json"])
    assert result.exit_code == 0, result.stderr
    listing = json.loads(result.stdout)
    entries = {entry["key"]: entry for entry in listing["datasets"]}
    assert listing["hub_status"] == "checked"
    assert entries["aclsum"]["hub_rows"] == {"test": 2} and entries["aclsum"]["local"] is False
    assert entries["mlsum_fr"]["hub"] is False

    location = resolve_dataset("aclsum", get_settings())  # not local: found as {HF_USERNAME}/deepsynth-aclsum
    assert location.kind == "hub" and location.repo_id == f"{hub.server.user}/deepsynth-aclsum"
    streamed = load_split(location, "test", get_settings(), streaming=True)
    assert len(list(streamed)) == 2
    explicit = resolve_dataset(f"hf://datasets/{hub.server.user}/deepsynth-aclsum", get_settings())
    assert load_split(explicit, "test", get_settings()).num_rows == 2
    with pytest.raises(DatasetError, match="not found"):
        resolve_dataset("xsum", get_settings())
    with pytest.raises(DatasetError, match=r"Unknown split|splits"):
        load_split(location, "nope", get_settings())


def test_the_token_never_leaves_the_authorization_header(
    hub: HubEnv, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    path = _corpus(make_jsonl, article, 4)
    out = tmp_path / "copy"
    result = CliRunner().invoke(
        app, ["generate", str(path), "--out", str(out), "--rows-per-shard", "2", "--page-size", "256", "--json"]
    )
    assert result.exit_code == 0, result.stderr
    failing = CliRunner().invoke(app, ["generate", str(path), "--repo-id", "someone-else/x", "--page-size", "256"])
    token = hub.token
    assert token not in result.stdout + result.stderr + failing.stdout + failing.stderr
    written = [p for p in [*out.rglob("*"), *Path(get_settings().cache_dir).rglob("*")] if p.is_file()]
    assert written and not [p for p in written if token.encode() in p.read_bytes()]
    repo_id = f"{hub.server.user}/deepsynth-corpus"
    assert not [f for f in hub.server.list_files(repo_id) if token.encode() in hub.server.read_file(repo_id, f)]
    for request in hub.server.requests:
        assert token not in request.path and token not in str(request.query)
    assert any(header == f"Bearer {token}" for header in hub.server.authorization_headers())
