"""Processes that end with the run that started them, and one run at a time per part of an output folder.

Worker processes of a `forkserver` pool are children of the fork server, not of the run, so the kernel's
parent-death signal alone cannot tie them to the run. Each worker therefore watches the run's process itself
(a pidfd on Linux, a short poll elsewhere) and exits the moment it is gone, even after a SIGKILL. With the
workers gone, the fork server and the resource tracker exit on their own: they live only while someone holds
their pipes, and the workers were the last holders once the run was dead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime
import errno
import fcntl
import os
import select
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from deepsynth_cli.errors import OutputError

LOCK_FILE = ".deepsynth.lock"  # the lock of a folder's only part (`--num-shards 1`, the default)
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_POLL_S = 0.5  # where no pidfd exists: how often a worker checks that the run is still there


# ---------------------------------------------------------------------------------------------------- workers
def tied_to_this_process(
    initializer: Callable[..., None], initargs: tuple[Any, ...]
) -> tuple[Callable[..., None], tuple[Any, ...]]:
    """`initializer, initargs` for a process pool whose workers exit when this process does (however it ends)."""
    return _tied_worker_init, (os.getpid(), initializer, initargs)


def _tied_worker_init(run_pid: int, initializer: Callable[..., None], initargs: tuple[Any, ...]) -> None:
    _die_with_parent()  # the fork server: covers it being killed on its own
    _exit_when_gone(run_pid)
    # The run stops workers through the pool; a Ctrl-C meant for the run must not print a traceback per worker.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    initializer(*initargs)


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _exit_when_gone(pid: int) -> None:
    """Start a daemon thread that ends this process as soon as process `pid` has exited."""
    try:
        handle = os.pidfd_open(pid)  # readable once the process has exited; immune to pid reuse
    except (AttributeError, OSError) as error:
        if isinstance(error, OSError) and error.errno == errno.ESRCH:
            os._exit(1)  # already gone
        handle = None

    def watch() -> None:
        if handle is not None:
            select.select([handle], [], [])
        else:
            while _alive(pid):
                threading.Event().wait(_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="deepsynth-watch-run", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ---------------------------------------------------------------------------------------------------- SIGTERM
def _terminate_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def sigterm_as_interrupt() -> None:
    """Handle SIGTERM (timeout, systemd, Docker, Kubernetes, Slurm) exactly like Ctrl-C: stop cleanly, keep the
    finished work, leave no process behind. Only the main thread may install handlers; elsewhere nothing changes."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate_as_interrupt)


# ---------------------------------------------------------------------------------------------------- locks
def lock_file(part: int = 0, parts: int = 1) -> str:
    """The lock file of one part of an output folder. Parts never write the same shard, so each has its own
    lock: N parts run at once into one folder (SLURM array tasks, Ray tasks), two runs of one part cannot."""
    if parts == 1:
        return LOCK_FILE
    return f".deepsynth-{part:05d}-of-{parts:05d}.lock"


@contextmanager
def output_lock(folder: Path, part: int = 0, parts: int = 1) -> Iterator[None]:
    """Hold part `part` of `parts` of `folder` for this run: a second run of the same part fails at once and
    says who holds it.

    The lock is an `flock` on `folder/lock_file(part, parts)`, so the kernel releases it when the holder exits
    in any way (kill -9 included): a stale lock file never blocks a rerun. The file stays; only the lock matters.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / lock_file(part, parts)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode("utf-8", "replace").strip() or "another process"
            which = f" (part {part} of {parts})" if parts > 1 else ""
            raise OutputError(
                f"{folder}{which} is in use by another deepsynth run ({holder})",
                hint="wait for that run to finish, stop it, or choose another --out",
            ) from None
        started = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, started {started}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def output_locks(folders: Sequence[Path], part: int = 0, parts: int = 1) -> ExitStack:
    """`output_lock` of one part on each folder (deduplicated, in a fixed order); `.close()` releases them all."""
    stack = ExitStack()
    try:
        for folder in sorted({folder.resolve() for folder in folders}):
            stack.enter_context(output_lock(folder, part, parts))
    except BaseException:
        stack.close()
        raise
    return stack
