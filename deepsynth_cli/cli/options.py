"""Options shared by several commands, as `Annotated` aliases, and how they show in `--help`.

Typer's help shows each option's type (`<bool>`, `<list[str]>`); for an on/off flag that reads as if it took a
value, and a list type says nothing about what to give. `FLAG` (an empty metavar) shows a flag bare, and
repeatable options name what they take (`NAME...`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

FLAG = ""  # metavar of an on/off option: nothing after the flag in --help
DATASETS_CONTEXT = {"allow_extra_args": True}
"""`context_settings` of a command taking `Datasets`: the `b` of `--datasets a b` arrives as an extra argument
(Typer options take one value each); `dataset_names` collects it. Unknown options are still refused."""


def _show_help(ctx: typer.Context, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        typer.echo(ctx.get_help(), nl=False)
        raise typer.Exit()


Help = Annotated[
    bool,
    typer.Option(
        "--help",
        metavar=FLAG,
        is_eager=True,
        expose_value=False,
        callback=_show_help,
        help="Show this message and exit.",
    ),
]
"""Typer's own `--help` shows as `--help <bool>`; a command that declares this one gets it shown as a flag."""

ConfigFile = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="YAML job config; flags given on the command line override it.", show_default=False
    ),
]
JsonOutput = Annotated[
    bool, typer.Option("--json", metavar=FLAG, help="Print exactly one JSON object on stdout, nothing else.")
]

Datasets = Annotated[
    list[str] | None,
    typer.Option(
        "--datasets",
        "-d",
        metavar="NAME...",
        help="Rendered datasets: names in the local store or on the Hub, folders, hf://datasets/OWNER/REPO. "
        "`--datasets a b` and `--datasets a --datasets b` both work.",
        show_default=False,
    ),
]


def dataset_names(datasets: list[str] | None, ctx: typer.Context) -> list[str]:
    """Every dataset named: each `--datasets` value, then the names that followed one (`--datasets a b`)."""
    return [*(datasets or []), *ctx.args]
