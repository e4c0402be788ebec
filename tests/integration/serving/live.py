"""`deepsynth serve --model tiny` in its own process on a loopback port, for the integration tests of serving."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

API_KEY = "dsk-integration-key-0123456789"


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {API_KEY}"}

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def rss(self) -> int:
        """Resident memory of the server process, in bytes."""
        import psutil

        return int(psutil.Process(self.process.pid).memory_info().rss)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serve(folder: Path, *args: str, config: str | None = None) -> Iterator[Server]:
    """The real CLI (`python -m deepsynth_cli serve --model tiny ...`), ready, then stopped with Ctrl-C (exit 0)."""
    env = {
        name: value for name, value in os.environ.items() if not name.startswith(("DEEPSYNTH_", "HF_", "HUGGING_FACE"))
    }
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(folder / "hf-home"), DEEPSYNTH_API_KEY=API_KEY)
    port = _free_port()
    log = folder / "server.log"
    command = [sys.executable, "-m", "deepsynth_cli", "serve", "--model", "tiny", "--port", str(port), *args]
    if config is not None:
        (folder / "serve.yaml").write_text(config, encoding="utf-8")
        command += ["--config", str(folder / "serve.yaml")]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    try:
        while True:
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "not ready in 120 s:\n" + log.read_text(errors="replace")
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        yield Server(url, process, log)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.returncode == 0, log.read_text(errors="replace")  # Ctrl-C is a clean stop
    assert API_KEY not in log.read_text(errors="replace")
