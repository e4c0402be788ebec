"""`deepsynth generate`: stream documents, render their pages, write resumable Parquet shards.

The pipeline per dataset and split:

    source rows -> keep this machine's part (row index % num_shards) -> skip unusable rows (counted per reason)
      -> render in worker processes (bounded window, results in source order) -> shard writer -> manifest

Each shard holds the rows of `rows_per_shard` consecutive source positions of this part. Its footer records
what it covers, so a rerun after a kill reuses finished shards, renders only the rest and ends with every row
exactly once. Memory is bounded by the in-flight window and one row group, not by the dataset size.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Protocol

from deepsynth_cli import __version__, hints, processes
from deepsynth_cli.config import GenerateConfig, RenderConfig
from deepsynth_cli.credentials import describe_token, hub_namespace, hub_token, is_offline, require_online
from deepsynth_cli.data import hub, hub_commits, rendered, shards
from deepsynth_cli.data.hub import HubTarget
from deepsynth_cli.data.lengths import word_count
from deepsynth_cli.data.render import PageRenderer
from deepsynth_cli.data.shards import ShardMeta, ShardWriter
from deepsynth_cli.data.sources import UNDETERMINED_LANGUAGE, Document, Source, open_source
from deepsynth_cli.data.tokens import TextTokenCounter
from deepsynth_cli.errors import ConfigError, DatasetError, OutputError
from deepsynth_cli.settings import Settings, get_settings

FORMAT_VERSION = rendered.FORMAT_VERSION
_BATCH_DOCS = 8  # documents per task sent to a worker: large enough to amortise pickling, small for ordering
_SPLIT_ALIASES = {"val": "validation", "valid": "validation", "dev": "validation"}


# Events: the service reports, the CLI decides how to show it.
@dataclass(frozen=True)
class SplitStarted:
    dataset: str
    split: str
    total: int | None  # source rows this part will go through, when known


@dataclass(frozen=True)
class Advanced:
    dataset: str
    split: str
    documents: int  # source rows handled since the last event (rendered or skipped)
    pages: int


@dataclass(frozen=True)
class ShardWritten:
    dataset: str
    split: str
    path: Path
    rows: int


@dataclass(frozen=True)
class Notice:
    message: str


Event = SplitStarted | Advanced | ShardWritten | Notice
EventSink = Callable[[Event], None]


@dataclass
class SplitReport:
    rows: int = 0
    pages: int = 0
    truncated_rows: int = 0
    dropped_chars: int = 0
    text_tokens: int = 0
    vision_tokens: int = 0
    source_tokens: int = 0
    missing_glyphs: int = 0
    missing_chars: str = ""  # a few of the characters no font could draw
    undetermined_rows: int = 0  # rows whose language is "und"
    skipped: dict[str, int] = field(default_factory=dict)
    shards: int = 0
    shards_written: int = 0
    shards_reused: int = 0

    def add(self, meta: ShardMeta) -> None:
        self.rows += meta.rows
        self.pages += meta.pages
        self.truncated_rows += meta.truncated_rows
        self.dropped_chars += meta.dropped_chars
        self.text_tokens += meta.text_tokens
        self.vision_tokens += meta.vision_tokens
        self.source_tokens += meta.source_tokens
        self.missing_glyphs += meta.missing_glyphs
        self.missing_chars = _merge_chars(self.missing_chars, meta.missing_chars)
        self.undetermined_rows += meta.undetermined_rows
        for reason, count in meta.skipped.items():
            self.skipped[reason] = self.skipped.get(reason, 0) + count
        self.shards += 1

    @property
    def compression(self) -> float | None:
        return rendered.compression(self.text_tokens, self.vision_tokens)

    @property
    def missing_glyph_warning(self) -> str | None:
        """One line naming a few characters with no glyph (shown as boxes), or None when every one was drawn."""
        if not self.missing_glyphs:
            return None
        named = ", ".join(f"{char!r} U+{ord(char):04X}" for char in self.missing_chars)
        return f"{self.missing_glyphs} drawn character(s) had no glyph in any font and show as boxes ({named})"


@dataclass
class DatasetReport:
    dataset: str
    location: str
    splits: dict[str, SplitReport] = field(default_factory=dict)
    font_size: float | None = None
    target_compression: float | None = None  # asked for; each split's `compression` is what its rows achieve
    seconds: float = 0.0
    uploaded_bytes: int = 0
    commits: int = 0

    def to_dict(self) -> dict[str, Any]:
        splits = {
            name: {**asdict(split), "compression": split.compression, "warning": split.missing_glyph_warning}
            for name, split in self.splits.items()
        }
        skipped: dict[str, int] = {}
        for split in self.splits.values():
            for reason, count in split.skipped.items():
                skipped[reason] = skipped.get(reason, 0) + count
        return {
            "dataset": self.dataset,
            "location": self.location,
            "font_size": self.font_size,
            "target_compression": self.target_compression,
            "rows": {name: split.rows for name, split in self.splits.items()},
            "pages": sum(split.pages for split in self.splits.values()),
            "truncated_rows": sum(split.truncated_rows for split in self.splits.values()),
            "skipped": skipped,
            "splits": splits,
            **({"uploaded_bytes": self.uploaded_bytes, "commits": self.commits} if self.commits else {}),
            "seconds": round(self.seconds, 3),
        }


@dataclass
class GenerateReport:
    datasets: list[DatasetReport] = field(default_factory=list)
    preview_files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # warnings not tied to one split (preview, languages)
    seconds: float = 0.0

    def warnings(self) -> list[str]:
        """What the user should know before using the dataset: characters with no glyph, unknown languages."""
        found = list(self.notes)
        for dataset in self.datasets:
            for name, split in dataset.splits.items():
                if split.missing_glyph_warning:
                    found.append(f"{dataset.dataset}/{name}: {split.missing_glyph_warning}")
                if split.undetermined_rows:
                    found.append(
                        f"{dataset.dataset}/{name}: {split.undetermined_rows} row(s) have language 'und': fonts fall "
                        "back per character and `eval` cannot score them; pass --language or --language-column"
                    )
        return found

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"datasets": [report.to_dict() for report in self.datasets]}
        if self.preview_files:
            out["preview_files"] = [str(path) for path in self.preview_files]
        out["warnings"] = self.warnings()
        out["seconds"] = round(self.seconds, 3)
        return out


# ---------------------------------------------------------------------------------------------------------------
# Worker side: one renderer and one token counter per process, built once.
_WORKER: tuple[PageRenderer, TextTokenCounter] | None = None


def _init_worker(render: dict[str, Any], tokenizer: str) -> None:
    global _WORKER
    _WORKER = (PageRenderer(RenderConfig.model_validate(render)), TextTokenCounter(tokenizer))


_MISSING_NAMED = 5  # characters named in a missing-glyph warning


@dataclass
class Rendered:
    """What a worker sends back for one document: its pages and their accounting."""

    pages: list[bytes]
    text_tokens: int  # tokens of the text drawn on the pages
    source_tokens: int  # tokens of the whole document
    dropped_chars: int
    missing_glyphs: int
    missing_chars: str  # up to _MISSING_NAMED of the characters with no glyph


def _merge_chars(known: str, more: str) -> str:
    return "".join(dict.fromkeys(known + more))[:_MISSING_NAMED]


def _render_batch(batch: list[tuple[str, str] | None]) -> list[Rendered | None]:
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
            missing = "".join(sorted(c for c in set(drawn) if renderer.missing_glyphs(c)))[:_MISSING_NAMED]
        results.append(
            Rendered(
                document.pages, drawn_tokens, source_tokens, document.dropped_chars, document.missing_glyphs, missing
            )
        )
    return results


class Executor(Protocol):
    """Where `_render_batch` runs: the local process pool, in process, or (later) remote tasks."""

    def submit(self, fn: Callable[[list[Any]], list[Any]], batch: list[Any], /) -> Future[list[Any]]: ...

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...


def make_executor(render_cfg: RenderConfig, tokenizer: str, workers: int) -> Executor:
    """The renderers: `workers` processes, each with its renderer and token counter built once (in process
    for one worker). The one place a pool is created."""
    render = render_cfg.model_dump(mode="json")
    if workers <= 1:
        return _InProcess(render, tokenizer)
    # forkserver, not fork: this process may run the upload thread, and threads do not survive fork().
    # The server imports this module once, so each worker starts without re-importing skia and pyarrow.
    context = get_context("forkserver")
    context.set_forkserver_preload([__name__])
    init, initargs = processes.tied_to_this_process(_init_worker, (render, tokenizer))  # no orphans
    return ProcessPoolExecutor(workers, mp_context=context, initializer=init, initargs=initargs)


class _InProcess:
    """The one-worker path: same functions, no process hop (and no pickling of page bytes)."""

    def __init__(self, render: dict[str, Any], tokenizer: str) -> None:
        _init_worker(render, tokenizer)

    def submit(self, fn: Callable[[list[Any]], list[Any]], batch: list[Any], /) -> Future[list[Any]]:
        future: Future[list[Any]] = Future()
        future.set_result(fn(batch))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        return None


# ---------------------------------------------------------------------------------------------------------------
def output_split(name: str) -> str:
    """The split name in the output layout: `val`/`dev` become `validation`; only word characters survive."""
    name = _SPLIT_ALIASES.get(name.lower(), name)
    return re.sub(r"\W+", "_", name).strip("_") or "train"


def skip_reason(document: Document, cfg: GenerateConfig) -> str | None:
    """Why a row cannot be used, or None. Reasons are counted per split, never dropped silently."""
    text, summary = document.text.strip(), document.summary.strip()
    if not text:
        return "empty_text"
    if not summary:
        return "empty_summary"
    if word_count(text) < cfg.min_text_words:
        return "text_too_short"
    if word_count(summary) < cfg.min_summary_words:
        return "summary_too_short"
    if len(summary) >= len(text):
        return "summary_not_shorter_than_text"
    return None


def fingerprint(cfg: GenerateConfig, source: Source) -> str:
    """Everything that changes what a shard contains. Shards with another fingerprint cannot be mixed in."""
    return rendered.fingerprint(fingerprint_inputs(cfg, source))


def fingerprint_inputs(cfg: GenerateConfig, source: Source) -> dict[str, Any]:
    """What the fingerprint hashes; kept in the manifest so a mismatch can name the settings that differ."""
    return {
        "format": FORMAT_VERSION,
        "render": cfg.render.model_dump(mode="json"),
        "tokenizer": cfg.tokenizer,
        "rows_per_shard": cfg.rows_per_shard,
        "min_text_words": cfg.min_text_words,
        "min_summary_words": cfg.min_summary_words,
        "language_column": cfg.language_column,
        "text_column": cfg.text_column,
        "summary_column": cfg.summary_column,
        "language": source.language,
    }


def _reusable(meta: ShardMeta | None, limit: int | None) -> bool:
    """A finished shard can stand if it covers all the source rows this run asks of its chunk."""
    if meta is None:
        return False
    if meta.end in ("full", "exhausted"):
        return True
    return limit is not None and meta.limit is not None and meta.limit >= limit


def _positions_under(limit: int, part: int, parts: int) -> int:
    """How many of the first `limit` source rows belong to `part` (rows are dealt round-robin)."""
    return max(0, math.ceil((limit - part) / parts))


def _split_done(chunks: dict[int, ShardMeta], cfg: GenerateConfig) -> bool:
    """True when earlier shards already cover this part of the split: no need to even stream it."""
    if cfg.max_samples is not None:
        needed = math.ceil(_positions_under(cfg.max_samples, cfg.shard_index, cfg.num_shards) / cfg.rows_per_shard)
    else:
        ends = [chunk for chunk, meta in chunks.items() if meta.end == "exhausted"]
        if not ends:
            return False
        needed = min(ends) + 1
    for chunk in range(needed):
        meta = chunks.get(chunk)
        if not _reusable(meta, cfg.max_samples):
            return False
        if meta is not None and meta.end == "exhausted":
            return True
    return True


def _check_existing(
    existing: dict[str, ShardMeta], fp: str, cfg: GenerateConfig, folder: Path, inputs: dict[str, Any] | None = None
) -> None:
    for name, meta in existing.items():
        if meta.fingerprint != fp:
            recorded = rendered.read_local_manifest(folder) or {}
            changed = hints.settings_changed(recorded.get("fingerprint_inputs"), inputs or {})
            raise OutputError(
                f"{folder} already holds shards made with other settings ({name}){changed}",
                hint="use the same settings to resume, or give another --out (or delete the folder) to start over",
            )
        if meta.parts != cfg.num_shards:
            raise OutputError(
                f"{folder} was generated with --num-shards {meta.parts}, not {cfg.num_shards}",
                hint=f"rerun with --num-shards {meta.parts}, or use another --out",
            )


def _source_label(source: Source) -> dict[str, Any]:
    spec = source.spec
    if spec is None:
        return {"name": source.name, "language": source.language}
    return {
        "name": source.name,
        "key": spec.key,
        "hub_id": spec.hub_id,
        "config": spec.config,
        "revision": spec.revision,
        "text_column": spec.text_column,
        "summary_column": spec.summary_column,
        "language": source.language,
        "license": spec.license,
        "citation": spec.citation,
    }


def build_manifest(metas: Iterable[ShardMeta], cfg: GenerateConfig, source: Source, fp: str) -> dict[str, Any]:
    """Summarise shards (every part, every split) into the manifest of a dataset folder or repo."""
    return rendered.build_manifest(metas, manifest_header(cfg, source, fp), cfg.render.page_size)


def manifest_header(cfg: GenerateConfig, source: Source, fp: str) -> dict[str, Any]:
    """What the manifest says besides the shards: generator, source, settings."""
    return {
        "generator": f"deepsynth {__version__}",
        "dataset": source.name,
        "source": _source_label(source),
        "fingerprint": fp,
        "fingerprint_inputs": fingerprint_inputs(cfg, source),
        "render": cfg.render.model_dump(mode="json"),
        "tokenizer": cfg.tokenizer,
        "rows_per_shard": cfg.rows_per_shard,
        "num_shards": cfg.num_shards,
    }


# ---------------------------------------------------------------------------------------------------------------
@dataclass
class _Item:
    """One source row of this part, in order: a document to render, or a skipped row with its reason."""

    chunk: int
    position: int
    document: Document
    reason: str | None


class _ChunkState:
    def __init__(self, folder: Path, split: str, chunk: int, cfg: GenerateConfig, fp: str) -> None:
        name = shards.shard_name(split, cfg.shard_index, cfg.num_shards, chunk)
        self.writer = ShardWriter(folder, name)
        self.meta = ShardMeta(
            split=split,
            part=cfg.shard_index,
            parts=cfg.num_shards,
            chunk=chunk,
            first_position=chunk * cfg.rows_per_shard,
            positions=0,
            end="full",
            limit=None,
            fingerprint=fp,
        )


def _generate_split(
    source: Source,
    split: str,
    folder: Path,
    cfg: GenerateConfig,
    fp: str,
    existing: dict[int, ShardMeta],
    pool: Executor,
    window: int,
    emit: EventSink,
    on_shard: Callable[[Path, ShardMeta], None] | None = None,
) -> SplitReport:
    name = output_split(split)
    report = SplitReport()
    total = None
    if cfg.max_samples is not None:
        total = _positions_under(cfg.max_samples, cfg.shard_index, cfg.num_shards)
    emit(SplitStarted(source.name, name, total))

    stream_end = {"end": "exhausted"}

    def items() -> Iterator[_Item]:
        position = 0
        for index, document in enumerate(source.documents(split)):
            if cfg.max_samples is not None and index >= cfg.max_samples:
                stream_end["end"] = "limit"
                return
            if index % cfg.num_shards != cfg.shard_index:
                continue
            chunk = position // cfg.rows_per_shard
            if _reusable(existing.get(chunk), cfg.max_samples):
                position += 1
                continue
            yield _Item(chunk, position, document, skip_reason(document, cfg))
            position += 1

    def batches() -> Iterator[list[_Item]]:
        batch: list[_Item] = []
        for item in items():
            batch.append(item)
            if len(batch) >= _BATCH_DOCS:
                yield batch
                batch = []
        if batch:
            yield batch

    reused = {chunk: meta for chunk, meta in existing.items()}
    current: _ChunkState | None = None
    in_flight: deque[tuple[list[_Item], Future[Any]]] = deque()
    feed = batches()

    def submit_next() -> bool:
        batch = next(feed, None)
        if batch is None:
            return False
        payload = [None if item.reason else (item.document.text, item.document.language) for item in batch]
        in_flight.append((batch, pool.submit(_render_batch, payload)))
        return True

    def finish(state: _ChunkState, end: str) -> None:
        if state.meta.positions == cfg.rows_per_shard and end != "exhausted":
            # Holds every row its range can hold. A source that ended exactly here keeps "exhausted": it is the
            # mark a rerun looks for to know the split is complete without streaming it again.
            end = "full"
        state.meta.end = end
        state.meta.limit = cfg.max_samples if end == "limit" else None
        path = state.writer.commit(state.meta)
        if on_shard is not None:
            on_shard(path, state.meta)
        reused.pop(state.meta.chunk, None)
        report.add(state.meta)
        report.shards_written += 1
        emit(ShardWritten(source.name, name, path, state.meta.rows))

    try:
        while len(in_flight) < window and submit_next():
            pass
        while in_flight:
            batch, future = in_flight.popleft()
            results = future.result()
            submit_next()
            pages_now = 0
            for item, result in zip(batch, results, strict=True):
                if current is None or item.chunk != current.meta.chunk:
                    if current is not None:
                        finish(current, "full")
                    current = _ChunkState(folder, name, item.chunk, cfg, fp)
                meta = current.meta
                meta.positions = item.position - meta.first_position + 1
                if result is None:
                    reason = item.reason or "unknown"
                    meta.skipped[reason] = meta.skipped.get(reason, 0) + 1
                    continue
                document = item.document
                row = rendered.build_row(
                    pages=result.pages,
                    text=document.text,
                    summary=document.summary,
                    language=document.language,
                    source_dataset=source.name,
                    source_split=split,
                    source_id=document.source_id,
                    text_tokens=result.text_tokens,
                    source_tokens=result.source_tokens,
                    dropped_chars=result.dropped_chars,
                    missing_glyphs=result.missing_glyphs,
                    page_size=cfg.render.page_size,
                )
                current.writer.add(row)
                meta.rows += 1
                meta.pages += row["num_pages"]
                meta.text_tokens += row["text_tokens"]
                meta.source_tokens += row["source_tokens"]
                meta.vision_tokens += row["vision_tokens"]
                meta.truncated_rows += row["truncated"]
                meta.dropped_chars += row["dropped_chars"]
                meta.missing_glyphs += row["missing_glyphs"]
                meta.missing_chars = _merge_chars(meta.missing_chars, result.missing_chars)
                meta.undetermined_rows += document.language == UNDETERMINED_LANGUAGE
                pages_now += row["num_pages"]
            emit(Advanced(source.name, name, len(batch), pages_now))
        if current is not None:
            finish(current, stream_end["end"])
            current = None
    finally:
        if current is not None:  # interrupted or failed: the half-written shard goes, finished ones stay
            current.writer.abort()
        for _, future in in_flight:
            future.cancel()

    for meta in reused.values():
        report.add(meta)
        report.shards_reused += 1
    return report


def _preview(source: Source, cfg: GenerateConfig, target: Path, renderer: PageRenderer, notes: list[str]) -> list[Path]:
    """Render the first usable documents of each split to PNG files, to see what the model will see. A page
    with characters no font can draw adds a line to `notes`."""
    written: list[Path] = []
    missing, chars = 0, ""
    folder = target / source.name
    folder.mkdir(parents=True, exist_ok=True)
    for split in cfg.splits or source.splits():
        shown = 0
        for index, document in enumerate(source.documents(split)):
            if shown >= cfg.preview_docs or (cfg.max_samples is not None and index >= cfg.max_samples):
                break
            if skip_reason(document, cfg):
                continue
            drawn_doc = renderer.render(document.text, document.language)
            if drawn_doc.missing_glyphs:
                missing += drawn_doc.missing_glyphs
                drawn = drawn_doc.drawn_text
                chars = _merge_chars(chars, "".join(sorted(c for c in set(drawn) if renderer.missing_glyphs(c))))
            stem = re.sub(r"[^\w.-]+", "_", document.source_id)[:60]
            for number, page in enumerate(drawn_doc.pages, start=1):
                suffix = "png" if cfg.render.image_format == "png" else "webp"
                path = folder / f"{output_split(split)}-{shown:03d}-{stem}-page{number}.{suffix}"
                path.write_bytes(page)
                written.append(path)
            shown += 1
    if missing:
        warning = SplitReport(missing_glyphs=missing, missing_chars=chars).missing_glyph_warning
        notes.append(f"{source.name} (preview): {warning}")
    return written


def run(
    cfg: GenerateConfig,
    on_event: EventSink | None = None,
    settings: Settings | None = None,
    committers: Mapping[str, hub_commits.CommitSink] | None = None,
) -> GenerateReport:
    """Generate every dataset in `cfg`. Callable from Python; reports progress through `on_event`.

    `committers` (repo id -> committer) is for a part of a larger run: its shards for those repos go to the
    given committer, and whoever owns it writes manifest and card once all parts are done (`_describe_repo`).
    """
    emit: EventSink = on_event or (lambda event: None)
    settings = settings or get_settings()
    keep_local = cfg.out is not None  # with the Hub as the store, a local copy stays only when --out asks for it
    cfg = cfg.resolved(settings)
    assert cfg.out is not None and cfg.num_workers is not None
    started = time.perf_counter()
    report = GenerateReport()
    sources = [
        open_source(
            name,
            text_column=cfg.text_column,
            summary_column=cfg.summary_column,
            language=cfg.language,
            splits=cfg.splits,
            language_column=cfg.language_column,
        )
        for name in cfg.datasets
    ]

    if cfg.preview is not None:
        for source in sources:
            source_cfg = _fit_compression(cfg, source, emit)
            renderer = PageRenderer(source_cfg.render)
            report.preview_files += _preview(source, source_cfg, cfg.preview, renderer, report.notes)
        report.seconds = time.perf_counter() - started
        return report

    if cfg.store != "local":
        emit(Notice(describe_token(settings)))  # the run's first line: where the token comes from, never the token
    stores = [_plan_store(cfg, settings, source, keep_local) for source in sources]
    for store in stores:
        if store.target is not None and committers and store.target.repo_id in committers:
            store.committer = committers[store.target.repo_id]
    locks = processes.output_locks([store.folder for store in stores])  # one run per output folder
    try:
        fitted = [_fit_compression(cfg, source, emit) for source in sources]  # before any rendering: refuse early
        window = 2 * cfg.num_workers
        for source, store, source_cfg in zip(sources, stores, fitted, strict=True):
            pool = make_executor(source_cfg.render, source_cfg.tokenizer, cfg.num_workers)
            try:
                dataset = _generate_dataset(source, source_cfg, store, pool, window, emit)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
            dataset.font_size = source_cfg.render.font_size
            dataset.target_compression = cfg.render.target_compression
            report.datasets.append(dataset)
    finally:
        locks.close()
    report.seconds = time.perf_counter() - started
    return report


def _fit_compression(cfg: GenerateConfig, source: Source, emit: EventSink) -> GenerateConfig:
    """`cfg` with the font size that meets `render.target_compression` on a sample of this source (unchanged
    without a target). The sample is the first usable documents of the first split, so every machine and every
    resumed run choose the same size."""
    target = cfg.render.target_compression
    if target is None:
        return cfg
    from deepsynth_cli.data.compression import SAMPLE_DOCS, fit_font_size

    split = (cfg.splits or source.splits())[0]
    texts: list[str] = []
    language = source.language
    for document in source.documents(split):
        if len(texts) >= SAMPLE_DOCS:
            break
        if skip_reason(document, cfg) is None:
            texts.append(document.text)
            language = document.language
    fit = fit_font_size(cfg.render, target, texts, language, TextTokenCounter(cfg.tokenizer))
    emit(
        Notice(
            f"{source.name}: font size {fit.font_size} px gives {fit.achieved:.2f}x on full pages of "
            f"{fit.sample_docs} {split} documents (target {target:g}x)"
        )
    )
    return cfg.model_copy(update={"render": cfg.render.model_copy(update={"font_size": float(fit.font_size)})})


@dataclass
class _Store:
    """Where one dataset goes: a local folder, and optionally a Hub repo that the folder's shards feed."""

    folder: Path
    target: HubTarget | None = None
    token: str | None = None
    staging: bool = False  # the folder only holds shards until they are uploaded
    committer: hub_commits.CommitSink | None = None  # an orchestrator's; None: this run commits its own shards

    def describe(self) -> str:
        if self.target is None:
            return f"store: local folder {self.folder}"
        visibility = "private" if self.target.private else "public if created now"
        copy = f"staging in {self.folder}" if self.staging else f"local copy in {self.folder}"
        return f"store: Hub dataset repo {self.target.repo_id} ({visibility}); {copy}"


def _plan_store(cfg: GenerateConfig, settings: Settings, source: Source, keep_local: bool) -> _Store:
    """Decide, before any work, where this dataset goes (DEEPSYNTH_STORE / --store: auto, local or hub)."""
    assert cfg.out is not None
    local = _Store(folder=cfg.out / source.name)
    if cfg.store == "local":
        return local
    if cfg.store == "auto" and is_offline():
        return local
    require_online("use the Hub as the store (--store hub)", ConfigError)
    token, owner = hub_token(settings), None if cfg.repo_id else hub_namespace(settings)
    repo_id = cfg.repo_id or rendered.default_repo_id(owner, source.name)
    if not token or not repo_id:
        if cfg.store == "hub":
            missing = (
                "no Hub token (HF_TOKEN or `hf auth login`)" if not token else "HF_USERNAME (or --repo-id) is not set"
            )
            raise ConfigError(f"the store is the Hub but {missing}", hint="set it in the environment or .env")
        return local
    target = HubTarget(repo_id=repo_id, private=cfg.private)
    if keep_local:
        return _Store(folder=local.folder, target=target, token=token)
    staging = settings.cache_dir / "staging" / repo_id.replace("/", "__")
    return _Store(folder=staging, target=target, token=token, staging=True)


def _generate_dataset(
    source: Source,
    cfg: GenerateConfig,
    store: _Store,
    pool: Executor,
    window: int,
    emit: EventSink,
) -> DatasetReport:
    started = time.perf_counter()
    folder = store.folder
    emit(Notice(f"{source.name}: {store.describe()}"))
    fp = fingerprint(cfg, source)
    if damaged := shards.set_aside_damaged(folder):
        emit(Notice(f"{source.name}: set aside {len(damaged)} damaged shard(s) as *.damaged, rendering them again"))
    local = shards.scan(folder)
    api: Any = None
    remote: dict[str, dict[str, ShardMeta]] = {}
    retry = hub.Retry(cfg.hub.attempts, cfg.hub.backoff_s, lambda message: emit(Notice(message)))
    if store.target is not None:
        api = hub.hub_api(store.token, cfg.hub.timeout_s)
        hub.create_repo(api, store.target, retry)
        remote = _read_remote(api, store.target.repo_id)
    existing = {**local, **{name: meta for name, meta in hub.all_metas_named(remote)}}
    where = folder if store.target is None else Path(store.target.repo_id)
    _check_existing(existing, fp, cfg, where, fingerprint_inputs(cfg, source))
    if shards.remove_partial_files(folder):
        emit(Notice(f"{source.name}: removed half-written shards left by an interrupted run"))
    split_names = cfg.splits or source.splits()
    outputs = [output_split(split) for split in split_names]
    if len(set(outputs)) != len(outputs):
        raise DatasetError(
            f"{source.name}: splits {split_names} map to the same output names {outputs}",
            hint="choose distinct splits with --split",
        )

    uploader: hub_commits.ShardUploader | None = None
    committer: hub_commits.HubCommitter | None = None  # this run's own; None when an orchestrator owns it
    if store.target is not None:
        mine = hub.metas_of_part(remote, cfg.shard_index, cfg.num_shards)
        sink = store.committer
        if sink is None:
            sink = committer = hub_commits.HubCommitter.from_config(api, store.target, cfg.hub, retry)
        uploader = hub_commits.ShardUploader(
            api, store.target, cfg.shard_index, cfg.num_shards, mine, sink=sink, retry=retry,
            delete_after_commit=store.staging, batch=cfg.hub.commit_every,
        )  # fmt: skip
        # Shards finished by an earlier run whose upload did not happen (killed, or the Hub failed): send them.
        # Staged ones the repo already holds (a run killed between its commit and the deletion) go.
        cleared = 0
        for name, meta in sorted(local.items()):
            if meta.part != cfg.shard_index:
                continue
            if name not in mine:
                uploader.submit(folder / shards.DATA_DIR / name, meta)
            elif store.staging and mine[name].fingerprint == meta.fingerprint:
                (folder / shards.DATA_DIR / name).unlink(missing_ok=True)
                cleared += 1
        if cleared:
            emit(Notice(f"{source.name}: deleted {cleared} staged shard(s) the Hub already holds"))

    report = DatasetReport(dataset=source.name, location=_location(store))
    rendered_all = False
    try:
        for split, name in zip(split_names, outputs, strict=True):
            chunks = {m.chunk: m for m in existing.values() if m.split == name and m.part == cfg.shard_index}
            if _split_done(chunks, cfg):
                split_report = SplitReport()
                for meta in chunks.values():
                    split_report.add(meta)
                    split_report.shards_reused += 1
                emit(Notice(f"{source.name}/{name}: already complete ({split_report.rows} rows), nothing to do"))
            else:
                if chunks:
                    emit(Notice(f"{source.name}/{name}: resuming, {len(chunks)} finished shard(s) kept"))
                on_shard = uploader.submit if uploader is not None else None
                split_report = _generate_split(source, split, folder, cfg, fp, chunks, pool, window, emit, on_shard)
            report.splits[name] = split_report
            if beyond := hints.rows_beyond_max_samples(f"{source.name}/{name}", split_report.rows, cfg.max_samples):
                emit(Notice(beyond))
        rendered_all = True
    finally:
        if uploader is not None:  # hands over what is finished even when rendering failed; raises HubError
            _hand_over(uploader, committer, describe_next=rendered_all)
    try:
        if (nothing := hints.nothing_rendered(source.name, report.splits)) is not None:
            raise nothing
        if store.target is None or not store.staging:
            folder.mkdir(parents=True, exist_ok=True)
            manifest = build_manifest(shards.scan(folder).values(), cfg, source, fp)
            rendered.write_dataset_files(folder, manifest)
        if committer is not None:
            _describe_repo(committer, cfg, source, fp)
    finally:
        if committer is not None:
            committer.close()  # without a description when the run failed; a no-op after _describe_repo
    if uploader is not None:
        report.uploaded_bytes = uploader.bytes_uploaded
        report.commits = committer.commits if committer is not None else 0
    report.seconds = time.perf_counter() - started
    return report


def _hand_over(
    uploader: hub_commits.ShardUploader, committer: hub_commits.HubCommitter | None, *, describe_next: bool
) -> None:
    """Hand this part's finished shards over. This run's own committer (None: an orchestrator's) commits them
    at once when rendering failed or the hand-over did; otherwise `_describe_repo` comes next."""
    try:
        uploader.close()
    except BaseException:
        if committer is not None:
            committer.close()
        raise
    if committer is not None and not describe_next:
        committer.close()


def _describe_repo(committer: hub_commits.HubCommitter, cfg: GenerateConfig, source: Source, fp: str) -> None:
    """Close `committer` with the manifest and the card of every part in the repo, written once, in the commit
    that carries the last shards. Called by whoever owns the committer: this run, or an orchestrator's driver
    once all its parts are done."""
    committer.close(_Description(manifest_header(cfg, source, fp), cfg.render.page_size))


@dataclass(frozen=True)
class _Description:
    """Every part's shards -> manifest and card. Plain data, so it pickles to a committer in a Ray actor."""

    header: dict[str, Any]
    page_size: int

    def __call__(self, parts: dict[str, dict[str, ShardMeta]]) -> dict[str, bytes]:
        metas = [meta for _, meta in hub.all_metas_named(parts)]
        return rendered.dataset_files(rendered.build_manifest(metas, self.header, self.page_size))


def _read_remote(api: Any, repo_id: str) -> dict[str, dict[str, ShardMeta]]:
    try:
        return hub.read_parts(api, repo_id)
    except Exception as error:
        raise hub.explain(error, repo_id, "reading the state of") from error


def _location(store: _Store) -> str:
    if store.target is None:
        return str(store.folder)
    return f"hf://datasets/{store.target.repo_id}"
