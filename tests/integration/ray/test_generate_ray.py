"""`generate --executor ray` on a real local Ray (loopback only, 2 CPUs): the same bytes as one machine per
part, a worker killed mid-task retried without losing or doubling a row, errors naming the part."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
import pytest

from deepsynth_cli import processes
from deepsynth_cli.config import GenerateConfig
from deepsynth_cli.errors import DatasetError, OutputError
from deepsynth_cli.services import generate

pytestmark = pytest.mark.integration

MakeCfg = Callable[..., GenerateConfig]
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


def _files(folder: Path) -> dict[str, bytes]:
    """Every shard, the manifest and the card of a dataset folder, by name."""
    found = {f"data/{path.name}": path.read_bytes() for path in sorted((folder / "data").glob("*.parquet"))}
    for name in ("manifest.json", "README.md"):
        found[name] = (folder / name).read_bytes()
    return found


def _ids(folder: Path) -> Counter[str]:
    return Counter(
        row["source_id"]
        for path in (folder / "data").glob("*.parquet")
        for row in pq.read_table(path, columns=["source_id"]).to_pylist()
    )


def test_every_ray_socket_listens_on_loopback_only(ray_cluster: Any) -> None:
    @ray_cluster.remote
    def ping() -> int:
        return os.getpid()

    worker = ray_cluster.get(ping.remote())  # a worker exists, with its own servers
    mine = psutil.Process()
    processes_ = [mine, *mine.children(recursive=True)]
    assert worker in {process.pid for process in processes_}, "the Ray processes are this test's children"
    listening = []
    for process in processes_:
        try:
            connections = process.net_connections(kind="inet")
        except psutil.Error:
            continue
        listening += [(process.name(), c.laddr.ip, c.laddr.port) for c in connections if c.status == psutil.CONN_LISTEN]
    names = {name for name, _, _ in listening}
    assert {"gcs_server", "raylet"} <= names, listening  # the cluster's own servers were seen, not nothing
    assert [entry for entry in listening if entry[1] not in LOOPBACK] == []


def test_ray_parts_write_the_same_bytes_as_one_machine_per_part(
    ray_cluster: Any,
    generate_cfg: MakeCfg,
    make_jsonl: Callable[..., Path],
    article: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    rows = [article(n) for n in range(45)]
    rows[7]["summary"] = ""  # a skipped row is accounted for the same way too
    path = make_jsonl(rows)
    settings = {"rows_per_shard": 5, "num_shards": 3}
    for part in range(3):
        generate.run(generate_cfg([str(path)], out=tmp_path / "local", shard_index=part, **settings))
    events: list[Any] = []
    report = generate.run(generate_cfg([str(path)], out=tmp_path / "ray", executor="ray", **settings), events.append)

    local, remote = _files(tmp_path / "local" / "corpus"), _files(tmp_path / "ray" / "corpus")
    assert sorted(local) == sorted(remote) and len(local) >= 3 + 2  # a shard or more per part, manifest, card
    assert [name for name in local if local[name] != remote[name]] == []  # pages, footers, manifest, card
    figures = report.to_dict()["datasets"][0]
    assert figures["rows"] == {"train": 44}
    assert [part["part"] for part in figures["parts"]] == [0, 1, 2]
    assert sum(part["rows"] for part in figures["parts"]) == 44
    assert all(part["attempts"] == 1 and part["shards_written"] >= 1 for part in figures["parts"])
    assert sum(part["shards_written"] for part in figures["parts"]) == len(local) - 2
    progress = [event for event in events if isinstance(event, generate.PartsProgress)]
    assert progress[-1].parts_done == 3 and progress[-1].documents == 45 and progress[-1].retries == 0

    # A rerun finds every part complete and writes nothing.
    again = generate.run(generate_cfg([str(path)], out=tmp_path / "ray", executor="ray", **settings))
    assert all(part.splits["train"].shards_written == 0 for part in again.datasets[0].parts)
    assert _files(tmp_path / "ray" / "corpus") == remote


def test_a_worker_killed_mid_part_is_retried_and_every_row_lands_once(
    ray_cluster: Any,
    generate_cfg: MakeCfg,
    make_jsonl: Callable[..., Path],
    article: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    path = make_jsonl([article(n, words=150) for n in range(240)])
    out = tmp_path / "out"
    cfg = generate_cfg([str(path)], out=out, executor="ray", num_shards=2, rows_per_shard=10)
    result: dict[str, Any] = {}
    run = threading.Thread(target=lambda: result.update(report=generate.run(cfg)), daemon=True)
    run.start()

    folder = out / "corpus"
    first = folder / "data" / "train-00000-of-00002-00000.parquet"
    deadline = time.monotonic() + 120
    while not first.exists() and time.monotonic() < deadline and run.is_alive():
        time.sleep(0.02)
    assert first.exists(), "part 0 wrote no shard in time"
    holder = (folder / processes.lock_file(0, 2)).read_text()  # "pid N on HOST, started ..."
    worker = psutil.Process(int(holder.split()[1]))
    assert worker.name().startswith("ray::"), worker.cmdline()
    worker.send_signal(signal.SIGKILL)
    run.join(timeout=240)
    assert not run.is_alive(), "the run did not finish after the kill"

    report = result["report"].datasets[0]
    assert report.parts[0].attempts == 2 and report.parts[1].attempts == 1
    assert report.parts[0].splits["train"].shards_reused >= 1  # the retry kept what the killed attempt finished
    assert _ids(folder) == Counter(f"doc-{n:05d}" for n in range(240))
    assert not list((folder / "data").glob(".*")), "no half-written shard left"


def test_a_part_that_fails_is_named_in_one_line(
    ray_cluster: Any,
    generate_cfg: MakeCfg,
    make_jsonl: Callable[..., Path],
    article: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    path = make_jsonl([article(n) for n in range(12)])
    out = tmp_path / "out"
    cfg = generate_cfg([str(path)], out=out, executor="ray", num_shards=2, rows_per_shard=3)
    with processes.output_lock(out / "corpus", 1, 2), pytest.raises(OutputError) as refused:
        generate.run(cfg)  # another run holds part 1
    message = refused.value.message
    assert message.startswith("part 1 of 2: ") and "(part 1 of 2) is in use by another deepsynth run" in message
    assert f"pid {os.getpid()} " in message and "\n" not in message and "Ray" not in message
    assert "choose another --out" in refused.value.hint
    # The other part stopped (or finished) before the error came back: its lock is free, no half-written shard.
    with processes.output_lock(out / "corpus", 0, 2):
        assert not list((out / "corpus").rglob("*.partial"))

    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(DatasetError) as bad:
        generate.run(cfg)
    assert bad.value.message.startswith("part ") and "line 13 (byte " in bad.value.message
    assert "\n" not in bad.value.message


def _free_of_holders(folder: Path, parts: int, within_s: float) -> bool:
    """True once no process holds any part's lock of `folder` (the tasks of a killed driver end on their own)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            with processes.output_locks([folder], 0, parts), processes.output_locks([folder], 1, parts):
                return True
        except OutputError:
            time.sleep(0.2)
    return False


def test_the_cli_starts_ray_on_loopback_and_a_rerun_after_a_killed_driver_finishes_the_rest(
    make_jsonl: Callable[..., Path], article: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    path = make_jsonl([article(n, words=150) for n in range(240)])
    out = tmp_path / "out"
    args = [sys.executable, "-m", "deepsynth_cli", "generate", str(path), "--out", str(out), "--executor", "ray",
            "--num-shards", "2", "--rows-per-shard", "10", "--page-size", "256", "--font-size", "11"]  # fmt: skip
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)  # the CLI keeps its own Ray on loopback by itself
    log = tmp_path / "driver.log"
    with log.open("w") as sink:
        driver = subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT, env=env)
    data = out / "corpus" / "data"
    deadline = time.monotonic() + 120
    while not list(data.glob("*.parquet")) and time.monotonic() < deadline:
        assert driver.poll() is None, log.read_text()
        time.sleep(0.05)
    assert list(data.glob("*.parquet")), "no shard in time"
    tree = [psutil.Process(driver.pid), *psutil.Process(driver.pid).children(recursive=True)]
    listening = []
    for process in tree:
        with contextlib.suppress(psutil.Error):
            listening += [c.laddr.ip for c in process.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
    assert listening and set(listening) <= LOOPBACK, listening
    driver.kill()  # SIGKILL: no cleanup, no manifest
    driver.wait(timeout=30)
    assert not (out / "corpus" / "manifest.json").exists()  # the driver writes it once, at the end
    assert _free_of_holders(out / "corpus", 2, within_s=120), "the killed driver's tasks still hold their parts"
    before = {path.name: path.stat().st_mtime_ns for path in data.glob("*.parquet")}

    rerun = subprocess.run([*args, "--json"], capture_output=True, text=True, env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    written = sum(part["shards_written"] for part in json.loads(rerun.stdout)["datasets"][0]["parts"])
    after = {path.name: path.stat().st_mtime_ns for path in data.glob("*.parquet")}
    # Only what was missing (the killed driver's tasks may have finished their parts on their own meanwhile).
    assert written == len(after) - len(before)
    assert {name: after[name] for name in before} == before  # the killed run's shards stand untouched
    assert json.loads((out / "corpus" / "manifest.json").read_text())["splits"]["train"]["rows"] == 240
    assert _ids(out / "corpus") == Counter(f"doc-{n:05d}" for n in range(240))
