"""`deepsynth serve`: load one model and answer summaries over HTTP until stopped (Ctrl-C, SIGTERM)."""

from __future__ import annotations

import copy
import ipaddress
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from deepsynth_cli.errors import ConfigError, DeepsynthError
from deepsynth_cli.serving.config import ServeConfig
from deepsynth_cli.settings import Settings


class ServeError(DeepsynthError):
    """The server could not start (model not loadable, port taken)."""


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _logging(level: str) -> dict[str, Any]:
    """uvicorn's own log format, with our `deepsynth.serve` loggers on the same handler. uvicorn's access log is
    off: ours logs method, route template, status and time, never a query string or a header."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["deepsynth"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


def run(cfg: ServeConfig, settings: Settings, notify: Callable[[str], None] = lambda message: None) -> None:
    """Serve until interrupted. Raises ServeError when the model cannot be loaded or the port bound."""
    import uvicorn

    from deepsynth_cli.inference.summarizer import Summarizer
    from deepsynth_cli.models.presets import resolve_preset
    from deepsynth_cli.serving.app import create_app

    model = cfg.model
    if model is None:
        raise ConfigError("no model to serve", hint="give --model (a preset, a model folder or a Hub id)")
    resolve_preset(model)  # a mistyped name or path fails here in one line, before the server starts
    if cfg.torch_threads is not None:
        import torch

        torch.set_num_threads(cfg.torch_threads)
    keyed = settings.api_key is not None and bool(settings.api_key.get_secret_value())
    if not _loopback(cfg.host) and not keyed:
        notify(f"warning: listening on {cfg.host} without an API key: anyone who can reach it can use it")

    def load() -> Summarizer:
        return Summarizer.load(model, device=cfg.device, max_pages=cfg.max_pages)

    app = create_app(load, cfg, settings)
    notify(
        f"loading {model}; serving on http://{cfg.host}:{cfg.port} (page: /, API docs: /docs, "
        f"API key {'required' if keyed else 'off'})"
    )

    class Server(uvicorn.Server):
        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            # Stop on Ctrl-C or SIGTERM as uvicorn does, without re-raising the signal afterwards (uvicorn does, and
            # the interrupt then lands in the event loop's teardown): a requested stop is a clean exit, code 0.
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {number: signal.signal(number, self.handle_exit) for number in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for number, handler in previous.items():
                    signal.signal(number, handler)

    server = Server(
        uvicorn.Config(
            app,
            host=cfg.host,
            port=cfg.port,
            log_config=_logging(cfg.log_level),
            log_level=cfg.log_level,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=10,
        )
    )
    try:
        server.run()
    except SystemExit:  # uvicorn exits when the lifespan (the model load) fails or the port cannot be bound
        if server.started:
            raise
    if not server.started:
        error = app.state.serve.load_error
        if isinstance(error, DeepsynthError):
            raise error
        if error is not None:
            raise ServeError(
                f"cannot load the model {model}: {type(error).__name__}: {str(error).splitlines()[0][:300]}",
                hint="give a preset (tiny, deepseek-ocr-2), a folder written by `deepsynth train` or a Hub id",
            )
        raise ServeError(
            f"the server did not start on {cfg.host}:{cfg.port}", hint="is the port taken? try another --port"
        )
    logging.getLogger("deepsynth.serve").info("stopped")
