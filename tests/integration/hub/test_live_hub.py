"""Against the real Hugging Face Hub: runs only when a real token is provided, and says so otherwise.

    DEEPSYNTH_LIVE_HF_TOKEN=hf_... DEEPSYNTH_LIVE_HF_USERNAME=you python -m pytest -m hub tests/integration/hub

It pushes two ACLSum rows to a new private dataset repo, loads them back (also streaming) and deletes the repo.
"""

from __future__ import annotations

import os
import uuid

import pytest

from deepsynth_cli.config import GenerateConfig, RenderConfig
from deepsynth_cli.services import generate
from deepsynth_cli.settings import Settings

# Read at import: the suite's autouse fixture clears DEEPSYNTH_* and HF_* variables before every test.
LIVE_TOKEN = os.environ.get("DEEPSYNTH_LIVE_HF_TOKEN")
LIVE_USER = os.environ.get("DEEPSYNTH_LIVE_HF_USERNAME")

pytestmark = [
    pytest.mark.hub,
    pytest.mark.skipif(
        not (LIVE_TOKEN and LIVE_USER),
        reason="live Hub test: set DEEPSYNTH_LIVE_HF_TOKEN and DEEPSYNTH_LIVE_HF_USERNAME to run it",
    ),
]


def test_push_and_load_back_on_the_real_hub(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import datasets
    from huggingface_hub import HfApi

    repo_id = f"{LIVE_USER}/deepsynth-live-test-{uuid.uuid4().hex[:8]}"
    settings = Settings(hf_token=LIVE_TOKEN, hf_username=LIVE_USER, cache_dir=tmp_path / "cache")
    cfg = GenerateConfig(
        datasets=["aclsum"], splits=["test"], max_samples=2, repo_id=repo_id, private=True, store="hub",
        render=RenderConfig(page_size=512, font_size=12),
    )  # fmt: skip
    try:
        report = generate.run(cfg, settings=settings)
        assert report.datasets[0].location == f"hf://datasets/{repo_id}"
        assert datasets.load_dataset(repo_id, split="test", token=LIVE_TOKEN).num_rows == 2
        streamed = datasets.load_dataset(repo_id, split="test", token=LIVE_TOKEN, streaming=True)
        assert sum(1 for _ in streamed) == 2
    finally:
        HfApi(token=LIVE_TOKEN).delete_repo(repo_id, repo_type="dataset", missing_ok=True)
