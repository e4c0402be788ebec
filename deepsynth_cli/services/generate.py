"""`deepsynth generate`: stream documents, render their pages, write resumable Parquet shards.

A run is a few short steps per dataset:

    plan the store -> check what it already holds -> render the parts -> describe the dataset (manifest, card)

Rendering a part (`--shard-index I` of `--num-shards N`) is `generate_part.run_part`; it runs here, in this
process with `--num-workers` render processes (`--executor local`), or every part runs as a Ray task
(`--executor ray`, `generate_ray.py`) into the same folder. Either way each part writes exactly the same shards,
and the manifest and card are written once, by this process, from every shard's footer. With the Hub as the
store, parts pre-upload their shards and this process owns the one committer of the repo (`generate_store`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from deepsynth_cli import __version__, hints, processes
from deepsynth_cli.config import GenerateConfig
from deepsynth_cli.credentials import describe_token
from deepsynth_cli.data import hub, hub_commits, rendered, shards
from deepsynth_cli.data.holdout import Holdout
from deepsynth_cli.data.render import PageRenderer
from deepsynth_cli.data.shards import ShardMeta
from deepsynth_cli.data.sources import Source, assignment_inputs, open_source
from deepsynth_cli.data.tokens import TextTokenCounter
from deepsynth_cli.errors import DatasetError, OutputError
from deepsynth_cli.services import generate_store
from deepsynth_cli.services.generate_part import (
    FolderState,
    PartJob,
    output_split,
    read_state,
    run_part,
    skip_reason,
)
from deepsynth_cli.services.generate_report import (
    Advanced,
    DatasetReport,
    Event,
    EventSink,
    GenerateReport,
    Notice,
    PartReport,
    PartsProgress,
    ShardWritten,
    SplitReport,
    SplitStarted,
    merge_chars,
)
from deepsynth_cli.services.generate_store import Store, plan_store
from deepsynth_cli.services.render_pool import make_pool
from deepsynth_cli.settings import Settings, get_settings

__all__ = [
    "Advanced",
    "DatasetReport",
    "Event",
    "EventSink",
    "GenerateReport",
    "Notice",
    "PartReport",
    "PartsProgress",
    "ShardWritten",
    "SplitReport",
    "SplitStarted",
    "build_manifest",
    "fingerprint",
    "output_split",
    "run",
    "skip_reason",
]

FORMAT_VERSION = rendered.FORMAT_VERSION


class PartsExecutor(Protocol):
    """Where the parts of a dataset render: this process (`LocalParts`) or Ray tasks (`generate_ray.RayParts`).
    Entered once per run (locks, or a Ray connection); `run_parts` returns one report per part it ran."""

    def __enter__(self) -> PartsExecutor: ...

    def __exit__(self, *exc: object) -> None: ...

    def run_parts(self, job: PartJob, state: FolderState, emit: EventSink) -> list[PartReport]: ...


class LocalParts:
    """This machine's one part (`--shard-index`), here, with `--num-workers` render processes. It holds that
    part's lock on every output folder for the whole run: a second run of the same part is refused at once."""

    def __init__(self, cfg: GenerateConfig, stores: list[Store]) -> None:
        assert cfg.num_workers is not None
        self.workers = cfg.num_workers
        self._folders = [store.folder for store in stores]
        self._part, self._parts = cfg.shard_index, cfg.num_shards
        self._locks: Any = None

    def __enter__(self) -> LocalParts:
        self._locks = processes.output_locks(self._folders, self._part, self._parts)
        return self

    def __exit__(self, *exc: object) -> None:
        self._locks.close()

    def run_parts(self, job: PartJob, state: FolderState, emit: EventSink) -> list[PartReport]:
        pool = make_pool(job.cfg.render, job.cfg.tokenizer, self.workers)
        try:
            return [run_part(job, pool, 2 * self.workers, emit, state)]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _executor(cfg: GenerateConfig, stores: list[Store], emit: EventSink) -> PartsExecutor:
    if cfg.executor == "ray":
        from deepsynth_cli.services.generate_ray import RayParts

        return RayParts(cfg, emit)
    return LocalParts(cfg, stores)


def run(cfg: GenerateConfig, on_event: EventSink | None = None, settings: Settings | None = None) -> GenerateReport:
    """Generate every dataset in `cfg`. Callable from Python; reports progress through `on_event`."""
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
            holdout=Holdout.of(cfg.holdout),
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
    stores = [plan_store(cfg, settings, source, keep_local) for source in sources]
    with _executor(cfg, stores, emit) as executor:  # one run per part of each output folder
        fitted = [_fit_compression(cfg, source, emit) for source in sources]  # before any rendering: refuse early
        for source, store, source_cfg in zip(sources, stores, fitted, strict=True):
            dataset = _generate_dataset(source, source_cfg, store, executor, emit)
            dataset.font_size = source_cfg.render.font_size
            dataset.target_compression = cfg.render.target_compression
            report.datasets.append(dataset)
            report.notes += _empty_carvings(dataset, Holdout.of(cfg.holdout))
    report.seconds = time.perf_counter() - started
    return report


def _empty_carvings(dataset: DatasetReport, holdout: Holdout | None) -> list[str]:
    """A warning for each split `--holdout` asked for that got no row (a small file, a small fraction)."""
    if holdout is None:
        return []
    rows = sum(split.rows for split in dataset.splits.values())
    notes = []
    for name, share in (("validation", holdout.validation), ("test", holdout.test)):
        split = dataset.splits.get(name)
        if share > 0 and (split is None or split.rows == 0):
            notes.append(
                f"{dataset.dataset}/{name}: --holdout carved no rows ({share:g} of {rows} row(s) is about "
                f"{share * rows:.2g}): raise its fraction or use a larger file"
            )
    return notes


def _generate_dataset(
    source: Source, cfg: GenerateConfig, store: Store, executor: PartsExecutor, emit: EventSink
) -> DatasetReport:
    """The steps for one dataset: check what the store holds, render the parts, describe the result."""
    started = time.perf_counter()
    emit(Notice(f"{source.name}: {store.describe()}"))
    fp = fingerprint(cfg, source)
    state = _check_store(source, cfg, store, fp, emit)
    splits = cfg.splits or source.splits()
    _check_split_names(source.name, splits)
    # One committer for every part of the repo: parts pre-upload their shards and hand them over, so the commit
    # rate is the committer's (hub.max_commits_per_hour), whatever the number of parts.
    committer = None if state.session is None else generate_store.start_committer(state.session, store, cfg, emit)
    job = PartJob(source, cfg, store, fp, splits, None if committer is None else committer.sink)

    report = DatasetReport(dataset=source.name, location=store.location())
    try:
        parts = executor.run_parts(job, state, emit)
        for part in parts:
            report.add_part(part)
        if cfg.executor == "ray":
            report.parts = parts
        if (nothing := hints.nothing_rendered(source.name, report.splits)) is not None:
            # The first --max-samples rows lie in the parts whose ranges hold them: one other part has none to
            # render.
            alone = cfg.executor == "local" and cfg.num_shards > 1 and cfg.max_samples is not None
            if not alone or any(split.skipped for split in report.splits.values()):
                raise nothing
            emit(
                Notice(
                    f"{source.name}: part {cfg.shard_index} of {cfg.num_shards} holds none of the first "
                    f"{cfg.max_samples} rows of any split, nothing to do"
                )
            )
        report.commits += _describe(source, cfg, store, fp, committer)
    finally:
        if committer is not None:
            committer.close()  # a failed run still commits what its parts handed over; no-op after _describe
    report.seconds = time.perf_counter() - started
    return report


def _check_store(source: Source, cfg: GenerateConfig, store: Store, fp: str, emit: EventSink) -> FolderState:
    """Read what the store holds (damaged shards set aside first) and refuse shards made with other settings."""
    if damaged := shards.set_aside_damaged(store.folder):
        emit(Notice(f"{source.name}: set aside {len(damaged)} damaged shard(s) as *.damaged, rendering them again"))
    state = read_state(store, cfg, emit)
    existing = {**state.local, **{name: meta for name, meta in hub.all_metas_named(state.remote)}}
    where = store.folder if store.target is None else Path(store.target.repo_id)
    _check_existing(existing, fp, cfg, where, fingerprint_inputs(cfg, source))
    return state


def _check_split_names(dataset: str, split_names: list[str]) -> None:
    outputs = [output_split(split) for split in split_names]
    if len(set(outputs)) != len(outputs):
        raise DatasetError(
            f"{dataset}: splits {split_names} map to the same output names {outputs}",
            hint="choose distinct splits with --split",
        )


def _describe(
    source: Source, cfg: GenerateConfig, store: Store, fp: str, committer: hub_commits.Committer | None
) -> int:
    """Write the manifest and card from every shard's footer: into the folder (unless it only stages uploads),
    and into the Hub repo, once, with the committer's last commit. Returns the commits made for the repo."""
    folder = store.folder
    if store.target is None or not store.staging:
        folder.mkdir(parents=True, exist_ok=True)
        manifest = build_manifest(shards.scan(folder).values(), cfg, source, fp)
        rendered.write_dataset_files(folder, manifest)
    if committer is None:
        return 0
    return generate_store.describe_repo(committer, manifest_header(cfg, source, fp), cfg.render.page_size)


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
        "max_text_chars": cfg.max_text_chars,
        "holdout": _holdout(cfg),
        **assignment_inputs(cfg.num_shards),
    }


def _holdout(cfg: GenerateConfig) -> dict[str, Any] | None:
    holdout = Holdout.of(cfg.holdout)
    return None if holdout is None else holdout.describe()


def _check_existing(
    existing: dict[str, ShardMeta], fp: str, cfg: GenerateConfig, folder: Path, inputs: dict[str, Any] | None = None
) -> None:
    for name, meta in existing.items():
        if meta.parts != cfg.num_shards:  # first: a different --num-shards also changes the fingerprint
            raise OutputError(
                f"{folder} was generated with --num-shards {meta.parts}, not {cfg.num_shards}",
                hint=f"rerun with --num-shards {meta.parts}, or use another --out",
            )
        if meta.fingerprint != fp:
            recorded = rendered.read_local_manifest(folder) or {}
            changed = hints.settings_changed(recorded.get("fingerprint_inputs"), inputs or {})
            hint = "use the same settings to resume, or give another --out (or delete the folder) to start over"
            if "part_assignment" in changed:
                hint = (
                    "its parts were dealt rows round-robin by an older deepsynth, now parts read row or byte "
                    "ranges: finish it with that version, or give another --out to start over"
                )
            raise OutputError(f"{folder} already holds shards made with other settings ({name}){changed}", hint=hint)


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
        "holdout": _holdout(cfg),  # validation and test carved out of the train rows, by a hash of each text
    }


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
                chars = merge_chars(chars, "".join(sorted(c for c in set(drawn) if renderer.missing_glyphs(c))))
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
