"""A local Ray for the tests, on loopback only, stopped by its own handle.

Ray advertises (and its servers listen on) the machine's primary interface unless
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 is set before `ray` is imported: then the node is 127.0.0.1 and every
server binds to it (`test_every_ray_socket_listens_on_loopback_only` checks). Two CPUs, no dashboard.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest

RAY_CPUS = 2


@contextmanager
def loopback_ray(env: Mapping[str, str] | None = None) -> Iterator[Any]:
    """`ray` connected to a fresh local cluster on 127.0.0.1; `env` is set for its workers (they start afresh
    and read their settings, e.g. the Hub endpoint, from the environment)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # read by Ray at import: loopback node
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        patch.setenv("HF_HUB_OFFLINE", "1")  # the workers inherit this environment
        patch.setenv("HF_DATASETS_OFFLINE", "1")
        for name, value in (env or {}).items():
            patch.setenv(name, value)
        import ray

        assert not ray.is_initialized(), "another Ray is connected in this process"
        context = ray.init(num_cpus=RAY_CPUS, include_dashboard=False, configure_logging=False, log_to_driver=False)
        try:
            assert context.address_info["node_ip_address"] == "127.0.0.1", context.address_info
            yield ray
        finally:
            ray.shutdown()


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    """One local Ray for the module."""
    with loopback_ray() as ray:
        yield ray
