"""`deepsynth validate`: check configs, environment, credentials, datasets and the model before a long run."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from deepsynth_cli.cli.boundary import error_boundary
from deepsynth_cli.cli.console import Output
from deepsynth_cli.cli.options import Datasets, Help, JsonOutput, dataset_names

_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "skip": "dim"}


def command(
    ctx: typer.Context,
    config: Annotated[
        list[Path] | None,
        typer.Option(
            "--config", "-c", metavar="FILE", help="Job YAML to parse (repeatable; default: every file in configs/)."
        ),
    ] = None,
    datasets: Datasets = None,
    model: Annotated[
        str | None, typer.Option(help="Preset (tiny, deepseek-ocr-2), checkpoint folder or Hub id.")
    ] = None,
    sample: Annotated[int, typer.Option(min=1, help="Rows decoded per split.")] = 16,
    min_free_gib: Annotated[float, typer.Option(min=0, help="Free disk needed where outputs go.")] = 1.0,
    json_output: JsonOutput = False,
    help_: Help = False,
) -> None:
    """Validate before a long run: exit 0 with no critical or high failure, 1 otherwise, 2 for usage errors."""
    output = Output(json_output)
    with error_boundary(output):
        from deepsynth_cli.services import validate

        names = dataset_names(datasets, ctx)
        cfg = validate.ValidateConfig(
            configs=config or [], datasets=names, model=model, sample=sample, min_free_gib=min_free_gib
        )
        report = validate.run(cfg, lambda group: output.notice(f"checking {group}"))
        if output.json_mode:
            output.json(report.to_dict())
        else:
            table = Table(title=f"deepsynth validate: score {report.score}/100")
            for column in ("check", "status", "severity", "message", "hint"):
                table.add_column(column)
            for check in report.checks:
                status = Text(check.status, style=_STYLE[check.status])
                table.add_row(Text(check.name), status, check.severity, Text(check.message), Text(check.hint))
            output.table(table)
        raise typer.Exit(report.exit_code)
