"""Pytest fixtures that run the test Hub and point the real `huggingface_hub` / `datasets` clients at it.

Register with `pytest_plugins = ["tests.support.hub_fixture"]` in tests/conftest.py.

Why the constants are patched and not only the environment: both libraries read `HF_ENDPOINT`, `HF_HUB_OFFLINE`,
`HF_HUB_DISABLE_XET` and the cache paths once, when first imported, into module constants
(`huggingface_hub.constants.ENDPOINT`, `HUGGINGFACE_CO_URL_TEMPLATE`, `datasets.config.HF_ENDPOINT`, ...). Inside a
pytest process they are already imported, so `hub_env` sets the environment (for subprocesses, which import afresh)
and the constants (for this process), and restores both afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # imported lazily: registering this plugin must not need fastapi and uvicorn
    from deepsynth_cli.config import RenderConfig
    from tests.support.hub_server import HubServer


@pytest.fixture(scope="session")
def hub_server_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubServer]:
    """One test Hub for the whole session (stopping a uvicorn server costs ~0.2 s, a reset nothing)."""
    pytest.importorskip("fastapi", reason="the test Hub needs fastapi and uvicorn (dev extras)")
    pytest.importorskip("uvicorn", reason="the test Hub needs fastapi and uvicorn (dev extras)")
    from tests.support.hub_server import HubServer

    with HubServer(tmp_path_factory.mktemp("hub-server")) as server:
        yield server


@pytest.fixture
def hub_server(hub_server_session: HubServer, tmp_path_factory: pytest.TempPathFactory) -> HubServer:
    """The session's test Hub, reset for this test: empty storage in a fresh temp dir, no faults, empty logs.

    Attributes: `.endpoint`, `.token`, `.user`, `.tokens`, `.tree_page_size`; faults: `.fail_next`,
    `.delay_next`, `.clear_faults`; observations: `.requests`, `.unhandled`, `.requests_to`,
    `.authorization_headers`, `.commit_count`, `.uploaded_bytes`; direct access: `.create_repo`,
    `.list_files`, `.read_file`, `.head`, `.store`.
    """
    hub_server_session.reset(tmp_path_factory.mktemp("hub-store"))
    return hub_server_session


@dataclass(frozen=True)
class HubEnv:
    """What `hub_env` set up: the server, its endpoint and token, and this test's client cache folder."""

    server: HubServer
    endpoint: str
    token: str
    cache_dir: Path  # HF_HOME of this test: hub cache, datasets cache, token file
    monkeypatch: pytest.MonkeyPatch

    @property
    def environ(self) -> dict[str, str]:
        """The variables a child process needs (already in os.environ, so children inherit them by default)."""
        return _environ(self.endpoint, self.token, self.cache_dir)

    def client_timeouts(self, seconds: float) -> None:
        """Make the clients give up after `seconds` on metadata (HEAD) and download requests, until the test ends.

        `hf_hub_download`, `snapshot_download`, HfFileSystem reads and `datasets` read these constants at call
        time; HfApi methods that take `timeout=` ignore them.
        """
        from huggingface_hub import constants

        self.monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", seconds)
        self.monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", seconds)
        self.monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", str(max(1, round(seconds))))  # children parse an int
        self.monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", str(max(1, round(seconds))))

    def publish(self, corpus: Path, render: RenderConfig, **overrides: Any) -> None:
        """Render `corpus` (a folder of split files) with the real `generate` straight into the test Hub: one
        worker, quick retries. `overrides` are GenerateConfig fields (repo_id, rows_per_shard, language, ...)."""
        from deepsynth_cli.config import GenerateConfig, HubConfig
        from deepsynth_cli.services import generate

        quick = HubConfig(backoff_s=0.01, attempts=2, timeout_s=10)
        cfg = GenerateConfig(datasets=[str(corpus)], num_workers=1, store="hub", render=render, hub=quick, **overrides)
        generate.run(cfg, lambda event: None)


def _environ(endpoint: str, token: str, home: Path) -> dict[str, str]:
    return {
        "HF_ENDPOINT": endpoint,
        "HF_TOKEN": token,
        "HF_HOME": str(home),
        "HF_HUB_DISABLE_XET": "1",  # hf_xet is installed: without this every LFS file goes to /xet-write-token/
        "HF_HUB_OFFLINE": "0",
        "HF_DATASETS_OFFLINE": "0",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    }


@pytest.fixture
def hub_env(hub_server: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubEnv]:
    """Point the real clients at `hub_server`, with `HF_TOKEN` set to its token and caches under tmp_path.

    Use `token=False` on a client call (or `monkeypatch.delenv("HF_TOKEN")`) to act anonymously.
    """
    home = tmp_path / "hf-hub-env"
    home.mkdir()
    yield from _point_clients(hub_server, home, monkeypatch)


@contextmanager
def pointed_at(server: HubServer, home: Path) -> Iterator[HubEnv]:
    """`hub_env` outside pytest (the benchmarks): the real clients talk to `server`, caches under `home`, until
    the block ends."""
    home.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield from _point_clients(server, home, monkeypatch)


def _point_clients(hub_server: HubServer, home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubEnv]:
    import datasets
    from huggingface_hub import constants, hf_api
    from huggingface_hub.utils import _http as hf_http

    for name, value in _environ(hub_server.endpoint, hub_server.token, home).items():
        monkeypatch.setenv(name, value)
    # Read when HF_TOKEN is unset: a test that goes anonymous must not pick up a developer's real token.
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.delenv("HF_OIDC_RESOURCE", raising=False)  # would make the client exchange an OIDC token

    endpoint = hub_server.endpoint
    patches = {
        constants: {
            "ENDPOINT": endpoint,
            "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
            "HF_URL_HOSTS": constants.HF_URL_HOSTS | {"127.0.0.1"},
            "HF_HUB_OFFLINE": False,
            "HF_HUB_DISABLE_XET": True,
            "HF_HUB_DISABLE_TELEMETRY": True,
            "HF_HUB_DISABLE_UPDATE_CHECK": True,
            "HF_HUB_DISABLE_IMPLICIT_TOKEN": False,  # HF_TOKEN is sent unless a call says token=False
            # Defaults, whatever the developer's shell had when the library was imported (see client_timeouts).
            "HF_HUB_ETAG_TIMEOUT": constants.DEFAULT_ETAG_TIMEOUT,
            "HF_HUB_DOWNLOAD_TIMEOUT": constants.DEFAULT_DOWNLOAD_TIMEOUT,
            "HF_HOME": str(home),
            "HF_HUB_CACHE": str(home / "hub"),
            "HF_ASSETS_CACHE": str(home / "assets"),
            "HF_XET_CACHE": str(home / "xet"),
            "AGENT_HARNESSES_PATH": str(home / ".agent_harnesses.json"),
            # A developer's saved token must never reach the test server (or anything else) from a test.
            "HF_TOKEN_PATH": str(home / "token"),
            "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
        },
        datasets.config: {
            "HF_ENDPOINT": endpoint,
            "HUB_DATASETS_URL": endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}",
            "HF_HUB_OFFLINE": False,
            "HF_DATASETS_OFFLINE": False,
            # The parquet-export lookup goes to http://datasets-server.<host>: unreachable, skip it.
            "USE_PARQUET_EXPORT": False,
            "HF_CACHE_HOME": str(home),
            "HF_DATASETS_CACHE": home / "datasets",
            "HF_MODULES_CACHE": home / "modules",
            "DOWNLOADED_DATASETS_PATH": home / "datasets" / "downloads",
            "EXTRACTED_DATASETS_PATH": home / "datasets" / "downloads" / "extracted",
        },
    }
    for module, values in patches.items():
        for name, value in values.items():
            monkeypatch.setattr(module, name, value)
    # `huggingface_hub.upload_folder`, `create_repo`, ... are methods of one HfApi built at import time, which
    # copied the endpoint then.
    monkeypatch.setattr(hf_api.api, "endpoint", endpoint)
    # Origins the client forwards the token to on redirects (the server never redirects; kept consistent anyway).
    if hasattr(hf_http, "_HUB_ORIGINS"):
        monkeypatch.setattr(hf_http, "_HUB_ORIGINS", hf_http._HUB_ORIGINS | {hf_http._url_origin(endpoint)})

    # Start and end with no cached HTTP client or fsspec instance that remembers another server or token.
    _reset_clients()
    try:
        yield HubEnv(hub_server, endpoint, hub_server.token, home, monkeypatch)
    finally:
        _reset_clients()


def _reset_clients() -> None:
    from huggingface_hub import HfFileSystem, close_session

    from deepsynth_cli.credentials import forget_whoami

    close_session()
    HfFileSystem.clear_instance_cache()
    forget_whoami()  # deepsynth's per-process whoami answers: each test is a run of its own
