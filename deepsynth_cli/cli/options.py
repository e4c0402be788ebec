"""Options shared by several commands, as `Annotated` aliases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="YAML job config; flags given on the command line override it.", show_default=False
    ),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout, nothing else.")]

Datasets = Annotated[
    list[str] | None,
    typer.Option(
        "--datasets",
        "-d",
        help="Rendered datasets: names in the local store or on the Hub, folders, hf://datasets/OWNER/REPO. "
        "`--datasets a b` and `--datasets a --datasets b` both work.",
        show_default=False,
    ),
]
MoreDatasets = Annotated[list[str] | None, typer.Argument(hidden=True, show_default=False)]
"""The `b` of `--datasets a b`: Typer options take one value each, so the rest arrive as hidden arguments."""
