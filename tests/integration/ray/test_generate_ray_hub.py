"""`generate --executor ray` with the Hub as the store: each part's task uploads its own shards (the per-part
uploader of `--shard-index`), the driver describes the repo once, and `datasets` loads it whole."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import datasets
import pytest

from deepsynth_cli.config import GenerateConfig, HubConfig
from deepsynth_cli.services import generate
from tests.integration.ray.conftest import loopback_ray
from tests.support.hub_fixture import HubEnv

pytestmark = [pytest.mark.integration, pytest.mark.hub]


def test_ray_parts_upload_to_one_repo_that_loads_whole(
    hub_env: HubEnv,
    generate_cfg: Callable[..., GenerateConfig],
    make_jsonl: Callable[..., Path],
    article: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_USERNAME", hub_env.server.user)
    path = make_jsonl([article(n) for n in range(20)])
    quick = HubConfig(backoff_s=0.01, attempts=3, commit_every=2, commit_interval_s=30, timeout_s=10)
    cfg = generate_cfg([str(path)], executor="ray", num_shards=2, rows_per_shard=3, hub=quick, out=None)
    with loopback_ray(hub_env.environ):
        report = generate.run(cfg).datasets[0]

    repo_id = f"{hub_env.server.user}/deepsynth-corpus"
    files = hub_env.server.list_files(repo_id)
    assert {"deepsynth/part-00000-of-00002.json", "deepsynth/part-00001-of-00002.json", "manifest.json"} <= set(files)
    assert len([name for name in files if name.startswith("data/")]) == 2 * 4  # 10 rows a part, 3 per shard
    # Per part: 4 shards at 2 per commit; then one description of both parts by the driver.
    assert report.commits == hub_env.server.commit_count(repo_id) == 2 * 2 + 1
    loaded = datasets.load_dataset(repo_id, split="train")
    assert sorted(loaded["source_id"]) == [f"doc-{n:05d}" for n in range(20)]
