"""The test Hub against the real clients: `huggingface_hub` (HfApi, hf_hub_download, snapshot_download,
HfFileSystem) and `datasets` (load_dataset, streaming or not). If one of these fails after a client upgrade,
`hub_server.unhandled` lists the requests the server did not know."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the test Hub needs fastapi and uvicorn (dev extras)")
pytest.importorskip("uvicorn", reason="the test Hub needs fastapi and uvicorn (dev extras)")

import datasets
import httpx2
import pyarrow as pa
import pyarrow.parquet as pq
from huggingface_hub import (
    CommitOperationAdd,
    HfApi,
    HfFileSystem,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from PIL import Image

from tests.support.hub_fixture import HubEnv
from tests.support.hub_server import HubServer, HubStore

pytestmark = [
    pytest.mark.hub,
    # Raised inside huggingface_hub's LFS upload (`data=` with raw bytes), not by anything tested here.
    pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning"),
]

REPO = "test-user/pages"
SHARD = "data/train-00000-of-00001-00000.parquet"
CARD = """---
license: mit
configs:
- config_name: default
  data_files:
  - split: train
    path: data/train-*
---
# Pages
"""


def _png(index: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (index * 40 % 256, 0, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_shard(path: Path, rows: int = 3) -> None:
    """A Parquet shard with an Image column the way `datasets` writes it: struct<bytes, path> + features metadata."""
    summaries = [f"summary {i}" for i in range(rows)]
    images = [{"bytes": _png(i), "path": None} for i in range(rows)]
    features = {"image": {"_type": "Image"}, "summary": {"dtype": "string", "_type": "Value"}}
    schema = pa.schema(
        [("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])), ("summary", pa.string())],
        metadata={"huggingface": json.dumps({"info": {"features": features}})},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pydict({"image": images, "summary": summaries}, schema=schema), path)


def _dataset_folder(tmp_path: Path, with_card: bool = True) -> Path:
    folder = tmp_path / "upload"
    _write_shard(folder / SHARD)
    if with_card:
        (folder / "README.md").write_text(CARD)
    return folder


def _uploaded(tmp_path: Path, with_card: bool = True) -> HfApi:
    api = HfApi()
    api.create_repo(REPO, repo_type="dataset")
    api.upload_folder(folder_path=_dataset_folder(tmp_path, with_card), repo_id=REPO, repo_type="dataset")
    return api


def test_create_repo_public_private_and_exist_ok(hub_env: HubEnv) -> None:
    api = HfApi()
    url = api.create_repo(REPO, repo_type="dataset")
    assert url == f"{hub_env.endpoint}/datasets/{REPO}"
    api.create_repo("test-user/weights", private=True)

    with pytest.raises(HfHubHTTPError) as conflict:
        api.create_repo(REPO, repo_type="dataset")
    assert conflict.value.response.status_code == 409
    assert api.create_repo(REPO, repo_type="dataset", exist_ok=True) == url

    assert api.dataset_info(REPO).private is False
    assert api.model_info("test-user/weights").private is True
    assert api.repo_exists(REPO, repo_type="dataset")
    assert not api.repo_exists(REPO)  # a model repo of that name does not exist
    assert api.whoami()["name"] == hub_env.server.user


def test_upload_folder_lists_and_downloads(hub_env: HubEnv, tmp_path: Path) -> None:
    api = _uploaded(tmp_path)

    assert api.list_repo_files(REPO, repo_type="dataset") == [".gitattributes", "README.md", SHARD]
    assert api.file_exists(REPO, SHARD, repo_type="dataset")
    assert not api.file_exists(REPO, "data/missing.parquet", repo_type="dataset")
    local = hf_hub_download(REPO, SHARD, repo_type="dataset")
    assert Path(local).read_bytes() == (tmp_path / "upload" / SHARD).read_bytes()
    assert Path(local).is_relative_to(hub_env.cache_dir)  # the cache is the test's, not the developer's
    snapshot = Path(snapshot_download(REPO, repo_type="dataset"))
    assert (snapshot / "README.md").read_text() == CARD

    # The Parquet shard went through git-LFS (batch + PUT), the card inline in the commit.
    puts = hub_env.server.requests_to("PUT", r"^/_lfs/")
    assert len(puts) == 1 and hub_env.server.read_file(REPO, SHARD) == Path(local).read_bytes()
    assert hub_env.server.read_file(REPO, "README.md").decode() == CARD


def test_token_goes_only_to_the_hub_api(hub_env: HubEnv, tmp_path: Path) -> None:
    _uploaded(tmp_path)
    # LFS content goes to a (presigned) storage URL: the client must not attach the token there.
    storage = hub_env.server.requests_to("PUT", r"^/_lfs/")
    assert len(storage) == 1 and storage[0].authorization is None
    hub_api = [r.authorization for r in hub_env.server.requests if r not in storage]
    assert set(hub_api) == {f"Bearer {hub_env.token}"}
    assert len(hub_env.server.authorization_headers()) == len(hub_api) + 1


@pytest.mark.parametrize("with_card", [True, False], ids=["card-configs", "no-card"])
def test_load_dataset_streaming_and_not(hub_env: HubEnv, tmp_path: Path, with_card: bool) -> None:
    _uploaded(tmp_path, with_card)
    expected = [f"summary {i}" for i in range(3)]

    loaded = datasets.load_dataset(REPO, split="train")
    assert loaded["summary"] == expected
    assert loaded[0]["image"].size == (8, 8)  # decoded by the Image feature
    streamed = list(datasets.load_dataset(REPO, split="train", streaming=True))
    assert [row["summary"] for row in streamed] == expected
    assert hub_env.server.unhandled == []


def test_hf_file_system_ls_glob_and_range_reads(hub_env: HubEnv, tmp_path: Path) -> None:
    _uploaded(tmp_path)
    fs = HfFileSystem()
    root = f"datasets/{REPO}"

    assert fs.ls(f"{root}/data", detail=False) == [f"{root}/{SHARD}"]
    assert fs.glob(f"{root}/**/*.parquet") == [f"{root}/{SHARD}"]
    with fs.open(f"{root}/README.md", block_size=8) as f:
        f.seek(4)
        assert f.read(7) == CARD.encode()[4:11]
    ranged = hub_env.server.requests_to("GET", r"/resolve/.*/README\.md$")
    assert any("range" in r.headers for r in ranged)


def test_private_repo_is_invisible_without_token(hub_env: HubEnv, tmp_path: Path) -> None:
    api = HfApi()
    api.create_repo(REPO, repo_type="dataset", private=True)
    api.upload_folder(folder_path=_dataset_folder(tmp_path), repo_id=REPO, repo_type="dataset")

    anonymous = HfApi(token=False)
    assert not anonymous.repo_exists(REPO, repo_type="dataset")
    with pytest.raises(RepositoryNotFoundError):
        anonymous.list_repo_files(REPO, repo_type="dataset")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(REPO, "README.md", repo_type="dataset", token=False)
    with pytest.raises(datasets.exceptions.DatasetNotFoundError):
        datasets.load_dataset(REPO, split="train", token=False)
    with pytest.raises(HfHubHTTPError) as wrong:
        HfApi(token="hf_test_wrong").whoami()
    assert wrong.value.response.status_code == 401

    assert api.repo_exists(REPO, repo_type="dataset")
    assert datasets.load_dataset(REPO, split="train").num_rows == 3


def test_injected_500_on_commit_raises_and_leaves_repo_unchanged(hub_env: HubEnv) -> None:
    api = HfApi()
    api.create_repo(REPO, repo_type="dataset")
    head = hub_env.server.head(REPO)
    hub_env.server.fail_next("POST", rf"/api/datasets/{REPO}/commit/", status=500)

    # huggingface_hub does not retry the commit POST (a retried commit could land twice): it raises at once.
    with pytest.raises(HfHubHTTPError) as failed:
        api.upload_file(path_or_fileobj=b"hello", path_in_repo="a.txt", repo_id=REPO, repo_type="dataset")
    assert failed.value.response.status_code == 500
    assert len(hub_env.server.requests_to("POST", r"/commit/")) == 1
    assert hub_env.server.head(REPO) == head
    assert hub_env.server.list_files(REPO) == [".gitattributes"]
    assert hub_env.server.commit_count(REPO) == 0

    api.upload_file(path_or_fileobj=b"hello", path_in_repo="a.txt", repo_id=REPO, repo_type="dataset")
    assert hub_env.server.read_file(REPO, "a.txt") == b"hello"


def test_delay_longer_than_timeout_raises_timeout(hub_env: HubEnv) -> None:
    api = HfApi()
    api.create_repo(REPO, repo_type="dataset")
    hub_env.server.delay_next("GET", rf"^/api/datasets/{REPO}$", seconds=1.0)

    started = time.monotonic()
    with pytest.raises(httpx2.TimeoutException):  # HfApi calls raise httpx2's timeout as is (no retry)
        api.dataset_info(REPO, timeout=0.2)
    assert time.monotonic() - started < 0.9
    assert api.dataset_info(REPO, timeout=5).id == REPO  # the fault was used up


def test_download_timeout_falls_back_to_the_cache(hub_env: HubEnv) -> None:
    api = HfApi()
    api.create_repo(REPO, repo_type="dataset")
    api.upload_file(path_or_fileobj=CARD.encode(), path_in_repo="README.md", repo_id=REPO, repo_type="dataset")
    cached = hf_hub_download(REPO, "README.md", repo_type="dataset")
    hub_env.client_timeouts(0.2)
    hub_env.server.delay_next("HEAD", r"/resolve/main/README\.md$", seconds=1.0)

    # A timed-out HEAD means "Hub unreachable": with a cached copy, hf_hub_download returns it without retrying.
    started = time.monotonic()
    assert hf_hub_download(REPO, "README.md", repo_type="dataset") == cached
    assert time.monotonic() - started < 0.9


def test_download_timeout_without_cache_is_retried(hub_env: HubEnv) -> None:
    api = HfApi()
    api.create_repo(REPO, repo_type="dataset")
    api.upload_file(path_or_fileobj=CARD.encode(), path_in_repo="README.md", repo_id=REPO, repo_type="dataset")
    hub_env.client_timeouts(0.2)
    hub_env.server.delay_next("HEAD", r"/resolve/main/README\.md$", seconds=1.0)

    # With nothing cached, hf_hub_download sends the HEAD again with a 60 s timeout and up to 5 retries (after 1, 2,
    # 4, 8, 8 s); only then does it raise LocalEntryNotFoundError (load_dataset: FileNotFoundError).
    assert Path(hf_hub_download(REPO, "README.md", repo_type="dataset")).read_text() == CARD
    assert len(hub_env.server.requests_to("HEAD", r"/resolve/main/README\.md$")) == 2


@pytest.mark.integration
def test_injected_500_on_preupload_is_retried(hub_env: HubEnv) -> None:
    api = HfApi()
    api.create_repo(REPO, repo_type="dataset")
    hub_env.server.fail_next("POST", r"/preupload/", status=500)

    # /preupload, the LFS batch and PUT go through http_backoff: 5 retries after 1, 2, 4, 8, 8 s.
    api.upload_file(path_or_fileobj=b"hello", path_in_repo="a.txt", repo_id=REPO, repo_type="dataset")
    assert [r.status for r in hub_env.server.requests_to("POST", r"/preupload/")] == [500, 200]
    assert hub_env.server.read_file(REPO, "a.txt") == b"hello"


def test_commit_count_is_one_per_create_commit(hub_env: HubEnv) -> None:
    api = HfApi()
    api.create_repo(REPO, repo_type="dataset")
    texts = [CommitOperationAdd(f"pages/{i:03d}.txt", f"page {i}".encode()) for i in range(40)]
    shards = [CommitOperationAdd(f"data/train-{i:05d}.parquet", bytes([i]) * 2048) for i in range(3)]

    api.create_commit(REPO, [*texts, *shards], commit_message="40 pages, 3 shards", repo_type="dataset")
    assert hub_env.server.commit_count(REPO) == 1
    assert len(hub_env.server.list_files(REPO)) == 1 + 40 + 3
    assert hub_env.server.uploaded_bytes(REPO) == sum(len(f"page {i}") for i in range(40)) + 3 * 2048

    api.create_commit(REPO, [CommitOperationAdd("extra.txt", b"x")], commit_message="one more", repo_type="dataset")
    assert hub_env.server.commit_count(REPO) == 2
    assert [c.title for c in api.list_repo_commits(REPO, repo_type="dataset")][:2] == ["one more", "40 pages, 3 shards"]


def test_tree_pagination_is_followed(hub_env: HubEnv) -> None:
    hub_env.server.tree_page_size = 4
    api = HfApi()
    api.create_repo(REPO, repo_type="dataset")
    ops = [CommitOperationAdd(f"f/{i:02d}.txt", b"x") for i in range(10)]
    api.create_commit(REPO, ops, commit_message="ten", repo_type="dataset")

    assert len(api.list_repo_files(REPO, repo_type="dataset")) == 11
    assert len(hub_env.server.requests_to("GET", r"/tree/")) >= 3


def test_storage_survives_a_new_server_on_the_same_root(tmp_path: Path) -> None:
    first = HubStore(tmp_path / "hub")
    first.create("dataset", REPO, private=True, author="test-user")
    first.commit(first.repos[("dataset", REPO)], "main", [_inline("a.txt", b"a")], {"summary": "add a"}, "test-user")

    again = HubServer(tmp_path / "hub")  # not started: reading its storage needs no HTTP
    assert again.list_files(REPO) == [".gitattributes", "a.txt"]
    assert again.read_file(REPO, "a.txt") == b"a"
    assert again.commit_count(REPO) == 1


def _inline(path: str, data: bytes) -> dict[str, object]:
    return {"key": "file", "value": {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64"}}


@pytest.mark.integration
def test_subprocess_reaches_the_server_through_the_environment(hub_env: HubEnv, tmp_path: Path) -> None:
    HfApi().create_repo(REPO, repo_type="dataset")
    code = f"from huggingface_hub import HfApi; print(HfApi().list_repo_files({REPO!r}, repo_type='dataset'))"
    # hub_env set os.environ too, so a child process inherits the endpoint, token and XET switch.
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "['.gitattributes']"
