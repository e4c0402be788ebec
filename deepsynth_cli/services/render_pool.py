"""The renderers of `deepsynth generate`: `workers` processes (or this one), each with its renderer and token
counter built once, turning (text, language) pairs into pages and their accounting."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any, Protocol

from deepsynth_cli import processes
from deepsynth_cli.config import RenderConfig
from deepsynth_cli.data.render import PageRenderer
from deepsynth_cli.data.tokens import TextTokenCounter
from deepsynth_cli.services.generate_report import MISSING_NAMED

# Worker side: one renderer and one token counter per process, built once.
_WORKER: tuple[PageRenderer, TextTokenCounter] | None = None


def init_worker(render: dict[str, Any], tokenizer: str) -> None:
    global _WORKER
    _WORKER = (PageRenderer(RenderConfig.model_validate(render)), TextTokenCounter(tokenizer))


@dataclass
class Rendered:
    """What a worker sends back for one document: its pages and their accounting."""

    pages: list[bytes]
    text_tokens: int  # tokens of the text drawn on the pages
    source_tokens: int  # tokens of the whole document
    dropped_chars: int
    missing_glyphs: int
    missing_chars: str  # up to MISSING_NAMED of the characters with no glyph


def render_batch(batch: list[tuple[str, str] | None]) -> list[Rendered | None]:
    """Render (text, language) pairs; None entries are skipped rows and stay None."""
    assert _WORKER is not None, "worker not initialised"
    renderer, counter = _WORKER
    results: list[Rendered | None] = []
    for item in batch:
        if item is None:
            results.append(None)
            continue
        text, language = item
        document = renderer.render(text, language)
        drawn = document.drawn_text
        # The pages bound the drawn text, so it is counted in one pass; the source can be any size. When the
        # pages show the document as it is, one count serves both.
        drawn_tokens = counter.count(drawn)
        source_tokens = drawn_tokens if drawn == text else counter.count_long(text)
        missing = ""
        if document.missing_glyphs:
            missing = "".join(sorted(c for c in set(drawn) if renderer.missing_glyphs(c)))[:MISSING_NAMED]
        results.append(
            Rendered(
                document.pages, drawn_tokens, source_tokens, document.dropped_chars, document.missing_glyphs, missing
            )
        )
    return results


class RenderPool(Protocol):
    """Where `render_batch` runs: the local process pool, or in process."""

    def submit(self, fn: Callable[[list[Any]], list[Any]], batch: list[Any], /) -> Future[list[Any]]: ...

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...


def make_pool(render_cfg: RenderConfig, tokenizer: str, workers: int) -> RenderPool:
    """The renderers: `workers` processes, each with its renderer and token counter built once (in process
    for one worker). The one place a pool is created."""
    render = render_cfg.model_dump(mode="json")
    if workers <= 1:
        return _InProcess(render, tokenizer)
    # forkserver, not fork: this process may run the upload thread, and threads do not survive fork().
    # The server imports this module once, so each worker starts without re-importing skia and pyarrow.
    context = get_context("forkserver")
    context.set_forkserver_preload([__name__])
    init, initargs = processes.tied_to_this_process(init_worker, (render, tokenizer))  # no orphans
    return ProcessPoolExecutor(workers, mp_context=context, initializer=init, initargs=initargs)


class _InProcess:
    """The one-worker path: same functions, no process hop (and no pickling of page bytes)."""

    def __init__(self, render: dict[str, Any], tokenizer: str) -> None:
        init_worker(render, tokenizer)

    def submit(self, fn: Callable[[list[Any]], list[Any]], batch: list[Any], /) -> Future[list[Any]]:
        future: Future[list[Any]] = Future()
        future.set_result(fn(batch))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return None
