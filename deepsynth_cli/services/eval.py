"""`deepsynth eval`: summarise the rendered pages of datasets with a model (or read a file of predictions), score
them per dataset and language against references and Lead-k baselines, and write three files:

    metrics.json        every number, with the exact settings and package versions
    predictions.jsonl   id, reference, prediction and per-row scores (and the model's failure, if any)
    report.html         one self-contained page: tables with intervals, plots, a gallery of examples

    run(cfg, on_event) -> EvalReport

Nothing is printed here: progress arrives as events, the CLI shows them.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from deepsynth_cli.errors import ConfigError, DeepsynthError, OutputError
from deepsynth_cli.evaluation.config import EvalConfig
from deepsynth_cli.evaluation.rows import EvalRow, SplitReader
from deepsynth_cli.settings import Settings, get_settings

if TYPE_CHECKING:
    from deepsynth_cli.evaluation.metrics import GroupResult
    from deepsynth_cli.evaluation.rouge import Scheme
    from deepsynth_cli.inference.summarizer import Summarizer

METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.jsonl"
REPORT_FILE = "report.html"
SCHEMA_VERSION = 1
VERSIONED_PACKAGES = ("deepsynth", "torch", "transformers", "rouge-score", "datasets", "numpy")


@dataclass(frozen=True)
class Started:
    rows: int
    mode: str  # "model" or "predictions"


@dataclass(frozen=True)
class Advanced:
    rows: int
    pages: int


@dataclass(frozen=True)
class Notice:
    message: str


Event = Started | Advanced | Notice
EventSink = Callable[[Event], None]


@dataclass
class EvalReport:
    metrics: dict[str, Any]
    output: Path
    files: dict[str, Path] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return self.metrics


def run(cfg: EvalConfig, on_event: EventSink | None = None, settings: Settings | None = None) -> EvalReport:
    """Evaluate as `cfg` says, write the three files into `cfg.output` and return the metrics."""
    emit: EventSink = on_event or _ignore
    settings = settings or get_settings()
    started = time.perf_counter()
    output = _output_dir(cfg.output)
    readers = _readers(cfg, settings)
    model_info: dict[str, Any] | None = None
    generation: dict[str, Any] | None = None
    recorded_schemes: dict[str, str] = {}
    if cfg.mode == "model":
        rows = _sampled_rows(cfg, readers)
        _fill_languages(cfg, rows)  # before the model loads: an 'und' or unknown language fails now, not after
        _check_languages(rows)
        schemes = _rouge_schemes(cfg, readers, rows, settings)  # before the model: a missing segmenter fails now
        emit(Notice(f"loading {cfg.model}"))
        summarizer = _load(cfg)
        model_info = _model_info(cfg, summarizer)
        for message in _render_mismatches(summarizer, readers, settings):
            emit(Notice(message))
        emit(Started(len(rows), "model"))
        generation = _generate(summarizer, cfg, readers, rows, emit)
    else:
        rows, recorded_schemes = _predicted_rows(cfg, readers)
        schemes = _rouge_schemes(cfg, readers, rows, settings)
        emit(Started(len(rows), "predictions"))
        emit(Advanced(len(rows), 0))
    _fill_languages(cfg, rows)
    for message in _scheme_notices(cfg, schemes, recorded_schemes):
        emit(Notice(message))
    groups = _score(cfg, rows, schemes, generated=cfg.mode == "model")
    metrics = _metrics(cfg, readers, groups, model_info, generation, time.perf_counter() - started)
    if cfg.ablation and cfg.mode == "model":
        emit(Notice("ablation: scoring own, another row's and blank pages"))
        metrics["ablation"] = _ablation(summarizer, cfg, readers, rows)
    files = _write(cfg, output, groups, metrics, readers)
    return EvalReport(metrics, output, files)


def _ignore(event: Event) -> None:
    return None


def _output_dir(folder: Path) -> Path:
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"--output {folder} is a file", hint="give a folder for metrics.json and the report")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create {folder}: {error.strerror}", hint="choose a writable --output") from error
    return folder


def _readers(cfg: EvalConfig, settings: Settings) -> dict[str, SplitReader]:
    """One reader per dataset, named by the dataset (a repeated name gets its position appended)."""
    from deepsynth_cli.data.store import resolve_dataset

    readers: dict[str, SplitReader] = {}
    for position, name in enumerate(cfg.datasets):
        location = resolve_dataset(name, settings)
        key = location.name if location.name not in readers else f"{location.name}#{position}"
        readers[key] = SplitReader(location, cfg.split, settings)
    return readers


def _sampled_rows(cfg: EvalConfig, readers: dict[str, SplitReader]) -> list[EvalRow]:
    from deepsynth_cli.evaluation.rows import dataset_rows, sample_indices

    rows: list[EvalRow] = []
    for name, reader in readers.items():
        if len(reader) == 0:
            raise DeepsynthError(f"{reader.location} has no rows in its {cfg.split} split", hint="rerun generate")
        rows.extend(dataset_rows(reader, name, sample_indices(len(reader), cfg.max_samples, cfg.sample_seed)))
    return rows


def _predicted_rows(cfg: EvalConfig, readers: dict[str, SplitReader]) -> tuple[list[EvalRow], dict[str, str]]:
    """The rows of the predictions file, and the ROUGE scheme each dataset's lines were scored with, if recorded."""
    from deepsynth_cli.evaluation.rows import joined_rows, read_predictions, sample_indices, self_contained_rows

    assert cfg.predictions is not None
    lines = read_predictions(cfg.predictions, self_contained=not readers)  # every problem in one error
    recorded = _recorded_schemes(cfg.predictions, lines)
    rows = joined_rows(lines, readers) if readers else self_contained_rows(lines)
    if cfg.max_samples is not None:
        by_group: dict[str, list[EvalRow]] = {}
        for row in rows:
            by_group.setdefault(row.dataset, []).append(row)
        rows = []
        for group in by_group.values():
            rows.extend(group[index] for index in sample_indices(len(group), cfg.max_samples, cfg.sample_seed))
    return rows, recorded


def _recorded_schemes(path: Path, lines: Sequence[Any]) -> dict[str, str]:
    """Dataset -> the ROUGE scheme its lines in a predictions file written by `eval` were scored with. A dataset
    whose lines name different schemes is refused: they come from runs scored differently (a file of concatenated
    runs), and nothing read from it could be compared as one."""
    counts: dict[str, dict[str, int]] = {}
    for line in lines:
        scheme = line.fields.get("rouge_scheme")
        if scheme is not None:
            per_dataset = counts.setdefault(str(line.fields.get("dataset") or ""), {})
            per_dataset[str(scheme)] = per_dataset.get(str(scheme), 0) + 1
    for dataset, found in counts.items():
        if len(found) > 1:
            listed = ", ".join(f"{scheme} ({count} lines)" for scheme, count in sorted(found.items()))
            raise ConfigError(
                f"{path} mixes rows of {dataset or 'one dataset'} scored with different ROUGE schemes: {listed}",
                hint="score each run's predictions on its own, or drop the rouge_scheme field to rescore them alike",
            )
    return {dataset: next(iter(found)) for dataset, found in counts.items()}


def _rouge_schemes(
    cfg: EvalConfig, readers: dict[str, SplitReader], rows: list[EvalRow], settings: Settings
) -> dict[str, Scheme]:
    """The ROUGE scheme of each dataset: `cfg.rouge_scheme`, else the registry's for the dataset it was rendered from
    (its manifest's source key, or the dataset's own name), else the default. Each scheme's tokenizers are built
    here for the rows' languages, so that a missing segmenter stops the run before anything is generated."""
    from deepsynth_cli.data.registry import lookup_spec
    from deepsynth_cli.data.rendered import read_manifest
    from deepsynth_cli.evaluation.rouge import DEFAULT_SCHEME, prepare_scheme

    schemes: dict[str, Scheme] = {}
    for name in dict.fromkeys(row.dataset for row in rows):
        if cfg.rouge_scheme is not None:
            schemes[name] = cfg.rouge_scheme
            continue
        key = name
        if name in readers:
            source = (read_manifest(readers[name].location, settings) or {}).get("source") or {}
            key = str(source.get("key") or readers[name].location.name)
        spec = lookup_spec(key)
        schemes[name] = cast("Scheme", spec.rouge_scheme) if spec is not None else DEFAULT_SCHEME
    for dataset, language in dict.fromkeys((row.dataset, row.language) for row in rows):
        if language not in UNDETERMINED:
            prepare_scheme(schemes[dataset], language)
    return schemes


def _scheme_notices(cfg: EvalConfig, schemes: dict[str, Scheme], recorded: dict[str, str]) -> list[str]:
    """Say where numbers of this run must not be put side by side: datasets under different schemes, or rows of a
    predictions file scored before with another scheme than this run's."""
    by_scheme: dict[str, list[str]] = {}
    for name, scheme in schemes.items():
        by_scheme.setdefault(scheme, []).append(name)
    messages = []
    if len(by_scheme) > 1:
        listed = "; ".join(f"{scheme}: {', '.join(names)}" for scheme, names in by_scheme.items())
        messages.append(f"datasets are scored with different ROUGE schemes ({listed}): compare numbers within one only")
    for name, scheme in schemes.items():
        before = recorded.get(name, recorded.get(""))
        if before is not None and before != scheme:
            messages.append(
                f"{name} in {cfg.predictions} was scored with the {before} ROUGE scheme and is rescored here with "
                f"{scheme}: these numbers are not comparable with that run's (--rouge-scheme {before} reproduces it)"
            )
    return messages


def _load(cfg: EvalConfig) -> Summarizer:
    from deepsynth_cli.inference.summarizer import Summarizer

    assert cfg.model is not None
    return Summarizer.load(cfg.model, device=cfg.device)


def _render_mismatches(summarizer: Summarizer, readers: dict[str, SplitReader], settings: Settings) -> list[str]:
    """A model reads pages best as it was trained on them: say where a dataset's type or page size differ from the
    render settings saved with the model (presets and models trained elsewhere have none to compare)."""
    from deepsynth_cli.data.rendered import read_manifest

    if summarizer.render_source != "checkpoint":
        return []
    trained = summarizer.render_config
    messages = []
    for name, reader in readers.items():
        render = (read_manifest(reader.location, settings) or {}).get("render") or {}
        differ = [
            f"{key} {render[key]} (trained on {getattr(trained, key)})"
            for key in ("page_size", "font_size")
            if key in render and render[key] != getattr(trained, key)
        ]
        if differ:
            messages.append(f"{name} was rendered differently from the model's training pages: {', '.join(differ)}")
    return messages


def _model_info(cfg: EvalConfig, summarizer: Summarizer) -> dict[str, Any]:
    from deepsynth_cli.inference.options import DEFAULT_MAX_NEW_TOKENS

    return {
        "spec": cfg.model,
        "name": summarizer.model_id,
        "device": str(summarizer.device),
        "max_pages": summarizer.max_pages,
        # the limit a generation without --max-new-tokens has: the model's own, else the default
        "max_new_tokens": summarizer.max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
        "render_settings": summarizer.render_source,
        "parameters": sum(parameter.numel() for parameter in summarizer.model.parameters()),
    }


def _generate(
    summarizer: Summarizer, cfg: EvalConfig, readers: dict[str, SplitReader], rows: list[EvalRow], emit: EventSink
) -> dict[str, Any]:
    """Summaries for `rows`, `batch_size` documents per call, pages read batch by batch; failures stay per row."""
    seconds, pages, tokens = 0.0, 0, 0
    for start in range(0, len(rows), cfg.batch_size):
        batch = rows[start : start + cfg.batch_size]
        documents = _pages(readers, batch)
        began = time.perf_counter()
        summaries = summarizer.summarize(documents, cfg.generation)
        seconds += time.perf_counter() - began
        for row, summary in zip(batch, summaries, strict=True):
            row.prediction = summary.text if summary.error is None else ""
            row.error = summary.error
            row.pages_shown = summary.pages
            row.vision_tokens = summary.vision_tokens
            row.new_tokens = summary.new_tokens
            row.finished = summary.finished
            row.logprob = summary.logprob
            if summary.error is None:
                pages += summary.pages
                tokens += summary.new_tokens
        emit(Advanced(len(batch), sum(len(document) for document in documents)))
    return {
        "seconds": seconds,
        "documents": len(rows),
        "pages": pages,
        "new_tokens": tokens,
        "pages_per_s": pages / seconds if seconds else None,
        "tokens_per_s": tokens / seconds if seconds else None,
        "errors": sum(row.error is not None for row in rows),
    }


def _pages(readers: dict[str, SplitReader], batch: Sequence[EvalRow]) -> list[list[Any]]:
    found: dict[tuple[str, int], list[Any]] = {}
    for name in dict.fromkeys(row.dataset for row in batch):
        indices = sorted(int(row.index or 0) for row in batch if row.dataset == name)
        for index, row in readers[name].read(indices, ["pages"]):
            found[(name, index)] = list(row.get("pages") or [])
    return [found[(row.dataset, int(row.index or 0))] for row in batch]


UNDETERMINED = ("", "und")


def _ablation(
    summarizer: Summarizer, cfg: EvalConfig, readers: dict[str, SplitReader], rows: list[EvalRow]
) -> list[dict[str, Any]]:
    """`evaluation/ablation.py` per dataset and language, on the rows just generated."""
    from deepsynth_cli.evaluation.ablation import ablate

    grouped: dict[tuple[str, str], list[EvalRow]] = {}
    for row in rows:
        grouped.setdefault((row.dataset, row.language), []).append(row)
    results = []
    for (dataset, language), group in grouped.items():
        shard_rows = [
            {"pages": pages, "summary": row.reference} for row, pages in zip(group, _pages(readers, group), strict=True)
        ]
        found = ablate(
            summarizer,
            shard_rows,
            language=language,
            generation=cfg.generation,
            bootstrap=cfg.bootstrap,
            batch_size=cfg.batch_size,
        )
        results.append({"dataset": dataset, "language": language, **found})
    return results


def _fill_languages(cfg: EvalConfig, rows: list[EvalRow]) -> None:
    """Rows without a language (a file rendered without --language is 'und') take `cfg.language`, or fail here:
    scoring needs the language's tokens, stems and sentences."""
    unknown = [row for row in rows if row.language in UNDETERMINED]
    if unknown and cfg.language is None:
        datasets = ", ".join(dict.fromkeys(row.dataset for row in unknown))
        raise ConfigError(
            f"{len(unknown)} rows of {datasets} have no language ('und'): scoring needs one",
            hint="give the language of those rows with --language (e.g. --language en)",
        )
    for row in unknown:
        row.language = str(cfg.language)


def _check_languages(rows: list[EvalRow]) -> None:
    """Refuse a language scoring does not know before any prediction is generated (`_score` would, after)."""
    from deepsynth_cli.evaluation.language import language_spec

    for language in sorted({row.language for row in rows}):
        language_spec(language)


def _score(cfg: EvalConfig, rows: list[EvalRow], schemes: dict[str, Scheme], *, generated: bool) -> list[GroupResult]:
    from deepsynth_cli.evaluation.language import language_spec
    from deepsynth_cli.evaluation.metrics import score_group

    grouped: dict[tuple[str, str], list[EvalRow]] = {}
    for row in rows:
        language_spec(row.language)  # an unknown language is refused before any scoring
        grouped.setdefault((row.dataset, row.language), []).append(row)
    return [
        score_group(group, cfg.baselines, cfg.bootstrap, generated=generated, scheme=schemes[dataset])
        for (dataset, _), group in grouped.items()
    ]


def _versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def _metrics(
    cfg: EvalConfig,
    readers: dict[str, SplitReader],
    groups: list[GroupResult],
    model_info: dict[str, Any] | None,
    generation: dict[str, Any] | None,
    seconds: float,
) -> dict[str, Any]:
    datasets = {
        name: {"location": str(reader.location), "split": reader.split, "rows_in_split": len(reader)}
        for name, reader in readers.items()
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": cfg.mode,
        "settings": {
            **cfg.model_dump(mode="json"),
            "scores": "fractions in [0, 1]; means over all rows, empty and failed predictions included",
            "sample": "all rows"
            if cfg.max_samples is None
            else f"{cfg.max_samples} rows per dataset drawn with numpy default_rng({cfg.sample_seed}), file order",
        },
        "versions": _versions(),
        "model": model_info,
        "datasets": datasets,
        "generation": generation,
        "rouge_schemes": _schemes_used(groups),
        "groups": [group.metrics for group in groups],
        "totals": {
            "rows": sum(len(group.rows) for group in groups),
            "errors": sum(group.metrics["errors"] for group in groups),
            "empty_predictions": sum(group.metrics["empty_predictions"] for group in groups),
            "seconds": seconds,
        },
    }


def _schemes_used(groups: list[GroupResult]) -> dict[str, list[str]]:
    """Scheme -> the groups ("dataset (language)") it scored: one key means every number here compares."""
    used: dict[str, list[str]] = {}
    for group in groups:
        used.setdefault(group.metrics["rouge_scheme"]["name"], []).append(f"{group.dataset} ({group.language})")
    return used


def _write(
    cfg: EvalConfig,
    output: Path,
    groups: list[GroupResult],
    metrics: dict[str, Any],
    readers: dict[str, SplitReader],
) -> dict[str, Path]:
    from deepsynth_cli.evaluation.report import write_report

    files = {
        "metrics": output / METRICS_FILE,
        "predictions": output / PREDICTIONS_FILE,
        "report": output / REPORT_FILE,
    }
    _atomic_write(
        files["predictions"],
        "".join(_prediction_line(group, index) for group in groups for index in range(len(group.rows))),
    )
    _atomic_write(files["metrics"], json.dumps(metrics, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    write_report(files["report"], metrics, groups, cfg.report, page_reader=lambda row: _first_page(readers, row))
    return files


def _prediction_line(group: GroupResult, index: int) -> str:
    row = group.rows[index]
    scores = {
        metric: {part: round(getattr(value, part), 6) for part in ("precision", "recall", "f1")}
        for metric, value in group.model.rows[index].items()
    }
    record: dict[str, Any] = {
        "id": row.id,
        "dataset": row.dataset,
        "language": row.language,
        "reference": row.reference,
        "prediction": row.prediction,
        "scores": scores,
        "rouge_scheme": group.metrics["rouge_scheme"]["name"],
        "error": row.error,
    }
    if row.vision_tokens is not None:
        record |= {
            "pages": row.pages_shown,
            "vision_tokens": row.vision_tokens,
            "text_tokens": row.text_tokens,
            "new_tokens": row.new_tokens,
            "finished": row.finished,
            "logprob": row.logprob if row.logprob is not None and math.isfinite(row.logprob) else None,
        }
    return json.dumps(record, ensure_ascii=False) + "\n"


def _first_page(readers: dict[str, SplitReader], row: EvalRow) -> Any:
    if row.index is None or row.dataset not in readers:
        return None
    for _, found in readers[row.dataset].read([row.index], ["pages"]):
        pages = found.get("pages") or []
        return pages[0] if pages else None
    return None


def _atomic_write(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
