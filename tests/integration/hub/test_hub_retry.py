"""deepsynth's retry around Hub calls, against the loopback Hub with faults on the LFS upload path."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deepsynth_cli.config import GenerateConfig, HubConfig
from deepsynth_cli.data import hub as hub_seam
from deepsynth_cli.data.hub import HubError
from deepsynth_cli.services import generate
from tests.support.hub_fixture import HubEnv

pytestmark = pytest.mark.hub
MakeCfg = Callable[..., GenerateConfig]
LFS_PUT = r"^/_lfs/"  # where the test Hub's LFS batch answer sends the shard bytes (a presigned URL on the Hub)
CLIENT_TRIES = 6  # huggingface_hub's http_backoff: the first try and max_retries=5 more, then it gives up


@pytest.fixture
def hub(hub_env: HubEnv, monkeypatch: pytest.MonkeyPatch) -> HubEnv:
    """The loopback Hub, with huggingface_hub's own backoff (1, 2, 4, 8, 8 s) shortened to milliseconds.

    Only the third-party client's sleep is shortened, so its retries still happen (and are counted below);
    deepsynth's own retry runs unchanged with a short `backoff_s`.
    """
    from huggingface_hub.utils import _http

    class _QuickTime:
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        @staticmethod
        def sleep(seconds: float) -> None:
            time.sleep(min(seconds, 0.01))

    monkeypatch.setattr(_http, "time", _QuickTime())
    monkeypatch.setenv("HF_USERNAME", hub_env.server.user)
    return hub_env


def _one_shard(make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]) -> str:
    return str(make_jsonl([article(0), article(1)]))


def test_an_outage_longer_than_the_clients_own_retries_is_retried_by_deepsynth(
    hub: HubEnv, generate_cfg: MakeCfg, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    # The client gives up after CLIENT_TRIES and raises RuntimeError("Error while uploading ...") from the 503;
    # deepsynth must see the 503 through that wrapper and try the commit again.
    hub.server.fail_next("PUT", LFS_PUT, status=503, count=CLIENT_TRIES + 2)
    notices: list[str] = []
    quick = HubConfig(backoff_s=0.01, attempts=3, timeout_s=10)
    cfg = generate_cfg([_one_shard(make_jsonl, article)], rows_per_shard=2, hub=quick, store="hub")
    generate.run(cfg, lambda event: notices.append(getattr(event, "message", "")))
    repo = f"{hub.server.user}/deepsynth-corpus"
    assert any(path.endswith(".parquet") for path in hub.server.list_files(repo))
    assert len(hub.server.requests_to("PUT", LFS_PUT)) == CLIENT_TRIES + 3  # 6 failed, 2 failed, 1 stored
    assert any("Hub: HTTP 503, retry 1/2" in notice for notice in notices), notices


def test_a_permanent_503_names_the_status_after_every_attempt(
    hub: HubEnv, generate_cfg: MakeCfg, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    hub.server.fail_next("PUT", LFS_PUT, status=503, count=1000)
    quick = HubConfig(backoff_s=0.01, attempts=2, timeout_s=10)
    cfg = generate_cfg([_one_shard(make_jsonl, article)], rows_per_shard=2, hub=quick, store="hub")
    with pytest.raises(HubError) as caught:
        generate.run(cfg)
    assert caught.value.message == (
        f"the Hub kept failing while uploading shards to {hub.server.user}/deepsynth-corpus (HTTP 503)"
    )
    assert len(hub.server.requests_to("PUT", LFS_PUT)) == 2 * CLIENT_TRIES, "deepsynth tried the commit twice"
    assert list((Path(cfg.out or "") / "corpus" / "data").glob("*.parquet")), "local shards are kept"


def test_a_refused_write_names_the_repo_without_a_dangling_preposition(
    hub: HubEnv, generate_cfg: MakeCfg, make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]]
) -> None:
    hub.server.fail_next("POST", r"/commit/", status=403, count=1)
    cfg = generate_cfg([_one_shard(make_jsonl, article)], rows_per_shard=2, hub=HubConfig(backoff_s=0.01))
    with pytest.raises(HubError) as caught:
        generate.run(cfg)
    repo = f"{hub.server.user}/deepsynth-corpus"
    assert caught.value.message == f"no write access to {repo}: the Hub refused uploading shards to it (HTTP 403)"


def test_the_status_is_found_through_a_bounded_chain_of_wrappers() -> None:
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    response = httpx2.Response(503, request=httpx2.Request("PUT", "http://127.0.0.1/_lfs/x"))
    try:
        try:
            raise HfHubHTTPError("503 Service Unavailable", response=response)
        except HfHubHTTPError as exc:
            raise RuntimeError("Error while uploading 'data/a.parquet' to the Hub.") from exc
    except RuntimeError as wrapped:
        assert hub_seam.is_transient(wrapped)
        assert "(HTTP 503)" in hub_seam.explain(wrapped, "me/x", "uploading shards to").message

    cycle_a, cycle_b = RuntimeError("a"), RuntimeError("b")
    cycle_a.__cause__, cycle_b.__cause__ = cycle_b, cycle_a  # a cycle ends the walk instead of looping
    assert not hub_seam.is_transient(cycle_a)

    timeout = RuntimeError("Error while uploading")
    timeout.__context__ = httpx2.ReadTimeout("read timed out")
    assert hub_seam.is_transient(timeout)
    assert "(ReadTimeout)" in hub_seam.explain(timeout, "me/x", "creating").message
