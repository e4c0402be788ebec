"""The routes, thin: read the input (text rendered like the training pages, or an uploaded file), hand the pages to
the micro-batcher, shape the answer. Shared state comes from the dependencies in `serving.deps`.

Three routers: `health` (probes and metrics), `pages` (the page at /, the docs), `api` (everything under /v1,
behind the API key). `create_app` includes them all.
"""

from __future__ import annotations

import json
import time
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, File, Form, Request, UploadFile
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from deepsynth_cli.inference.options import GenerationOptions
from deepsynth_cli.serving.deps import ConfigDep, MetricsDep, RequireApiKey, RequireDocsKey, StateDep, SummarizerDep
from deepsynth_cli.serving.errors import ERRORS, ApiError, describe
from deepsynth_cli.serving.memory import LARGE_REQUEST_PIXELS, release_memory
from deepsynth_cli.serving.page import INDEX_HTML, PAGE_CSP
from deepsynth_cli.serving.schemas import (
    LANGUAGE_PATTERN,
    UNDETERMINED,
    BatchRequest,
    BatchResult,
    Language,
    ModelInfo,
    SummarizeRequest,
    SummaryResult,
    Timing,
)
from deepsynth_cli.serving.state import ServeState, png_base64
from deepsynth_cli.serving.worker import Done

health = APIRouter(tags=["health"])
pages = APIRouter(include_in_schema=False)
api = APIRouter(prefix="/v1", dependencies=[RequireApiKey], responses=ERRORS)

# -- health and metadata -------------------------------------------------------------------------------------------


@health.get("/healthz", summary="The process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@health.get("/readyz", summary="The model is loaded and its thread runs", responses={503: {}})
async def readyz(state: StateDep) -> JSONResponse:
    if not state.ready:
        return JSONResponse({"status": "not_ready"}, status_code=503, headers={"Retry-After": "5"})
    return JSONResponse({"status": "ready", "model_id": state.model().model_id})


@health.get("/metrics", summary="Prometheus metrics", dependencies=[RequireApiKey])
async def prometheus(metrics: MetricsDep) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


@pages.get("/")
async def index() -> HTMLResponse:
    return HTMLResponse(INDEX_HTML, headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store"})


@pages.get("/openapi.json", dependencies=[RequireDocsKey])
async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi())


# Swagger UI's files, served from the fastapi-offline wheel rather than a CDN: /docs works without internet.
DOCS_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon.png": "image/png",
}


@pages.get("/docs", dependencies=[RequireDocsKey])
async def docs() -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="deepsynth API",
        swagger_js_url="/docs/assets/swagger-ui-bundle.js",
        swagger_css_url="/docs/assets/swagger-ui.css",
        swagger_favicon_url="/docs/assets/favicon.png",
        swagger_ui_parameters={"validatorUrl": None},  # no call to validator.swagger.io
    )


@pages.get("/docs/assets/{name}")
async def docs_asset(name: str) -> Response:
    """Static files of Swagger UI: public (no data, no secret), long cached."""
    media_type = DOCS_ASSETS.get(name)
    if media_type is None:
        raise ApiError(404, "not_found", "no such file")
    from importlib.resources import files

    data = await run_in_threadpool((files("fastapi_offline") / "static" / name).read_bytes)
    return Response(data, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"})


@api.get("/model", response_model=ModelInfo, tags=["model"], summary="The model and how it reads documents")
async def model_info(summarizer: SummarizerDep, cfg: ConfigDep) -> ModelInfo:
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


# -- summarise -----------------------------------------------------------------------------------------------------


@api.post("/summarize", response_model=SummaryResult, tags=["summarize"], summary="Summarise a text")
async def summarize(body: SummarizeRequest, state: StateDep) -> SummaryResult:
    """The text is rendered into pages with the renderer settings the model was trained on (read from the
    checkpoint), and the model reads the pages."""
    started = time.perf_counter()
    return await summarize_text(state, body.text, body.language, body.options, body.return_pages, started)


@api.post("/summarize/batch", response_model=BatchResult, tags=["summarize"], summary="Summarise several texts")
async def summarize_batch(body: BatchRequest, state: StateDep, cfg: ConfigDep) -> BatchResult:
    started = time.perf_counter()
    limit = cfg.limits.max_batch_texts
    if len(body.texts) > limit:
        raise ApiError(413, "too_many_texts", f"{len(body.texts)} texts in one request; the limit is {limit}")
    for index, text in enumerate(body.texts):
        state.check_text(text, f"text {index}")
    rendered = await run_in_threadpool(lambda: [state.text_pages(text, body.language) for text in body.texts])
    done = await state.generate([prepared for _, prepared, _ in rendered], body.options, started)
    tokens = await run_in_threadpool(lambda: [state.count_tokens(document.drawn_text) for document, _, _ in rendered])
    results = [
        _result(
            item,
            len(document.pages),
            [png_base64(page) for page in document.pages] if body.return_pages else None,
            started=started,
            render_s=render_s,
            text_tokens=count,
            dropped_chars=document.dropped_chars,
        )
        for item, (document, _, render_s), count in zip(done, rendered, tokens, strict=True)
    ]
    return BatchResult(results=results, total_ms=round((time.perf_counter() - started) * 1000, 2))


@api.post("/summarize/file", response_model=SummaryResult, tags=["summarize"], summary="Summarise a file")
async def summarize_file(
    state: StateDep,
    background: BackgroundTasks,
    file: Annotated[UploadFile, File(description="a page image (PNG, JPEG, WebP), a PDF, or a .txt/.md file")],
    language: Annotated[
        Language, Form(max_length=16, pattern=LANGUAGE_PATTERN, description="language code (fr, en, ... or und)")
    ] = UNDETERMINED,
    options: Annotated[str | None, Form(description="generation options as a JSON object")] = None,
    return_pages: Annotated[bool, Form(description="also return the pages as base64 PNG")] = False,
) -> SummaryResult:
    """The file's type is read from its bytes, not its name. PDF pages are rasterised at `limits.pdf_dpi`, only
    as many as the model reads."""
    started = time.perf_counter()
    generation = parse_options(options)
    state.model()
    data = await file.read()
    await file.close()
    read = await run_in_threadpool(state.file_pages, data, return_pages)
    del data
    if read.pixels > LARGE_REQUEST_PIXELS:
        background.add_task(release_memory)  # after the answer is sent, when nothing holds the pages any more
    upload = read.upload
    if upload.text is not None:
        return await summarize_text(state, upload.text, language or UNDETERMINED, generation, return_pages, started)
    assert read.prepared is not None  # an image or a PDF: pages
    [done] = await state.generate([read.prepared], generation, started)
    result = _result(done, upload.page_count, read.page_images, started=started, render_s=read.seconds)
    result.notice = upload.notice
    return result


ROUTERS = (health, pages, api)

# -- helpers -------------------------------------------------------------------------------------------------------


async def summarize_text(
    state: ServeState, text: str, language: str, options: GenerationOptions, return_pages: bool, started: float
) -> SummaryResult:
    """One text: checked, rendered like the training pages, summarised, its cost counted."""
    state.check_text(text)
    document, prepared, render_s = await run_in_threadpool(state.text_pages, text, language)
    [done] = await state.generate([prepared], options, started)
    tokens = await run_in_threadpool(state.count_tokens, document.drawn_text)  # what the pages show, as generate
    return _result(
        done,
        len(document.pages),
        [png_base64(page) for page in document.pages] if return_pages else None,
        started=started,
        render_s=render_s,
        text_tokens=tokens,
        dropped_chars=document.dropped_chars,
    )


def parse_options(raw: str | None) -> GenerationOptions:
    """Generation options sent as a JSON string (a multipart form field)."""
    if raw is None or not raw.strip():
        return GenerationOptions()
    try:
        return GenerationOptions.model_validate(json.loads(raw))
    except json.JSONDecodeError:
        raise ApiError(422, "invalid_options", "options must be a JSON object") from None
    except ValidationError as error:
        raise ApiError(422, "invalid_options", describe(error.errors(), prefix="options")) from None


def _result(
    done: Done,
    page_count: int,
    page_images: list[str] | None,
    *,
    started: float,
    render_s: float,
    text_tokens: int | None = None,
    dropped_chars: int = 0,
) -> SummaryResult:
    summary = done.summary
    compression = round(text_tokens / summary.vision_tokens, 3) if text_tokens and summary.vision_tokens else None
    return SummaryResult(
        summary=summary.text,
        pages_rendered=page_count,
        pages_used=summary.pages,
        pages_dropped=page_count - summary.pages,
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
        page_images=page_images,
    )
