"""`generate --executor ray` into the loopback Hub: the parts' tasks pre-upload their shards and hand them to one
committer (a Ray actor), so N parts make a bounded number of commits and the manifest and card are written once."""

from __future__ import annotations

import hashlib
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import datasets
import psutil
import pytest

from deepsynth_cli import processes
from deepsynth_cli.config import GenerateConfig, HubConfig
from deepsynth_cli.data import hub, rendered
from deepsynth_cli.data.hub import HubError
from deepsynth_cli.services import generate
from deepsynth_cli.settings import get_settings
from tests.integration.ray.conftest import loopback_ray
from tests.support.hub_fixture import HubEnv
from tests.support.hub_server import HubServer

pytestmark = [pytest.mark.integration, pytest.mark.hub]
GAP_S = 1.5
# commit_every=1 and no interval: without the bound, every shard that arrives while no commit runs is a commit.
BOUNDED = HubConfig(
    backoff_s=0.01, attempts=3, commit_every=1, commit_interval_s=0, max_commits_per_hour=3600 / GAP_S, timeout_s=10
)


@pytest.fixture(scope="module")
def hub_ray(hub_server_session: HubServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A local Ray whose workers talk to the session's test Hub (they read the endpoint when they start)."""
    env = {
        "HF_ENDPOINT": hub_server_session.endpoint,
        "HF_HOME": str(tmp_path_factory.mktemp("ray-hf-home")),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_OFFLINE": "0",
        "HF_DATASETS_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    with loopback_ray(env) as ray:
        yield ray


@pytest.fixture
def hub_user(hub_env: HubEnv, monkeypatch: pytest.MonkeyPatch) -> HubEnv:
    monkeypatch.setenv("HF_USERNAME", hub_env.server.user)
    return hub_env


def _manifest_commits(hub_env: HubEnv, repo_id: str) -> int:
    """Commits that changed manifest.json, from the test Hub's own history."""
    repo = hub_env.server.store.get("dataset", repo_id)
    assert repo is not None
    changed = 0
    for commit in repo.history(repo.resolve("main")):
        parent = repo.commits.get(commit.parent) if commit.parent else None
        before = parent.files.get(rendered.MANIFEST_FILE) if parent else None
        after = commit.files.get(rendered.MANIFEST_FILE)
        changed += after is not None and (before is None or before.sha256 != after.sha256)
    return changed


def test_ray_parts_share_one_committer_at_a_bounded_rate(
    hub_ray: Any,
    hub_user: HubEnv,
    generate_cfg: Callable[..., GenerateConfig],
    make_jsonl: Callable[..., Path],
    article: Callable[..., dict[str, Any]],
) -> None:
    parts, docs = 4, 16
    path = make_jsonl([article(n) for n in range(docs)])
    cfg = generate_cfg([str(path)], out=None, executor="ray", num_shards=parts, rows_per_shard=1, hub=BOUNDED,
                       store="hub")  # fmt: skip
    started = time.monotonic()
    report = generate.run(cfg).datasets[0]
    elapsed = time.monotonic() - started

    repo_id = f"{hub_user.server.user}/deepsynth-corpus"
    commits = hub_user.server.commit_count(repo_id)
    assert report.commits == commits, "every commit is the committer's; the parts make none"
    assert all(part.commits == 0 and part.uploaded_bytes > 0 for part in report.parts), "parts pre-upload only"
    assert commits <= elapsed / GAP_S + 2 and commits < docs / 2, (commits, elapsed)
    assert _manifest_commits(hub_user, repo_id) == 1, "manifest and card are written once, when all parts are done"

    api = hub.hub_api(hub_user.token)
    state = hub.read_parts(api, repo_id)
    assert sorted(state) == [hub.part_file(part, parts) for part in range(parts)]
    assert sum(len(shards) for shards in state.values()) == docs, "each part's accounting landed with its shards"
    manifest = json.loads(hub_user.server.read_file(repo_id, rendered.MANIFEST_FILE))
    assert manifest["splits"]["train"]["rows"] == docs and manifest["parts_present"] == list(range(parts))
    loaded = datasets.load_dataset(repo_id, split="train")
    assert Counter(loaded["source_id"]) == Counter(f"doc-{n:05d}" for n in range(docs))
    staging = get_settings().cache_dir / "staging"
    assert not list(staging.rglob("*.parquet")), "staged shards go once the actor's commit holds them"

    # A rerun finds every part complete in the repo: nothing rendered, nothing committed.
    again = generate.run(cfg).datasets[0]
    assert all(part.splits["train"].shards_written == 0 for part in again.parts)
    assert hub_user.server.commit_count(repo_id) == commits and again.commits == 0, "an unchanged repo: no commit"


def test_a_refused_commit_in_the_actor_stops_the_run_with_one_line(
    hub_ray: Any,
    hub_user: HubEnv,
    generate_cfg: Callable[..., GenerateConfig],
    make_jsonl: Callable[..., Path],
    article: Callable[..., dict[str, Any]],
) -> None:
    hub_user.server.fail_next("POST", r"/commit/", status=403, count=100)
    path = make_jsonl([article(n) for n in range(6)])
    cfg = generate_cfg([str(path)], executor="ray", num_shards=2, rows_per_shard=1, hub=BOUNDED, store="hub")
    with pytest.raises(HubError) as refused:
        generate.run(cfg)
    repo_id = f"{hub_user.server.user}/deepsynth-corpus"
    assert f"no write access to {repo_id}" in refused.value.message and "\n" not in refused.value.message
    assert "token with write access" in refused.value.hint
    assert list((Path(cfg.out or "") / "corpus" / "data").glob("*.parquet")), "local shards are kept"


def test_a_worker_killed_after_its_preupload_is_retried_and_every_row_lands_once(
    hub_ray: Any,
    hub_user: HubEnv,
    generate_cfg: Callable[..., GenerateConfig],
    make_jsonl: Callable[..., Path],
    article: Callable[..., dict[str, Any]],
) -> None:
    docs = 160
    path = make_jsonl([article(n, words=150) for n in range(docs)])
    held = BOUNDED.model_copy(update={"commit_every": 1000, "commit_interval_s": 3600})  # no commit before the end
    cfg = generate_cfg([str(path)], out=None, executor="ray", num_shards=2, rows_per_shard=10, store="hub",
                       hub=held)  # fmt: skip
    result: dict[str, Any] = {}
    run = threading.Thread(target=lambda: result.update(report=generate.run(cfg)), daemon=True)
    run.start()

    staging = get_settings().cache_dir / "staging" / f"{hub_user.server.user}__deepsynth-corpus"
    first = staging / "data" / "train-00000-of-00002-00000.parquet"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.is_alive() and not first.exists():
        time.sleep(0.02)
    oid = hashlib.sha256(first.read_bytes()).hexdigest()
    while time.monotonic() < deadline and not hub_user.server.requests_to("PUT", rf"^/_lfs/.*/{oid}$"):
        time.sleep(0.02)
    assert hub_user.server.requests_to("PUT", rf"^/_lfs/.*/{oid}$"), "part 0 pre-uploaded nothing in time"
    assert hub_user.server.commit_count(f"{hub_user.server.user}/deepsynth-corpus") == 0, "nothing committed yet"
    holder = (staging / processes.lock_file(0, 2)).read_text()  # "pid N on HOST, started ..."
    worker = psutil.Process(int(holder.split()[1]))
    assert worker.name().startswith("ray::"), worker.cmdline()
    worker.send_signal(signal.SIGKILL)
    run.join(timeout=240)
    assert not run.is_alive(), "the run did not finish after the kill"

    report = result["report"].datasets[0]
    assert report.parts[0].attempts == 2, "Ray ran part 0 again"
    assert report.parts[0].splits["train"].shards_reused >= 1, "the retry kept what the killed attempt finished"
    assert len(hub_user.server.requests_to("PUT", rf"^/_lfs/.*/{oid}$")) == 1, "its bytes were not sent again"
    repo_id = f"{hub_user.server.user}/deepsynth-corpus"
    loaded = datasets.load_dataset(repo_id, split="train")
    assert Counter(loaded["source_id"]) == Counter(f"doc-{n:05d}" for n in range(docs)), "every row exactly once"
    manifest = json.loads(hub_user.server.read_file(repo_id, rendered.MANIFEST_FILE))
    assert manifest["splits"]["train"]["rows"] == docs and manifest["parts_present"] == [0, 1]


def test_ray_parts_upload_to_one_repo_that_loads_whole(
    hub_ray: Any,
    hub_user: HubEnv,
    generate_cfg: Callable[..., GenerateConfig],
    make_jsonl: Callable[..., Path],
    article: Callable[..., dict[str, Any]],
) -> None:
    """The default rate (60 commits an hour): one commit as soon as 2 shards wait, the rest in the last one."""
    path = make_jsonl([article(n) for n in range(20)])
    quick = HubConfig(backoff_s=0.01, attempts=3, commit_every=2, commit_interval_s=30, timeout_s=10)
    cfg = generate_cfg([str(path)], executor="ray", num_shards=2, rows_per_shard=3, hub=quick, out=None)
    report = generate.run(cfg).datasets[0]

    repo_id = f"{hub_user.server.user}/deepsynth-corpus"
    files = hub_user.server.list_files(repo_id)
    assert {"deepsynth/part-00000-of-00002.json", "deepsynth/part-00001-of-00002.json", "manifest.json"} <= set(files)
    per_part = [part["rows"] for part in report.to_dict()["parts"]]
    assert sum(per_part) == 20 and all(per_part)
    shards = [name for name in files if name.startswith("data/")]
    assert len(shards) == sum(-(-rows // 3) for rows in per_part) >= 7  # 3 rows per shard
    # 7 or 8 shards at 2 per commit would be 4 commits per part plus a description each; the committer's gap (60 s)
    # leaves one commit during the run and the last one, with the description.
    assert report.commits == hub_user.server.commit_count(repo_id) <= 2
    loaded = datasets.load_dataset(repo_id, split="train")
    assert sorted(loaded["source_id"]) == [f"doc-{n:05d}" for n in range(20)]
