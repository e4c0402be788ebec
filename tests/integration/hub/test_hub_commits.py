"""Parts pre-upload their shards, one committer commits them at a bounded rate: the real huggingface_hub and
datasets clients against the loopback Hub."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import pytest

from deepsynth_cli.config import HubConfig
from deepsynth_cli.data import hub, hub_commits, rendered, shards
from deepsynth_cli.data.shards import ShardMeta, ShardWriter
from tests.support.hub_fixture import HubEnv

pytestmark = pytest.mark.hub
GAP_S = 1.5  # seconds between commits: max_commits_per_hour = 3600 / GAP_S
QUICK = HubConfig(
    backoff_s=0.01, attempts=4, commit_every=1, commit_interval_s=0, max_commits_per_hour=3600 / GAP_S, timeout_s=10
)
LFS_PUT = r"^/_lfs/"


@pytest.fixture
def hub_user(hub_env: HubEnv, monkeypatch: pytest.MonkeyPatch) -> HubEnv:
    monkeypatch.setenv("HF_USERNAME", hub_env.server.user)
    return hub_env


def _write_shard(folder: Path, part: int, parts: int, chunk: int, rows: int = 2) -> tuple[Path, ShardMeta]:
    """A real shard of `rows` rows whose source ids say where they came from."""
    writer = ShardWriter(folder, shards.shard_name("train", part, parts, chunk))
    for row in range(rows):
        writer.add(
            rendered.build_row(
                pages=[os.urandom(2000)], text=f"text {part}-{chunk}-{row}", summary="s", language="en",
                source_dataset="corpus", source_split="train", source_id=f"p{part}-c{chunk}-r{row}", text_tokens=3,
                source_tokens=3, dropped_chars=0, missing_glyphs=0, page_size=256,
            )
        )  # fmt: skip
    meta = ShardMeta(
        split="train", part=part, parts=parts, chunk=chunk, first_position=chunk * rows, positions=rows,
        end="full", limit=None, fingerprint="fp", rows=rows, pages=rows,
    )  # fmt: skip
    return writer.commit(meta), meta


def _describe(parts: hub_commits.Parts) -> dict[str, bytes]:
    """The real manifest and card of these parts."""
    metas = [meta for _, meta in hub.all_metas_named(parts)]
    header = {"generator": "test", "dataset": "corpus", "source": {"name": "corpus"}, "fingerprint": "fp"}
    return rendered.dataset_files(rendered.build_manifest(metas, header, 256))


def _commits_writing(hub_env: HubEnv, repo_id: str, path: str) -> int:
    """Commits of the repo's history that changed `path` (read from the test Hub's own store)."""
    repo = hub_env.server.store.get("dataset", repo_id)
    assert repo is not None
    history = repo.history(repo.resolve("main"))
    changed = 0
    for commit in history:
        parent = repo.commits.get(commit.parent) if commit.parent else None
        before = parent.files.get(path) if parent else None
        after = commit.files.get(path)
        changed += after is not None and (before is None or before.sha256 != after.sha256)
    return changed


def _source_ids(repo_id: str) -> Counter[str]:
    return Counter(datasets.load_dataset(repo_id, split="train")["source_id"])


def test_parts_in_threads_share_one_committer_at_a_bounded_rate(hub_env: HubEnv, tmp_path: Path) -> None:
    parts, per_part = 8, 4
    repo_id = f"{hub_env.server.user}/threads"
    notices: list[str] = []
    retry = hub.Retry(QUICK.attempts, QUICK.backoff_s, notices.append)
    api = hub.hub_api(hub_env.token, QUICK.timeout_s)
    target = hub.HubTarget(repo_id, private=False)
    hub.create_repo(api, target, retry)
    hub_env.server.fail_next("POST", r"/commit/", status=503, count=2)  # transient: the committer retries
    committer = hub_commits.HubCommitter.from_config(api, target, QUICK, retry)

    def part(index: int) -> None:
        uploader = hub_commits.ShardUploader(
            api, target, index, parts, {}, sink=committer, retry=retry, delete_after_commit=False, batch=1
        )
        time.sleep(index * 0.07)  # rendering takes time: shards arrive spread out, as from real parts
        for chunk in range(per_part):
            uploader.submit(*_write_shard(tmp_path / f"part-{index}", index, parts, chunk))
            time.sleep(0.6)
        uploader.close()

    started = time.monotonic()
    threads = [threading.Thread(target=part, args=(index,)) for index in range(parts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    committer.close(_describe)
    elapsed = time.monotonic() - started

    # commit_every=1: without the bound, every shard that arrives while no commit runs is a commit of its own.
    commits = hub_env.server.commit_count(repo_id)
    assert commits == committer.commits
    assert commits <= elapsed / GAP_S + 2, (commits, elapsed)  # measured: 3 in 3.1 s (33 without the bound)
    assert commits < parts * per_part / 4
    assert any("Hub: HTTP 503, retry 1/3" in notice for notice in notices), notices
    assert _commits_writing(hub_env, repo_id, rendered.MANIFEST_FILE) == 1, "the manifest is written once"
    assert _commits_writing(hub_env, repo_id, rendered.CARD_FILE) == 1, "and so is the card"

    state = hub.read_parts(api, repo_id)
    assert sorted(state) == [hub.part_file(index, parts) for index in range(parts)]
    assert all(len(listed) == per_part for listed in state.values()), "each part file lists all its shards"
    expected = Counter(f"p{p}-c{c}-r{r}" for p in range(parts) for c in range(per_part) for r in range(2))
    assert _source_ids(repo_id) == expected
    manifest = json.loads(hub_env.server.read_file(repo_id, rendered.MANIFEST_FILE))
    assert manifest["splits"]["train"]["rows"] == parts * per_part * 2


_CHILD = """
import pickle, sys
from pathlib import Path
from deepsynth_cli.data import hub, hub_commits, shards
token, repo_id, shard, out = sys.argv[1:5]
meta = shards.read_meta(Path(shard))
retry = hub.Retry(2, 0.01, print)
upload = hub_commits.preupload(
    hub.hub_api(token, 10), hub.HubTarget(repo_id, False), meta.part, meta.parts, [(Path(shard), meta)], {}, retry
)
Path(out).write_bytes(pickle.dumps(upload))
"""


def test_a_preupload_in_another_process_is_committed_without_sending_its_bytes_again(
    hub_env: HubEnv, tmp_path: Path
) -> None:
    repo_id = f"{hub_env.server.user}/handover"
    retry = hub.Retry(2, 0.01, lambda message: None)
    api = hub.hub_api(hub_env.token, 10)
    target = hub.HubTarget(repo_id, private=False)
    hub.create_repo(api, target, retry)
    handed: list[hub_commits.PreUploaded] = []
    for index in range(2):
        path, _ = _write_shard(tmp_path / "parts", index, 2, 0)
        out = tmp_path / f"upload-{index}.pickle"
        child = subprocess.run(
            [sys.executable, "-c", _CHILD, hub_env.token, repo_id, str(path), str(out)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert child.returncode == 0, child.stderr
        handed.append(pickle.loads(out.read_bytes()))
        path.unlink()  # the committer must not need the file: only its sha256 and size travel
    puts = len(hub_env.server.requests_to("PUT", LFS_PUT))
    assert puts == 2 and hub_env.server.commit_count(repo_id) == 0, "pre-uploaded, not committed"

    committer = hub_commits.HubCommitter(api, target, retry, max_commits_per_hour=60, commit_every=8,
                                         commit_interval_s=3600)  # fmt: skip
    for upload in handed:
        committer.submit(upload)
    committer.close(_describe)
    assert hub_env.server.commit_count(repo_id) == 1, "both parts' shards and the description in one commit"
    assert len(hub_env.server.requests_to("PUT", LFS_PUT)) == puts, "no shard bytes sent by the committer"
    assert sorted(hub.read_parts(api, repo_id)) == [hub.part_file(0, 2), hub.part_file(1, 2)]
    assert sum(_source_ids(repo_id).values()) == 4


@pytest.mark.integration
def test_a_part_killed_after_its_preupload_resumes_without_uploading_again(
    hub_user: HubEnv, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    corpus = make_jsonl([article(i) for i in range(8)])
    repo_id = f"{hub_user.server.user}/deepsynth-corpus"

    def part(index: int) -> list[str]:
        return [sys.executable, "-m", "deepsynth_cli", "generate", str(corpus), "--num-shards", "2", "--shard-index",
                str(index), "--rows-per-shard", "2", "--page-size", "256", "--font-size", "11"]  # fmt: skip

    env = {**os.environ, "DEEPSYNTH_CACHE_DIR": str(tmp_path / "machine-1")}  # staging: shards live only there
    # The first commit is held, then refused without effect: the part dies while it waits.
    hub_user.server.delay_next("POST", r"/commit/", seconds=20, count=1)
    hub_user.server.fail_next("POST", r"/commit/", status=500, count=1)
    process = subprocess.Popen(part(1), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not hub_user.server.requests_to("POST", r"/commit/"):
        time.sleep(0.05)
    assert hub_user.server.requests_to("POST", r"/commit/"), "the part reached its commit"
    process.send_signal(signal.SIGKILL)
    process.wait()
    preuploaded = len(hub_user.server.requests_to("PUT", LFS_PUT))
    assert preuploaded >= 1 and not hub.read_parts(hub.hub_api(hub_user.token), repo_id), "uploaded, uncommitted"

    rerun = subprocess.run([*part(1), "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["datasets"][0]["splits"]["train"]["shards_written"] == 0, "nothing rendered again"
    other = subprocess.run(part(0), capture_output=True, text=True, timeout=300,
                           env={**os.environ, "DEEPSYNTH_CACHE_DIR": str(tmp_path / "machine-0")})  # fmt: skip
    assert other.returncode == 0, other.stderr
    new_puts = len(hub_user.server.requests_to("PUT", LFS_PUT)) - preuploaded
    assert new_puts == 2, "only part 0's two shards were sent: part 1's were already in the Hub's storage"
    assert _source_ids(repo_id) == Counter(f"doc-{i:05d}" for i in range(8))
    manifest = json.loads(hub_user.server.read_file(repo_id, rendered.MANIFEST_FILE))
    assert manifest["splits"]["train"]["rows"] == 8 and manifest["parts_present"] == [0, 1]
