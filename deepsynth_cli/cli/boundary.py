"""The one error boundary: every command runs its service inside `error_boundary`."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from deepsynth_cli.cli.console import Output
from deepsynth_cli.errors import DeepsynthError


def _debug() -> bool:
    return os.environ.get("DEEPSYNTH_DEBUG", "").lower() in {"1", "true", "yes"}


@contextmanager
def error_boundary(output: Output) -> Iterator[None]:
    """Turn failures into one line plus a hint and an exit code; tracebacks only with DEEPSYNTH_DEBUG=1."""
    try:
        yield
    except DeepsynthError as exc:
        if _debug():
            raise
        output.error(exc.message, exc.hint)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        output.error("interrupted", "finished shards are kept: run the same command again to resume")
        raise typer.Exit(130) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        if _debug():
            raise
        output.error(f"unexpected {type(exc).__name__}: {exc}", "rerun with DEEPSYNTH_DEBUG=1 for the traceback")
        raise typer.Exit(1) from None
