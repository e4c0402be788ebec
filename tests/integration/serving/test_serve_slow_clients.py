"""Clients that send their body slowly, or never finish it, against the real server on a loopback port: each is
answered 408 and disconnected once `limits.body_timeout_s` has passed, and no more than `limits.max_body_reads`
bodies are received at once (the others get 503 busy at once)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.serving.live import API_KEY, Server, serve

pytestmark = pytest.mark.integration

TIMEOUT_S = 1.0
MAX_READS = 3
CONFIG = f"limits:\n  body_timeout_s: {TIMEOUT_S}\n  max_body_reads: {MAX_READS}\n"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serve(tmp_path_factory.mktemp("serve-slow"), config=CONFIG) as running:
        yield running


def _slow_client(server: Server) -> socket.socket:
    """Declares 100 KB of JSON, sends 1 KB of it, then nothing."""
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    raw.sendall(
        b"POST /v1/summarize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 102400\r\nAuthorization: Bearer "
        + API_KEY.encode()
        + b"\r\n\r\n"
        + b'{"text": "'
        + b"a" * 1014
    )
    return raw


def _answer(raw: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed it."""
    data = b""
    while chunk := raw.recv(4096):
        data += chunk
    return data, time.monotonic()


def test_slow_bodies_get_408_and_are_disconnected_and_reads_are_capped(server: Server) -> None:
    started = time.monotonic()
    sockets = [_slow_client(server) for _ in range(MAX_READS + 2)]
    try:
        answers = [_answer(raw) for raw in sockets]  # recv returns b"" once the server closed: nothing is held
    finally:
        for raw in sockets:
            raw.close()
    statuses = sorted(int(data.split(b" ", 2)[1]) for data, _ in answers)
    assert statuses == [408] * MAX_READS + [503] * 2, answers
    codes = {json.loads(data.partition(b"\r\n\r\n")[2])["error"] for data, _ in answers}
    assert codes == {"body_timeout", "busy"}
    assert all(b"connection: close" in data.lower() for data, _ in answers)
    closed_after = max(at for _, at in answers) - started
    assert TIMEOUT_S <= closed_after < TIMEOUT_S + 5
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as client:
        good = client.post(
            "/v1/summarize", json={"text": "A short memo about trams.", "options": {"max_new_tokens": 2}}
        )
        assert good.status_code == 200  # the slots are free again
        metrics = client.get("/metrics").text
    assert f'deepsynth_errors_total{{code="body_timeout"}} {MAX_READS}.0' in metrics
    assert 'deepsynth_errors_total{code="busy"} 2.0' in metrics
