"""`deepsynth serve` under load: requests/s and p50/p95 latency with micro-batching on and off.

Two real servers (`deepsynth serve --model tiny`, random weights, on loopback ports) run side by side: one with
micro-batching (`--max-batch-size 16`), one without (`--max-batch-size 1`). Closed-loop clients (each sends its
next request when the last one is answered) post distinct one-page texts to /v1/summarize at concurrency
1, 8, 16 and 32; each client sends `--rounds` requests (at least 8 requests per level). Levels and modes are
interleaved within a run and every figure is the median of `--runs` runs. Target: batching gives >= 3x the
requests/s of batch size 1 at concurrency 16.

    python benchmarks/serve_load.py                  # full: 3 runs, ~6 minutes on 2 cores
    python benchmarks/serve_load.py --quick          # 1 run, concurrency 1 and 16 only, ~1 minute

Generation: the API's default options (greedy, the repetition guard, `max_new_tokens` 128: what a client that
sets no options gets); `--max-new-tokens N` changes the length. The tiny model never emits EOS, so every answer
costs exactly that many decoding steps. Batching pays off because one decoding step of a batch
costs little more than one of a single document; the per-document work (image preprocessing, the vision encoder
on the page, the repetition guard, which transformers runs row by row) does not shrink with batching, so the
ratio grows with the summary length. `--torch-threads 1` (default) on a 2-core machine leaves the other core to
HTTP, rendering and the load generator; both servers use the same setting.

Prints a table, then ONE JSON line (the last line of stdout) with every figure, the machine and pass/fail.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from deepsynth_cli.inference.options import GenerationOptions

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine_info import cpu_model, usable_cores

TARGET_RATIO = 3.0
SENTENCES = [
    "The regional council voted {n} to {m} to extend the tram line to the northern districts.",
    "Engineers expect the first trains to run within {n} months if the budget holds.",
    "Opponents argued that {m} bus routes would be cut to pay for the project.",
    "A survey of {n} residents found broad support for cheaper monthly passes.",
    "The mayor said the line would carry about {m} thousand passengers a day.",
]


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(name: str, batch: int, wait_ms: float, threads: int, folder: Path) -> Server:
    port = _free_port()
    config = folder / f"{name}.yaml"
    config.write_text(
        f"model: tiny\ntorch_threads: {threads}\nlog_level: warning\n"
        f"batching: {{max_batch_size: {batch}, max_wait_ms: {wait_ms}, max_queue: 1024}}\n",
        encoding="utf-8",
    )
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DEEPSYNTH_", "HF_"))}
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS=str(threads))
    command = [sys.executable, "-m", "deepsynth_cli", "serve", "--config", str(config), "--port", str(port)]
    log = (folder / f"{name}.log").open("wb")
    process = subprocess.Popen(command, cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT)
    return Server(name, f"http://127.0.0.1:{port}", process)


def wait_ready(server: Server, folder: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise SystemExit(f"{server.name} server exited:\n" + (folder / f"{server.name}.log").read_text())
        try:
            if httpx.get(server.url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{server.name} server not ready in {timeout:.0f} s")


def text_for(index: int) -> str:
    """A distinct one-page document per request (the renderer caches laid-out paragraphs)."""
    sentences = [SENTENCES[(index + k) % len(SENTENCES)].format(n=index + k, m=3 * index + k) for k in range(24)]
    return " ".join(sentences)


async def measure(url: str, concurrency: int, requests: int, max_new_tokens: int, offset: int) -> dict[str, Any]:
    latencies: list[float] = []
    failures: list[int] = []
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def worker() -> None:
            for index in counter:
                body = {
                    "text": text_for(offset + index),
                    "language": "en",
                    "options": {"max_new_tokens": max_new_tokens},
                }
                started = time.perf_counter()
                response = await client.post("/v1/summarize", json=body)
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    failures.append(response.status_code)

        busy_before = _machine_busy_seconds()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
        busy = (_machine_busy_seconds() - busy_before) / wall
    ordered = sorted(latencies)
    return {
        "requests": requests,
        "rps": requests / wall,
        "p50_ms": 1000 * statistics.median(ordered),
        "p95_ms": 1000 * ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "errors": len(failures),
        "busy_cores": busy,
    }


def _machine_busy_seconds() -> float:
    """Non-idle CPU time of all cores since boot: how busy the machine was (our servers and client included)."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def machine() -> dict[str, Any]:
    model = cpu_model()
    import torch

    return {
        "cpu": model,
        "cores": usable_cores(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("rps", "p50_ms", "p95_ms", "busy_cores")
    merged = {key: round(statistics.median(run[key] for run in runs), 3) for key in keys}
    merged["errors"] = sum(run["errors"] for run in runs)
    merged["requests"] = runs[0]["requests"]
    merged["rps_runs"] = [round(run["rps"], 3) for run in runs]
    return merged


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 run at concurrency 1 and 16")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 16, 32])
    parser.add_argument("--rounds", type=int, default=2, help="requests per client per level (8 at least in all)")
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--max-new-tokens", type=int, default=GenerationOptions().max_new_tokens)
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.concurrency = 1, [1, 16]

    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        folder = Path(tmp)
        servers = [
            start_server("batched", args.max_batch_size, args.max_wait_ms, args.torch_threads, folder),
            start_server("single", 1, 0.0, args.torch_threads, folder),
        ]
        try:
            for server in servers:
                wait_ready(server, folder)
            for server in servers:  # warm up: first calls pay for lazy initialisation
                asyncio.run(measure(server.url, 4, 4, args.max_new_tokens, offset=10_000))
            raw: dict[str, dict[int, list[dict[str, Any]]]] = {
                s.name: {c: [] for c in args.concurrency} for s in servers
            }
            offset = 0
            for run in range(args.runs):
                for concurrency in args.concurrency:
                    requests = max(8, args.rounds * concurrency)
                    order = servers if run % 2 == 0 else servers[::-1]
                    for server in order:
                        figures = asyncio.run(measure(server.url, concurrency, requests, args.max_new_tokens, offset))
                        offset += requests
                        raw[server.name][concurrency].append(figures)
                        print(
                            f"run {run + 1} {server.name:8s} c={concurrency:<3d} {figures['rps']:7.2f} req/s "
                            f"p50 {figures['p50_ms']:8.0f} ms p95 {figures['p95_ms']:8.0f} ms",
                            file=sys.stderr,
                        )
        finally:
            for server in servers:
                server.process.send_signal(signal.SIGINT)
            for server in servers:
                try:
                    server.process.wait(30)
                except subprocess.TimeoutExpired:
                    server.process.kill()

    results = {name: {str(c): median_of(runs) for c, runs in levels.items()} for name, levels in raw.items()}
    ratios = {
        str(c): round(results["batched"][str(c)]["rps"] / results["single"][str(c)]["rps"], 2) for c in args.concurrency
    }
    print(f"deepsynth serve, tiny preset, {args.max_new_tokens} new tokens per request, median of {args.runs} run(s)")
    print(
        f"{'concurrency':>11} | {'batched req/s':>13} | {'p50 ms':>8} | {'p95 ms':>8} | "
        f"{'batch=1 req/s':>13} | {'p50 ms':>8} | {'p95 ms':>8} | ratio"
    )
    for c in args.concurrency:
        on, off = results["batched"][str(c)], results["single"][str(c)]
        print(
            f"{c:>11} | {on['rps']:>13.2f} | {on['p50_ms']:>8.0f} | {on['p95_ms']:>8.0f} | "
            f"{off['rps']:>13.2f} | {off['p50_ms']:>8.0f} | {off['p95_ms']:>8.0f} | {ratios[str(c)]:.2f}x"
        )
    ratio16 = ratios.get("16")
    passed = ratio16 is not None and ratio16 >= TARGET_RATIO
    if ratio16 is not None:
        print(
            f"target: batching >= {TARGET_RATIO:g}x batch size 1 at concurrency 16: {ratio16:.2f}x "
            f"({'met' if passed else 'NOT met'})"
        )
    summary = {
        "benchmark": "serve_load",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "machine": machine(),
        "settings": {
            "model": "tiny",
            "max_new_tokens": args.max_new_tokens,
            "max_batch_size": args.max_batch_size,
            "max_wait_ms": args.max_wait_ms,
            "torch_threads": args.torch_threads,
            "runs": args.runs,
            "rounds": args.rounds,
        },
        "results": results,
        "ratio": ratios,
        "target": {"ratio_at_16": TARGET_RATIO, "measured": ratio16, "pass": passed},
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
