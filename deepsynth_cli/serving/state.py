"""`ServeState`: what the app holds between requests (the model behind its batcher, the token counter, the
renderers, config and metrics). Routes reach it through the dependencies in `serving.deps`."""

from __future__ import annotations

import base64
import io
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from PIL import Image
from starlette.concurrency import run_in_threadpool

from deepsynth_cli.data.render import PageRenderer, RenderedDocument
from deepsynth_cli.data.tokens import TextTokenCounter
from deepsynth_cli.inference.options import GenerationOptions
from deepsynth_cli.inference.summarizer import PreparedPages, Summarizer, TokenListener
from deepsynth_cli.serving.config import ServeConfig
from deepsynth_cli.serving.errors import ApiError
from deepsynth_cli.serving.inputs import Upload, read_upload
from deepsynth_cli.serving.metrics import Metrics
from deepsynth_cli.serving.worker import BatchObserver, Done, MicroBatcher, QueueFullError, WorkerStoppedError

log = logging.getLogger("deepsynth.serve")

Loader = Callable[[], Summarizer]


def png_base64(page: bytes | Image.Image) -> str:
    """A page as base64 PNG (rendered pages already are PNG bytes)."""
    if isinstance(page, Image.Image):
        buffer = io.BytesIO()
        page.save(buffer, format="PNG", compress_level=1)
        page = buffer.getvalue()
    return base64.b64encode(page).decode("ascii")


def is_valid_unicode(text: str) -> bool:
    """False for a string holding a lone surrogate: JSON's \\ud800 escape makes one, and no renderer can draw it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@dataclass
class FilePages:
    """An upload as the model will read it: `upload.text`, or its pages already prepared."""

    upload: Upload  # its decoded pages are dropped once prepared: see `pixels` and `page_images`
    prepared: PreparedPages | None
    page_images: list[str] | None  # base64 PNG, when the client asked for the pages
    pixels: int  # of the pages read
    seconds: float


class ServeState:
    """The model (through the batcher), the token counter, renderers, the config and the metrics of one app."""

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
        self._upload_lock = threading.Lock()

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
        """The loaded model, or 503 `not_ready`."""
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

    def file_pages(self, data: bytes, return_pages: bool) -> FilePages:
        """An upload read, its pages prepared for the model and (`return_pages`) encoded for the answer, then the
        decoded pages dropped. One upload at a time: a decoded page can take 160 MB, and the processor's tensors
        are a fraction of that; a burst of large uploads then costs one decoded upload at a time, not all."""
        started = time.perf_counter()
        summarizer = self.model()
        with self._upload_lock:
            upload = read_upload(data, self.cfg.limits, summarizer.max_pages)
            prepared = self.prepare(upload.pages) if upload.pages else None
            images = [png_base64(page) for page in upload.pages] if return_pages and upload.pages else None
            pixels = upload.pixels
            upload.pages.clear()  # the only reference to the decoded pages
        return FilePages(upload, prepared, images, pixels, time.perf_counter() - started)

    def check_text(self, text: str, what: str = "the text") -> None:
        if not text.strip():
            raise ApiError(422, "empty_text", f"{what} is empty")
        if not is_valid_unicode(text):
            raise ApiError(
                422,
                "invalid_unicode",
                f"{what} holds a lone surrogate (\\ud800-\\udfff), not a character: send valid UTF-8 text",
            )
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
