"""The FastAPI app: `create_app(summarizer_or_loader, ServeConfig, settings)` wires the state, the routers
(`serving.routes`), the error handlers (`serving.errors`) and the middleware. Everything that can go wrong with
the input is a 4xx with `{"error": code, "message": ...}`; the model thread keeps serving."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from deepsynth_cli import __version__
from deepsynth_cli.inference.summarizer import Summarizer
from deepsynth_cli.serving import openai_routes, routes
from deepsynth_cli.serving.config import ServeConfig
from deepsynth_cli.serving.errors import install_error_handlers
from deepsynth_cli.serving.memory import ReleaseWhenIdle
from deepsynth_cli.serving.metrics import Metrics
from deepsynth_cli.serving.middleware import BodyLimit, Observe
from deepsynth_cli.serving.openai_routes import OpenAIErrorShape
from deepsynth_cli.serving.security import ApiKey, KeyGate
from deepsynth_cli.serving.state import Loader, ServeState
from deepsynth_cli.settings import Settings


def create_app(source: Summarizer | Loader, cfg: ServeConfig, settings: Settings) -> FastAPI:
    """The API around one model. `source` is a loaded Summarizer or a function that loads one (called once, in
    the lifespan, off the event loop). Limits, batching and docs come from `cfg`; the API key and CORS origins
    from `settings`."""
    metrics = Metrics()
    state = ServeState(source, cfg, metrics)
    key = ApiKey.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.start()
        try:
            yield
        finally:
            await run_in_threadpool(state.stop)

    app = FastAPI(
        title="deepsynth",
        version=__version__,
        description="Summarise documents from pictures of their pages (DeepSeek-OCR-2 fine-tuned by deepsynth).",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.serve = state  # read by serving.deps
    app.state.api_key = key
    install_error_handlers(app, metrics)
    for router in (*routes.ROUTERS, openai_routes.router):
        app.include_router(router)

    # Middleware, innermost first: the body limit, the key gate (headers only), CORS, then the access log around all.
    limits = cfg.limits
    app.add_middleware(
        BodyLimit,
        limit=limits.max_request_bytes,
        metrics=metrics,
        timeout_s=limits.body_timeout_s,
        max_reads=limits.max_body_reads,
    )
    if key.required:
        app.add_middleware(KeyGate, key=key, metrics=metrics)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(OpenAIErrorShape)  # inside Observe, outside the key and size checks: it sees their answers
    app.add_middleware(Observe, metrics=metrics)
    app.add_middleware(ReleaseWhenIdle)  # outermost: it sees when the last request in flight has ended
    return app
