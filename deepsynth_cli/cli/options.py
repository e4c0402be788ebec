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
