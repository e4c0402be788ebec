"""The FastAPI app: `create_app(summarizer_or_loader, ServeConfig, settings)`.

Routes are thin: read the input (text rendered like the training pages, or an uploaded file), hand the pages to
the micro-batcher, shape the answer. Everything that can go wrong with the input is a 4xx with
`{"error": code, "message": ...}`; the model thread keeps serving.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from PIL import Image
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from deepsynth_cli import __version__
from deepsynth_cli.data.render import PageRenderer, RenderedDocument
from deepsynth_cli.data.tokens import TextTokenCounter
from deepsynth_cli.inference.options import GenerationOptions
from deepsynth_cli.inference.summarizer import PreparedPages, Summarizer, TokenListener
from deepsynth_cli.serving.config import ServeConfig
from deepsynth_cli.serving.inputs import InputError, Upload, read_upload
from deepsynth_cli.serving.metrics import Metrics
from deepsynth_cli.serving.middleware import UNAUTHORIZED, BodyLimit, KeyGate, Observe, bearer_matches
from deepsynth_cli.serving.page import INDEX_HTML, PAGE_CSP
from deepsynth_cli.serving.schemas import (
    LANGUAGE_PATTERN,
    BatchRequest,
    BatchResult,
    ErrorBody,
    ModelInfo,
    SummarizeRequest,
    SummaryResult,
    Timing,
)
from deepsynth_cli.serving.worker import BatchObserver, Done, MicroBatcher, QueueFullError, WorkerStoppedError
from deepsynth_cli.settings import Settings

log = logging.getLogger("deepsynth.serve")

Loader = Callable[[], Summarizer]

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in {
        401: "missing or wrong API key",
        413: "too large: body, text, image, PDF pages or number of texts",
        415: "unsupported file type (read from the bytes)",
        422: "invalid input: empty text, corrupt image, encrypted or malformed PDF, options out of bounds",
        503: "queue full (see Retry-After) or model not ready",
        504: "not answered within the request timeout",
    }.items()
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


class ServeState:
    """What the app holds between requests: the model (through the batcher), the token counter, renderers."""

    def __init__(self, source: Summarizer | Loader, cfg: ServeConfig, metrics: Metrics) -> None:
        self._source = source
        self.cfg = cfg
        self.metrics = metrics
        self.summarizer: Summarizer | None = None
        self.counter: TextTokenCounter | None = None
        self.batcher: MicroBatcher | None = None
        self.load_error: BaseException | None = None
        self._local = threading.local()
        self._prepare_lock = threading.Lock()

    async def start(self) -> None:
        try:
            source = self._source
            summarizer = source if isinstance(source, Summarizer) else await run_in_threadpool(source)
            self.counter = await run_in_threadpool(TextTokenCounter)
        except BaseException as error:
            self.load_error = error
            raise
        self.summarizer = summarizer
        self.batcher = MicroBatcher(summarizer.summarize, self.cfg.batching, BatchObserver(self.metrics.on_batch))
        self.metrics.watch_queue(lambda: self.batcher.depth if self.batcher else 0)
        self.batcher.start()
        log.info("model %s ready on %s", summarizer.model_id, summarizer.device)

    def stop(self) -> None:
        if self.batcher is not None:
            self.batcher.stop()

    @property
    def ready(self) -> bool:
        return self.summarizer is not None and self.batcher is not None and self.batcher.alive

    def model(self) -> Summarizer:
        if self.summarizer is None or self.batcher is None:
            raise ApiError(503, "not_ready", "the model is not loaded yet", {"Retry-After": "5"})
        return self.summarizer

    # -- input ---------------------------------------------------------------------------------------------------

    def render(self, text: str, language: str) -> RenderedDocument:
        """Render like `generate` did for the training data: the same renderer with the model's render settings.
        A renderer per thread: one holds a drawing surface and is not shared."""
        summarizer = self.model()
        renderer: PageRenderer | None = getattr(self._local, "renderer", None)
        if renderer is None or renderer.cfg is not summarizer.render_config:
            renderer = self._local.renderer = PageRenderer(summarizer.render_config)
        return renderer.render(text, language)

    def prepare(self, pages: Sequence[bytes | Image.Image]) -> PreparedPages:
        """The processor's work on one document, done here in a request thread so that the model thread only runs
        the model (per-document preprocessing does not shrink with batching). One at a time: the tokenizer is
        shared."""
        summarizer = self.model()
        try:
            with self._prepare_lock:
                return summarizer.prepare(pages)
        except Exception as error:
            log.warning("pages refused by the processor: %s", type(error).__name__)
            raise ApiError(422, "unusable_pages", "the pages cannot be prepared for the model") from None

    def text_pages(self, text: str, language: str) -> tuple[RenderedDocument, PreparedPages, float]:
        started = time.perf_counter()
        document = self.render(text, language)
        return document, self.prepare(document.pages), time.perf_counter() - started

    def file_pages(self, data: bytes) -> tuple[Upload, PreparedPages | None, float]:
        started = time.perf_counter()
        upload = read_upload(data, self.cfg.limits)
        prepared = self.prepare(upload.pages) if upload.pages else None
        return upload, prepared, time.perf_counter() - started

    def check_text(self, text: str, what: str = "the text") -> None:
        if not text.strip():
            raise ApiError(422, "empty_text", f"{what} is empty")
        if len(text) > self.cfg.limits.max_text_chars:
            raise ApiError(
                413,
                "text_too_long",
                f"{what} has {len(text):,} characters; the limit is {self.cfg.limits.max_text_chars:,}",
            )

    # -- model ---------------------------------------------------------------------------------------------------

    async def generate(
        self,
        documents: Sequence[PreparedPages],
        options: GenerationOptions,
        started: float,
        on_tokens: Sequence[TokenListener | None] | None = None,
    ) -> list[Done]:
        self.model()
        assert self.batcher is not None
        timeout = self.cfg.batching.request_timeout_s - (time.perf_counter() - started)
        try:
            done = await self.batcher.run(documents, options, max(timeout, 0.001), on_tokens)
        except QueueFullError as full:
            raise ApiError(
                503, "queue_full", "the server is busy: try again later", {"Retry-After": str(full.retry_after)}
            ) from None
        except WorkerStoppedError:
            raise ApiError(503, "not_ready", "the server is shutting down", {"Retry-After": "5"}) from None
        except TimeoutError:
            raise ApiError(
                504, "timeout", f"not answered within {self.cfg.batching.request_timeout_s:g} s: try a shorter request"
            ) from None
        except Exception as error:
            log.error("generation failed: %s", type(error).__name__)
            raise ApiError(500, "generation_failed", "the model failed on this request") from None
        for item in done:
            if item.summary.error is not None:
                log.error("generation failed for one document: %s", item.summary.error.split(":")[0])
                raise ApiError(500, "generation_failed", "the model failed on this document")
        return done

    def count_tokens(self, text: str) -> int:
        assert self.counter is not None
        return self.counter.count(text)


def _b64_png(page: bytes | Image.Image) -> str:
    if isinstance(page, Image.Image):
        buffer = io.BytesIO()
        page.save(buffer, format="PNG", compress_level=1)
        page = buffer.getvalue()
    return base64.b64encode(page).decode("ascii")


def _result(
    done: Done,
    pages: Sequence[bytes | Image.Image],
    *,
    started: float,
    render_s: float,
    text_tokens: int | None = None,
    dropped_chars: int = 0,
    return_pages: bool = False,
) -> SummaryResult:
    summary = done.summary
    compression = round(text_tokens / summary.vision_tokens, 3) if text_tokens and summary.vision_tokens else None
    return SummaryResult(
        summary=summary.text,
        pages_rendered=len(pages),
        pages_used=summary.pages,
        pages_dropped=summary.pages_dropped,
        dropped_chars=dropped_chars,
        vision_tokens=summary.vision_tokens,
        text_tokens=text_tokens,
        compression=compression,
        new_tokens=summary.new_tokens,
        finished=summary.finished,
        logprob=summary.logprob,
        timing=Timing(
            render_ms=round(render_s * 1000, 2),
            queue_ms=round(done.queued_s * 1000, 2),
            generate_ms=round(done.generate_s * 1000, 2),
            total_ms=round((time.perf_counter() - started) * 1000, 2),
            batch_size=done.batch_size,
        ),
        page_images=[_b64_png(page) for page in pages] if return_pages else None,
    )


_BEARER = HTTPBearer(auto_error=False, description="DEEPSYNTH_API_KEY, when the server has one")


class _RequireKey:
    """The API key check: a no-op without a key; with one, `Authorization: Bearer <key>` or 401."""

    def __init__(self, settings: Settings) -> None:
        key = settings.api_key.get_secret_value() if settings.api_key is not None else ""
        self._expected = key.encode("utf-8") if key else None

    async def __call__(
        self, request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)]
    ) -> None:
        if self._expected is None:
            return
        if not bearer_matches(request.headers.get("authorization"), self._expected):
            raise ApiError(401, UNAUTHORIZED["error"], UNAUTHORIZED["message"], {"WWW-Authenticate": "Bearer"})


def create_app(source: Summarizer | Loader, cfg: ServeConfig, settings: Settings) -> FastAPI:
    """The API around one model. `source` is a loaded Summarizer or a function that loads one (called once, in
    the lifespan, off the event loop). Limits, batching and docs come from `cfg`; the API key and CORS origins
    from `settings`."""
    metrics = Metrics()
    state = ServeState(source, cfg, metrics)

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
    app.state.serve = state
    auth = Depends(_RequireKey(settings))
    docs_deps = [] if cfg.public_docs else [auth]
    api = APIRouter(prefix="/v1", dependencies=[auth], responses=ERRORS)

    # -- errors: one JSON shape, with the error counted ----------------------------------------------------------

    def _error(status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
        metrics.errors.labels(code=code).inc()
        return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> JSONResponse:
        return _error(error.status, error.code, error.message, error.headers)

    @app.exception_handler(InputError)
    async def _input_error(request: Request, error: InputError) -> JSONResponse:
        return _error(error.status, error.code, error.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = error.errors()
        if any(item.get("type") == "json_invalid" for item in problems):
            return _error(422, "invalid_json", "the body is not valid JSON")
        return _error(422, "invalid_request", _describe(problems))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
        return _error(error.status_code, codes.get(error.status_code, "http_error"), str(error.detail), error.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.error("unexpected %s", type(error).__name__)
        return _error(500, "internal", "internal error")

    # -- health and metadata -----------------------------------------------------------------------------------

    @app.get("/healthz", tags=["health"], summary="The process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="The model is loaded and its thread runs", responses={503: {}})
    async def readyz() -> JSONResponse:
        if not state.ready:
            return JSONResponse({"status": "not_ready"}, status_code=503, headers={"Retry-After": "5"})
        return JSONResponse({"status": "ready", "model_id": state.model().model_id})

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics", dependencies=[auth])
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse(INDEX_HTML, headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store"})

    @app.get("/openapi.json", include_in_schema=False, dependencies=docs_deps)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=docs_deps)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="deepsynth API")

    @api.get("/model", response_model=ModelInfo, tags=["model"], summary="The model and how it reads documents")
    async def model_info() -> ModelInfo:
        summarizer = state.model()
        info = summarizer.info
        return ModelInfo(
            model_id=summarizer.model_id,
            preset={
                "name": info.name,
                "image_size": info.image_size,
                "vision_tokens_per_page": info.vision_tokens_per_image,
                "instruction": info.instruction,
            },
            device=str(summarizer.device),
            max_pages=summarizer.max_pages,
            render=summarizer.render_config.model_dump(mode="json", exclude={"font_dirs"}),
            render_source=summarizer.render_source,
            batching=cfg.batching.model_dump(mode="json"),
            limits=cfg.limits.model_dump(mode="json"),
        )

    # -- summarise -------------------------------------------------------------------------------------------------

    async def _summarize_text(
        text: str, language: str, options: GenerationOptions, return_pages: bool, started: float
    ) -> SummaryResult:
        state.check_text(text)
        document, prepared, render_s = await run_in_threadpool(state.text_pages, text, language)
        [done] = await state.generate([prepared], options, started)
        tokens = await run_in_threadpool(state.count_tokens, text)
        return _result(
            done,
            document.pages,
            started=started,
            render_s=render_s,
            text_tokens=tokens,
            dropped_chars=document.dropped_chars,
            return_pages=return_pages,
        )

    @api.post("/summarize", response_model=SummaryResult, tags=["summarize"], summary="Summarise a text")
    async def summarize(body: SummarizeRequest) -> SummaryResult:
        """The text is rendered into pages with the renderer settings the model was trained on (read from the
        checkpoint), and the model reads the pages."""
        started = time.perf_counter()
        return await _summarize_text(body.text, body.language, body.options, body.return_pages, started)

    @api.post("/summarize/batch", response_model=BatchResult, tags=["summarize"], summary="Summarise several texts")
    async def summarize_batch(body: BatchRequest) -> BatchResult:
        started = time.perf_counter()
        limit = cfg.limits.max_batch_texts
        if len(body.texts) > limit:
            raise ApiError(413, "too_many_texts", f"{len(body.texts)} texts in one request; the limit is {limit}")
        for index, text in enumerate(body.texts):
            state.check_text(text, f"text {index}")
        rendered = await run_in_threadpool(lambda: [state.text_pages(text, body.language) for text in body.texts])
        done = await state.generate([prepared for _, prepared, _ in rendered], body.options, started)
        tokens = await run_in_threadpool(lambda: [state.count_tokens(text) for text in body.texts])
        results = [
            _result(
                item,
                document.pages,
                started=started,
                render_s=render_s,
                text_tokens=count,
                dropped_chars=document.dropped_chars,
                return_pages=body.return_pages,
            )
            for item, (document, _, render_s), count in zip(done, rendered, tokens, strict=True)
        ]
        return BatchResult(results=results, total_ms=round((time.perf_counter() - started) * 1000, 2))

    @api.post("/summarize/file", response_model=SummaryResult, tags=["summarize"], summary="Summarise a file")
    async def summarize_file(
        file: Annotated[UploadFile, File(description="a page image (PNG, JPEG, WebP), a PDF, or a .txt/.md file")],
        language: Annotated[str, Form(max_length=16, pattern=LANGUAGE_PATTERN, description="language code")] = "und",
        options: Annotated[str | None, Form(description="generation options as a JSON object")] = None,
        return_pages: Annotated[bool, Form(description="also return the pages as base64 PNG")] = False,
    ) -> SummaryResult:
        """The file's type is read from its bytes, not its name. PDF pages are rasterised at `limits.pdf_dpi`."""
        started = time.perf_counter()
        generation = _parse_options(options)
        state.model()
        data = await file.read()
        upload, prepared, read_s = await run_in_threadpool(state.file_pages, data)
        if upload.text is not None:
            return await _summarize_text(upload.text, language or "und", generation, return_pages, started)
        assert prepared is not None  # an image or a PDF: pages
        [done] = await state.generate([prepared], generation, started)
        return await run_in_threadpool(
            lambda: _result(done, upload.pages, started=started, render_s=read_s, return_pages=return_pages)
        )

    app.include_router(api)
    from deepsynth_cli.serving.openai_routes import OpenAIErrorShape, openai_router

    app.include_router(openai_router([auth]), responses=ERRORS)  # /v1/chat/completions, /v1/models
    app.add_middleware(BodyLimit, limit=cfg.limits.max_request_bytes)
    if settings.api_key is not None and settings.api_key.get_secret_value():
        app.add_middleware(KeyGate, key=settings.api_key.get_secret_value().encode("utf-8"), metrics=metrics)
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
    return app


def _parse_options(raw: str | None) -> GenerationOptions:
    if raw is None or not raw.strip():
        return GenerationOptions()
    try:
        return GenerationOptions.model_validate(json.loads(raw))
    except json.JSONDecodeError:
        raise ApiError(422, "invalid_options", "options must be a JSON object") from None
    except ValidationError as error:
        raise ApiError(422, "invalid_options", _describe(error.errors(), prefix="options")) from None


def _describe(problems: Sequence[Any], prefix: str = "") -> str:
    """`field: what is wrong` per problem; never echoes the input itself."""
    parts = []
    for item in problems:
        loc = [str(part) for part in item.get("loc", ()) if part != "body"]
        where = ".".join([prefix, *loc] if prefix else loc) or "body"
        parts.append(f"{where}: {item.get('msg', 'invalid')}")
    return "; ".join(parts)
