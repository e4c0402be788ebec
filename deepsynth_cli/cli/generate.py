"""`deepsynth generate`: render datasets into page images and write Parquet shards."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from deepsynth_cli.cli.boundary import error_boundary
from deepsynth_cli.cli.console import Output
from deepsynth_cli.cli.options import FLAG, ConfigFile, Help, JsonOutput

_RENDER = "Rendering"
_PARTS = "Splitting the work"
_HUB = "Hugging Face Hub"


def command(
    datasets: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="DATASET",
            help="Registry keys (see --list), local files (.jsonl .json .csv .parquet) or Hub dataset ids.",
            show_default=False,
        ),
    ] = None,
    split: Annotated[
        list[str] | None, typer.Option("--split", metavar="SPLIT", help="Source split to render (repeatable).")
    ] = None,
    max_samples: Annotated[int | None, typer.Option(help="Only the first N source rows of each split.")] = None,
    out: Annotated[Path | None, typer.Option(help="Output root (default: DEEPSYNTH_DATA_DIR).")] = None,
    text_column: Annotated[str | None, typer.Option(help="Column holding the document text.")] = None,
    summary_column: Annotated[str | None, typer.Option(help="Column holding the reference summary.")] = None,
    language: Annotated[str | None, typer.Option(help="Language code for files and Hub ids (e.g. fr, ar).")] = None,
    num_workers: Annotated[int | None, typer.Option(help="Render processes (default: DEEPSYNTH_NUM_WORKERS).")] = None,
    num_shards: Annotated[int | None, typer.Option(help="Machines sharing the work.", rich_help_panel=_PARTS)] = None,
    shard_index: Annotated[int | None, typer.Option(help="This machine's part.", rich_help_panel=_PARTS)] = None,
    executor: Annotated[
        str | None,
        typer.Option(help="local (this machine's part) or ray (every part as a Ray task).", rich_help_panel=_PARTS),
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="Ray cluster: ADDR or auto (default: start a local Ray on 127.0.0.1).", rich_help_panel=_PARTS
        ),
    ] = None,
    num_workers_per_task: Annotated[
        int | None, typer.Option(help="Render processes in each Ray task.", rich_help_panel=_PARTS)
    ] = None,
    rows_per_shard: Annotated[int | None, typer.Option(help="Source rows per Parquet file.")] = None,
    page_size: Annotated[int | None, typer.Option(help="Page side in pixels.", rich_help_panel=_RENDER)] = None,
    font_size: Annotated[float | None, typer.Option(help="Font size in pixels.", rich_help_panel=_RENDER)] = None,
    language_column: Annotated[
        str | None,
        typer.Option(help="Column holding each row's language (default: a `language` or `lang` column, if any)."),
    ] = None,
    min_text_words: Annotated[
        int | None, typer.Option(help="Skip texts shorter than this many words (a CJK character counts one).")
    ] = None,
    min_summary_words: Annotated[
        int | None, typer.Option(help="Skip summaries shorter than this many words (a CJK character counts one).")
    ] = None,
    target_compression: Annotated[
        float | None,
        typer.Option(
            help="Choose the font size so full pages carry about X text tokens per vision token (not below 10 px).",
            rich_help_panel=_RENDER,
        ),
    ] = None,
    max_pages: Annotated[int | None, typer.Option(help="Page budget per document.", rich_help_panel=_RENDER)] = None,
    store: Annotated[
        str | None, typer.Option(help="auto, local or hub (default: DEEPSYNTH_STORE, auto).", rich_help_panel=_HUB)
    ] = None,
    repo_id: Annotated[
        str | None,
        typer.Option(help="Hub dataset repo (default: HF_USERNAME/deepsynth-DATASET).", rich_help_panel=_HUB),
    ] = None,
    private: Annotated[
        bool, typer.Option("--private", metavar=FLAG, help="Create the Hub repo private.", rich_help_panel=_HUB)
    ] = False,
    preview: Annotated[
        Path | None, typer.Option(help="Write PNGs of the first documents to this folder; no shards.")
    ] = None,
    list_: Annotated[
        bool, typer.Option("--list", metavar=FLAG, help="Show the dataset registry and what exists locally.")
    ] = False,
    config: ConfigFile = None,
    json_output: JsonOutput = False,
    help_: Help = False,
) -> None:
    """Render documents into page images and write Hub-ready Parquet shards (resumable)."""
    output = Output(json_output)
    with error_boundary(output):
        if list_:
            _show_catalogue(output)
            return
        overrides = {
            "datasets": datasets or None,
            "splits": split,
            "max_samples": max_samples,
            "out": out,
            "text_column": text_column,
            "summary_column": summary_column,
            "language": language,
            "num_workers": num_workers,
            "num_shards": num_shards,
            "shard_index": shard_index,
            "executor": executor,
            "ray_address": ray_address,
            "num_workers_per_task": num_workers_per_task,
            "rows_per_shard": rows_per_shard,
            "preview": preview,
            "store": store,
            "repo_id": repo_id,
            "private": private or None,
            "render.page_size": page_size,
            "render.font_size": font_size,
            "render.target_compression": target_compression,
            "language_column": language_column,
            "min_text_words": min_text_words,
            "min_summary_words": min_summary_words,
            "render.max_pages": max_pages,
        }
        _generate(output, config, overrides)


def _generate(output: Output, config: Path | None, overrides: Mapping[str, object]) -> None:
    from deepsynth_cli.cli.progress import GenerateProgress
    from deepsynth_cli.config import GenerateConfig, load_config
    from deepsynth_cli.services import generate

    cfg = load_config(GenerateConfig, config, overrides)
    with GenerateProgress(output) as progress:
        report = generate.run(cfg, progress)
    if output.json_mode:
        output.json(report.to_dict())
    elif report.preview_files:
        output.line(f"wrote {len(report.preview_files)} preview page(s) under {cfg.preview}")
    else:
        _show_report(output, report.to_dict())
    if not output.json_mode:
        for warning in report.warnings():
            output.notice(f"warning: {warning}")


def _show_report(output: Output, report: dict[str, object]) -> None:
    table = Table(title="deepsynth generate")
    columns = ("dataset", "split", "font", "rows", "pages", "truncated", "skipped", "compression", "no glyph", "shards")
    for column in columns:
        table.add_column(column, justify="left" if column in ("dataset", "split", "skipped") else "right")
    for dataset in report["datasets"]:  # type: ignore[attr-defined]
        for name, split in dataset["splits"].items():
            skipped = ", ".join(f"{reason} {count}" for reason, count in sorted(split["skipped"].items())) or "-"
            compression = f"{split['compression']:.2f}x" if split["compression"] else "-"
            shards = f"{split['shards']} ({split['shards_written']} new)"
            table.add_row(
                dataset["dataset"], name, f"{dataset['font_size']:g} px", str(split["rows"]), str(split["pages"]),
                str(split["truncated_rows"]),
                skipped, compression, str(split["missing_glyphs"]), shards,
            )  # fmt: skip
    output.table(table)
    for dataset in report["datasets"]:  # type: ignore[attr-defined]
        output.line(f"{dataset['dataset']}: {dataset['location']} ({dataset['seconds']:.1f} s)")


def _show_catalogue(output: Output) -> None:
    from deepsynth_cli.services.catalogue import catalogue
    from deepsynth_cli.settings import get_settings

    result = catalogue(get_settings())
    if output.json_mode:
        output.json(result.to_dict())
        return
    table = Table(title="deepsynth datasets")
    for column in ("key", "source", "language", "splits", "license", "local rows", "Hub rows"):
        table.add_column(column)
    for entry in result.entries:
        local = ", ".join(f"{split} {rows}" for split, rows in entry.local_rows.items()) or "-"
        remote = ", ".join(f"{split} {rows}" for split, rows in (entry.hub_rows or {}).items()) or "-"
        table.add_row(entry.key, entry.source, entry.language, " ".join(entry.splits), entry.license, local, remote)
    output.table(table)
    if result.hub_status != "checked":
        output.notice(f"Hub: {result.hub_status}")
