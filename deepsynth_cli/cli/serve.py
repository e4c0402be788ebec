"""`deepsynth serve`: an HTTP API and a small page in front of a trained model."""

from __future__ import annotations

from typing import Annotated

import typer

from deepsynth_cli.cli.boundary import error_boundary
from deepsynth_cli.cli.console import Output
from deepsynth_cli.cli.options import ConfigFile, Help

_BATCH = "Batching"


def command(
    model: Annotated[
        str | None, typer.Option(help="Preset (tiny, deepseek-ocr-2), folder written by `deepsynth train`, or Hub id.")
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(help="Interface to bind (default 127.0.0.1, loopback only); others need DEEPSYNTH_API_KEY."),
    ] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default 8000).")] = None,
    device: Annotated[str | None, typer.Option(help="auto (GPU when available), cpu, cuda, cuda:1 ...")] = None,
    max_batch_size: Annotated[
        int | None, typer.Option(help="Documents per model call; 1 turns batching off.", rich_help_panel=_BATCH)
    ] = None,
    max_wait_ms: Annotated[
        float | None, typer.Option(help="How long a request waits for others to batch with.", rich_help_panel=_BATCH)
    ] = None,
    config: ConfigFile = None,
    help_: Help = False,
) -> None:
    """Serve summaries over HTTP: POST /v1/summarize (text), /v1/summarize/file, /v1/summarize/batch; a page at /."""
    output = Output()
    with error_boundary(output):
        from deepsynth_cli.services import serve
        from deepsynth_cli.serving.config import load_serve_config
        from deepsynth_cli.settings import get_settings

        overrides = {
            "model": model,
            "host": host,
            "port": port,
            "device": device,
            "batching.max_batch_size": max_batch_size,
            "batching.max_wait_ms": max_wait_ms,
        }
        serve.run(load_serve_config(config, overrides), get_settings(), output.notice)
