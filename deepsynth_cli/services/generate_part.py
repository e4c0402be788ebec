"""One part of `deepsynth generate` (`--num-shards N --shard-index I`): its rows of every split, rendered into
its own shards. This is what one machine, one SLURM array task or one Ray task runs.

    source rows -> this part's rows (`Source.part`: row or byte ranges, else index % num_shards)
      -> skip unusable rows (counted per reason) -> render in worker processes (bounded window, results in
      source order) -> shard writer

Each shard holds the rows of `rows_per_shard` consecutive positions of this part. Its footer records what it
covers, so a rerun after a kill reuses finished shards, renders only the rest and ends with every row exactly
once. Memory is bounded by the in-flight window and one row group, not by the dataset size. Parts never write
the same file, so they can run at the same time into one folder (each holds its own lock, processes.py).
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from deepsynth_cli import hints
from deepsynth_cli.config import GenerateConfig
from deepsynth_cli.data import hub, hub_commits, rendered, shards
from deepsynth_cli.data.lengths import word_count
from deepsynth_cli.data.shards import ShardMeta, ShardWriter
from deepsynth_cli.data.sources import UNDETERMINED_LANGUAGE, Document, Source, SourcePart
from deepsynth_cli.services import generate_store
from deepsynth_cli.services.generate_report import (
    Advanced,
    EventSink,
    Notice,
    PartReport,
    ShardWritten,
    SplitReport,
    SplitStarted,
    merge_chars,
)
from deepsynth_cli.services.generate_store import Store
from deepsynth_cli.services.render_pool import RenderPool, render_batch

_BATCH_DOCS = 8  # documents per task sent to a worker: large enough to amortise pickling, small for ordering
_SPLIT_ALIASES = {"val": "validation", "valid": "validation", "dev": "validation"}


def output_split(name: str) -> str:
    """The split name in the output layout: `val`/`dev` become `validation`; only word characters survive."""
    name = _SPLIT_ALIASES.get(name.lower(), name)
    return re.sub(r"\W+", "_", name).strip("_") or "train"


def skip_reason(document: Document, cfg: GenerateConfig) -> str | None:
    """Why a row cannot be used, or None. Reasons are counted per split, never dropped silently."""
    if len(document.text) > cfg.max_text_chars:  # first: nothing else may walk a 50 MB text
        return "text_too_long"
    text, summary = document.text.strip(), document.summary.strip()
    if not text:
        return "empty_text"
    if not summary:
        return "empty_summary"
    if _fewer_words(text, cfg.min_text_words):
        return "text_too_short"
    if _fewer_words(summary, cfg.min_summary_words):
        return "summary_too_short"
    if len(summary) >= len(text):
        return "summary_not_shorter_than_text"
    return None


_WORDS_HEAD = 10_000  # characters whose words are counted first


def _fewer_words(text: str, minimum: int) -> bool:
    """`word_count(text) < minimum`, without listing the words of a whole long text: a prefix never has more
    words than the text, so a head that has enough settles it."""
    head = text[:_WORDS_HEAD]
    return word_count(head) < minimum and (len(head) == len(text) or word_count(text) < minimum)


# ---------------------------------------------------------------------------------------------------------------
# Which rows belong to which part: `Source.part` decides (row or byte ranges where the source can seek, else row
# index % num_shards, within the first `max_samples` rows). Whatever the executor, the same row lands in the same
# part, at the same position, so shards are identical and resume works across them.
def part_documents(source: Source, split: str, cfg: GenerateConfig) -> SourcePart:
    """The source rows of `split` that this part renders (`--num-shards`/`--shard-index`, within `--max-samples`),
    in order: the one place generate asks which rows are its own."""
    return source.part(split, cfg.shard_index, cfg.num_shards, cfg.max_samples)


# ---------------------------------------------------------------------------------------------------------------
def reusable(meta: ShardMeta | None, limit: int | None) -> bool:
    """A finished shard can stand if it covers all the source rows this run asks of its chunk."""
    if meta is None:
        return False
    if meta.end in ("full", "exhausted"):
        return True
    return limit is not None and meta.limit is not None and meta.limit >= limit


def split_done(chunks: dict[int, ShardMeta], cfg: GenerateConfig, part: SourcePart) -> bool:
    """True when earlier shards already cover this part of the split: no need to even stream it."""
    if cfg.max_samples is not None:
        if part.rows is None:  # not known before reading (a byte range): stream it; finished chunks are skipped
            return False
        needed = math.ceil(part.rows / cfg.rows_per_shard)
    else:
        ends = [chunk for chunk, meta in chunks.items() if meta.end == "exhausted"]
        if not ends:
            return False
        needed = min(ends) + 1
    for chunk in range(needed):
        meta = chunks.get(chunk)
        if not reusable(meta, cfg.max_samples):
            return False
        if meta is not None and meta.end == "exhausted":
            return True
    return True


# ---------------------------------------------------------------------------------------------------------------
@dataclass
class PartJob:
    """Everything one part needs, for every split of one dataset; picklable, so a Ray task can carry it.
    `cfg.shard_index` is the part; `cfg.render` holds the fitted font size."""

    source: Source
    cfg: GenerateConfig
    store: Store
    fingerprint: str
    splits: list[str]  # source split names, in order
    sink: hub_commits.CommitSink | None = None  # where the part hands its pre-uploaded shards (Hub store only)

    def for_part(self, part: int) -> PartJob:
        return PartJob(self.source, self.cfg.model_copy(update={"shard_index": part}), self.store, self.fingerprint,
                       self.splits, self.sink)  # fmt: skip


@dataclass
class FolderState:
    """What the store holds, as just read by the caller: the folder's shards and the repo's part files."""

    session: generate_store.HubSession | None
    local: dict[str, ShardMeta]
    remote: dict[str, dict[str, ShardMeta]]


def read_state(store: Store, cfg: GenerateConfig, emit: EventSink, part: int | None = None) -> FolderState:
    """The folder's finished shards (of `part` only, when given) and, with the Hub as the store, the repo's."""
    session = generate_store.open_hub(store, cfg, emit, create=part is None)  # parts: the driver created it
    return FolderState(session, shards.scan(store.folder, part=part), generate_store.read_remote(session))


def run_part(
    job: PartJob, pool: RenderPool, window: int, emit: EventSink, state: FolderState | None = None
) -> PartReport:
    """Render part `job.cfg.shard_index` of every split into `job.store.folder`, reusing its finished shards and,
    with the Hub as the store, uploading them as they finish. Touches no file of another part.

    `state` is what the caller has just read of the store; without it the part reads its own (a Ray task run
    again after its worker died sees the shards it finished before)."""
    started = time.perf_counter()
    source, cfg, store = job.source, job.cfg, job.store
    part, folder = cfg.shard_index, store.folder
    state = state or read_state(store, cfg, emit, part)
    session, local, remote = state.session, state.local, state.remote
    if shards.remove_partial_files(folder, part=part):
        emit(Notice(f"{source.name}: removed half-written shards left by an interrupted run"))
    mine_remote = hub.metas_of_part(remote, part, cfg.num_shards)
    existing = {**{n: m for n, m in local.items() if m.part == part}, **mine_remote}

    uploader = None
    if session is not None:
        assert job.sink is not None, "with the Hub as the store, the run's committer comes with the job"
        uploader = generate_store.start_uploader(session, store, cfg, remote, local, emit, source.name, job.sink)
    report = PartReport(part=part, parts=cfg.num_shards)
    try:
        for split in job.splits:
            name = output_split(split)
            chunks = {m.chunk: m for m in existing.values() if m.split == name and m.part == part}
            report.splits[name] = _render_split_of_part(job, split, chunks, pool, window, emit, uploader)
            if beyond := hints.rows_beyond_max_samples(f"{source.name}/{name}", report.splits[name].rows,
                                                       cfg.max_samples):  # fmt: skip
                emit(Notice(beyond))
    finally:
        if uploader is not None:
            uploader.close()  # hands over what is finished even when rendering failed; raises HubError on failure
    if uploader is not None:  # the commits are the committer's, counted once for the dataset
        report.committed = uploader.accounting
        report.uploaded_bytes = uploader.bytes_uploaded
    report.seconds = time.perf_counter() - started
    return report


def _render_split_of_part(
    job: PartJob,
    split: str,
    chunks: dict[int, ShardMeta],
    pool: RenderPool,
    window: int,
    emit: EventSink,
    uploader: hub_commits.ShardUploader | None,
) -> SplitReport:
    source, name = job.source, output_split(split)
    if split_done(chunks, job.cfg, part_documents(source, split, job.cfg)):
        split_report = SplitReport()
        for meta in chunks.values():
            split_report.add(meta)
            split_report.shards_reused += 1
        emit(Notice(f"{source.name}/{name}: already complete ({split_report.rows} rows), nothing to do"))
        return split_report
    if chunks:
        emit(Notice(f"{source.name}/{name}: resuming, {len(chunks)} finished shard(s) kept"))
    on_shard = uploader.submit if uploader is not None else None
    return render_split(source, split, job.store.folder, job.cfg, job.fingerprint, chunks, pool, window, emit,
                        on_shard)  # fmt: skip


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


def render_split(
    source: Source,
    split: str,
    folder: Path,
    cfg: GenerateConfig,
    fp: str,
    existing: dict[int, ShardMeta],
    pool: RenderPool,
    window: int,
    emit: EventSink,
    on_shard: Callable[[Path, ShardMeta], None] | None = None,
) -> SplitReport:
    """Render this part's rows of `split` whose chunk is not reusable from `existing`, writing one shard per
    chunk; the report covers the reused shards too."""
    name = output_split(split)
    report = SplitReport()
    rows = part_documents(source, split, cfg)
    emit(SplitStarted(source.name, name, rows.rows))

    def items() -> Iterator[_Item]:
        for position, document in enumerate(rows):
            chunk = position // cfg.rows_per_shard
            if reusable(existing.get(chunk), cfg.max_samples):
                continue
            reason = skip_reason(document, cfg)
            if reason is not None:  # a skipped row waits in the window too: without its text, whatever its size
                document = replace(document, text="", summary="")
            yield _Item(chunk, position, document, reason)

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
        in_flight.append((batch, pool.submit(render_batch, payload)))
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
                meta.missing_chars = merge_chars(meta.missing_chars, result.missing_chars)
                meta.undetermined_rows += document.language == UNDETERMINED_LANGUAGE
                pages_now += row["num_pages"]
            emit(Advanced(source.name, name, len(batch), pages_now))
        if current is not None:
            finish(current, "limit" if rows.limited else "exhausted")
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
