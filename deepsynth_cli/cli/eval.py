"""`deepsynth eval`: score a model's summaries of rendered pages (or a predictions file) against references."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from deepsynth_cli.cli.boundary import error_boundary
from deepsynth_cli.cli.console import Output
from deepsynth_cli.cli.options import FLAG, ConfigFile, Datasets, Help, JsonOutput, dataset_names
from deepsynth_cli.cli.progress import LiveEvents

if TYPE_CHECKING:
    from deepsynth_cli.services.eval import EvalReport, Event

_PLAIN_EVERY_S = 10.0
_GENERATION = "Generation"
_METRICS = {"rouge1": "R-1", "rouge2": "R-2", "rougeL": "R-L", "rougeLsum": "R-Lsum"}


def command(
    ctx: typer.Context,
    model: Annotated[
        str | None, typer.Option(help="Preset, model folder written by `deepsynth train`, or Hub id.")
    ] = None,
    predictions: Annotated[
        Path | None,
        typer.Option(
            help="Score this JSON Lines file instead of running a model: one {id, prediction} a line, plus "
            "reference and language, or --datasets to join the references on the split's source_id.",
        ),
    ] = None,
    datasets: Datasets = None,
    split: Annotated[str | None, typer.Option(help="Split to evaluate on (default: test).")] = None,
    max_samples: Annotated[
        int | None, typer.Option(help="A fixed seeded subset of N rows per dataset (the same rows every run).")
    ] = None,
    language: Annotated[
        str | None, typer.Option(help="Scoring language of rows that have none ('und'), e.g. en, fr, zh-Hans.")
    ] = None,
    rouge_scheme: Annotated[
        str | None,
        typer.Option(
            help="How ROUGE tokenises, stems and splits: deepsynth, rouge_score (Google's, as CNN/DM and XSum papers) "
            "or xlsum (the XL-Sum authors' scorer). Default: each dataset's paper's (see the README).",
        ),
    ] = None,
    baselines: Annotated[
        str | None, typer.Option(help="Comma-separated Lead-k baselines: lead-1,lead-3 (default) or none.")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option(help="Documents per generate call.", rich_help_panel=_GENERATION)
    ] = None,
    num_beams: Annotated[
        int | None, typer.Option(help="Beam width (1: greedy, the default).", rich_help_panel=_GENERATION)
    ] = None,
    max_new_tokens: Annotated[
        int | None, typer.Option(help="Summary length limit in tokens.", rich_help_panel=_GENERATION)
    ] = None,
    no_repeat_ngram_size: Annotated[
        int | None,
        typer.Option(help="Never repeat an n-gram of this many tokens (0: off).", rich_help_panel=_GENERATION),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="auto (the GPU when there is one), cpu, cuda.", rich_help_panel=_GENERATION)
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Folder for metrics.json, predictions.jsonl, report.html."),
    ] = None,
    ablation: Annotated[
        bool,
        typer.Option(
            "--ablation",
            metavar=FLAG,
            help="Also score own, another row's and blank pages (loss and ROUGE-L, paired intervals): does it read?",
        ),
    ] = False,
    config: ConfigFile = None,
    json_output: JsonOutput = False,
    help_: Help = False,
) -> None:
    """Score summaries per dataset and language: ROUGE with intervals, Lead-k baselines, an HTML report."""
    out = Output(json_output)
    with error_boundary(out):
        names = dataset_names(datasets, ctx)
        overrides: dict[str, Any] = {
            "model": model,
            "predictions": predictions,
            "datasets": names or None,
            "split": split,
            "max_samples": max_samples,
            "language": language,
            "rouge_scheme": rouge_scheme,
            "baselines": baselines,
            "batch_size": batch_size,
            "generation.num_beams": num_beams,
            "generation.max_new_tokens": max_new_tokens,
            "generation.no_repeat_ngram_size": no_repeat_ngram_size,
            "device": device,
            "output": output,
            "ablation": ablation or None,  # unset: the YAML's value stands
        }
        _eval(out, config, overrides)


def _eval(output: Output, config: Path | None, overrides: Mapping[str, object]) -> None:
    from deepsynth_cli.config import load_config
    from deepsynth_cli.evaluation.config import EvalConfig
    from deepsynth_cli.services import eval as service

    cfg = load_config(EvalConfig, config, overrides)
    with EvalProgress(output) as progress:
        report = service.run(cfg, progress)
    if output.json_mode:
        output.json(report.to_dict())
    else:
        _show(output, report)


def _show(output: Output, report: EvalReport) -> None:
    metrics = report.metrics
    confidence = round(100 * metrics["settings"]["bootstrap"]["confidence"])
    for group in metrics["groups"]:
        scheme = group["rouge_scheme"]["name"]
        title = (
            f"{group['dataset']} ({group['language']}): {group['rows']} rows, F1 x100 [{confidence} % CI], "
            f"ROUGE scheme {scheme}"
        )
        table = Table(title=title)
        table.add_column("system")
        for name in _METRICS.values():
            table.add_column(name, justify="right")
        table.add_column("length", justify="right")
        table.add_column("model vs baseline (R-L)")
        systems = {"model": group, **group["baselines"]}
        for name, system in systems.items():
            cells = [_interval(system["rouge"][metric]["f1"]) for metric in _METRICS]
            versus = system.get("versus_model", {}).get("rougeL")
            verdict = f"{100 * versus['delta']:+.2f} ({versus['verdict']})" if versus else "-"
            table.add_row(name, *cells, f"{system['lengths']['mean']:.1f}", verdict)
        output.table(table)
        compression = group["compression"]
        facts = [
            f"errors {group['errors']}",
            f"empty {group['empty_predictions']}",
            f"loops {100 * group['repetition']['rate']:.1f} %",
            f"compression {compression['ratio']:.2f}x" if compression else "compression -",
        ]
        if group["baselines_skipped"]:
            facts.append(f"baselines skipped: {group['baselines_skipped']}")
        output.line("  " + ", ".join(facts))
        for note in group["rouge_scheme"].get("notes", []):
            output.line(f"  {scheme}: {note}")
    for found in metrics.get("ablation") or []:
        _show_ablation(output, found, confidence)
    generation = metrics.get("generation")
    if generation and generation["seconds"]:
        output.line(
            f"generated {generation['documents']} summaries in {generation['seconds']:.1f} s "
            f"({generation['pages_per_s']:.2f} pages/s, {generation['tokens_per_s']:.1f} tokens/s)"
        )
    for path in report.files.values():
        output.line(f"wrote {path}")


def _show_ablation(output: Output, found: dict[str, Any], confidence: int) -> None:
    title = f"ablation {found['dataset']} ({found['language']}): {found['rows']} rows [{confidence} % CI]"
    table = Table(title=title)
    for column in ("pages", "loss", "R-L x100", "own - this: loss", "own - this: R-L x100"):
        table.add_column(column, justify="right")
    for condition, scores in found["conditions"].items():
        versus = found["differences"].get(f"own-{condition}")
        deltas = ["-", "-"]
        if versus:
            loss, rouge = versus["loss"], versus["rougeL"]
            deltas = [
                f"{loss['delta']:+.3f} [{loss['low']:+.3f}, {loss['high']:+.3f}]",
                f"{100 * rouge['delta']:+.1f} [{100 * rouge['low']:+.1f}, {100 * rouge['high']:+.1f}]",
            ]
        loss = scores["loss"]
        table.add_row(condition, f"{loss['mean']:.3f}", f"{100 * scores['rougeL']['mean']:.1f}", *deltas)
    output.table(table)
    verdict = "reads its pages" if found["reads"] else "no evidence that it reads its pages"
    output.line(f"  {verdict} (own-page loss below other and blank pages, interval excluding 0)")


def _interval(value: dict[str, float]) -> str:
    return f"{100 * value['mean']:.2f}\n[{100 * value['low']:.1f}, {100 * value['high']:.1f}]"


class EvalProgress(LiveEvents):
    """A live bar over documents on a terminal, plain lines elsewhere, nothing in JSON mode."""

    field = "rate"

    def __init__(self, output: Output) -> None:
        super().__init__(output)
        self._done = 0
        self._total = 0
        self._started = 0.0

    def __call__(self, event: Event) -> None:
        from deepsynth_cli.services.eval import Advanced, Notice, Started

        if self.output.json_mode:
            return
        if isinstance(event, Started):
            self._total, self._started = event.rows, time.perf_counter()
            label = "summarising" if event.mode == "model" else "scoring"
            if self._progress is not None:
                self._task = self._progress.add_task(label, total=event.rows, rate="")
            else:
                self.output.notice(f"{label} {event.rows} documents")
        elif isinstance(event, Advanced):
            self._done += event.rows
            rate = f"{self._done / max(time.perf_counter() - self._started, 1e-9):.2f} docs/s"
            if self._progress is not None:
                self._progress.update(self._task, advance=event.rows, rate=rate)
            elif time.perf_counter() - self._last_line >= _PLAIN_EVERY_S or self._done == self._total:
                self._last_line = time.perf_counter()
                self.output.notice(f"{self._done}/{self._total} documents, {rate}")
        elif isinstance(event, Notice):
            self._say(event.message)
